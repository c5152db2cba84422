"""Refresh-token rotation (RFC 6749 §6, RFC 9700 §4.14.2): what a presented refresh token gets.

The rules, apart from the SQL. The refresh-token store (``stores/refresh_tokens.py``) locks the
presented token's row in one transaction, hands its facts to :meth:`RotationPolicy.decide` and
carries the decision out in that same transaction; the grant (``grants/refresh_token.py``) turns
a refusal into the RFC 6749 §5.2 error. In order:

1. a token of another client, or of a revoked family, is refused; so is one of a family bound to a
   DPoP key (a public client's, RFC 9449 §5) presented without a proof made with that key — before
   anything else, so that a thief without the key changes nothing, not even by a reuse;
2. a token already rotated is a reuse — one of two parties holds a stolen copy, so the whole
   family is revoked — unless it is retried within the grace period (a client that lost the
   response may retry the *same* token for a few seconds);
3. an expired token, or a token of an expired family, is refused;
4. the new access token is for the resource the request names, if the family's grant covers it
   (RFC 8707 §2.2: a refresh may ask for a narrower resource, never another), or else the grant's
   only one — the caller's ``audience`` rule (:func:`auth_server.resources.chosen`) says which;
5. the new access token's scope is the requested one, or else the family's, within what the client
   may still have; asking for more than the family was granted, or ending with nothing, is refused
   (the new refresh token keeps the family's full scope, as RFC 6749 §6 requires);
6. otherwise the token rotates. A retry within the grace period rotates in place of the successor
   the client never saw; if that successor has been used, the client did see it
   (:meth:`RotationPolicy.successor_used`): the retry is a reuse.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.errors import InvalidTarget

# the audience of a token from a grant covering these resources, or InvalidTarget
AudienceRule = Callable[[tuple[str, ...]], str]
# the part of a decided scope the audience's API takes (it looks the API up): InvalidTarget if the
# client may no longer ask for it, InvalidScope if none of the scope belongs to it
Narrowing = Callable[[str, tuple[str, ...]], Awaitable[tuple[str, ...]]]


class Rejection(enum.Enum):
    UNKNOWN = enum.auto()
    WRONG_CLIENT = enum.auto()
    EXPIRED = enum.auto()
    REVOKED = enum.auto()
    REUSED = enum.auto()
    SCOPE_EXCEEDED = enum.auto()
    TARGET = enum.auto()
    DPOP_KEY = enum.auto()

    @property
    def description(self) -> str:
        if self is Rejection.REUSED:
            return "The refresh token was already used; its token family has been revoked."
        if self is Rejection.SCOPE_EXCEEDED:
            return "The requested scope exceeds what was granted or what the client may have."
        if self is Rejection.TARGET:
            return "The resource was not part of the grant, or it covers several: name one of them."
        if self is Rejection.DPOP_KEY:
            return "The refresh token is bound to a DPoP key: send a DPoP proof made with that key."
        # one description for every other dead token: the answer must not tell a real token from a guess
        return "The refresh token is invalid, expired or revoked."


@dataclass(frozen=True, slots=True)
class Presented:
    """The facts of a presented refresh token, read from its locked row."""

    client_id: str  # the client its family was granted to
    scope: tuple[str, ...]  # what its family was granted
    resources: tuple[str, ...]  # the resources its family was granted for (none: the default audience)
    revoked: bool  # its family has been revoked
    rotated_at: datetime | None  # when it was exchanged for a successor; None: never
    expires_at: datetime  # when it, or its family, ends, whichever is first
    now: datetime  # the database's clock, the one the times above were written by
    dpop_jkt: str | None = None  # the DPoP key its family is bound to (RFC 9449 §5); None: none


@dataclass(frozen=True, slots=True)
class Rotate:
    """Issue a successor; the new access token has ``scope`` and is for ``audience``."""

    scope: tuple[str, ...]
    audience: str
    # a retry within the grace period: the successor issued before, never seen, is retired instead
    retry: bool = False


@dataclass(frozen=True, slots=True)
class Refuse:
    reason: Rejection


@dataclass(frozen=True, slots=True)
class Reuse:
    """A rotated token presented again: revoke its whole family."""


Decision = Rotate | Refuse | Reuse


@dataclass(frozen=True, slots=True)
class RotationPolicy:
    # how long a rotated token may be retried, if its successor is unused (0: never)
    grace_period: timedelta = timedelta(0)

    def decide(
        self,
        token: Presented,
        *,
        client_id: str,
        requested_scope: tuple[str, ...] | None,
        client_scope: tuple[str, ...],
        audience: AudienceRule,
        dpop_jkt: str | None = None,
    ) -> Decision:
        """What ``client_id``, which may now have ``client_scope``, gets for ``token``, presented
        with a DPoP proof made with the key ``dpop_jkt`` (None: without one)."""
        grace = self.grace_period
        if token.client_id != client_id:
            return Refuse(Rejection.WRONG_CLIENT)
        if token.revoked:
            return Refuse(Rejection.REVOKED)
        if token.dpop_jkt is not None and token.dpop_jkt != dpop_jkt:
            return Refuse(Rejection.DPOP_KEY)
        retry = token.rotated_at is not None
        if token.rotated_at is not None and not (grace and token.now - token.rotated_at <= grace):
            return Reuse()
        if token.expires_at <= token.now:
            return Refuse(Rejection.EXPIRED)
        try:
            target = audience(token.resources)
        except InvalidTarget:
            return Refuse(Rejection.TARGET)
        if requested_scope is not None and not set(requested_scope) <= set(token.scope):
            return Refuse(Rejection.SCOPE_EXCEEDED)
        scope = tuple(s for s in (requested_scope or token.scope) if s in client_scope)
        if not scope:
            return Refuse(Rejection.SCOPE_EXCEEDED)
        return Rotate(scope, target, retry=retry)

    def successor_used(self) -> Refuse | Reuse:
        """A retry within the grace period whose successor has been used: the client saw the
        successor, so presenting its predecessor again is a reuse."""
        return Reuse()
