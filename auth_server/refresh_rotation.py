"""Refresh-token rotation (RFC 6749 §6, RFC 9700 §4.14.2): what a presented refresh token gets.

The rules, apart from the SQL. The refresh-token store (``stores/refresh_tokens.py``) locks the
presented token's row in one transaction, hands its facts to :meth:`RotationPolicy.decide` and
carries the decision out in that same transaction; the grant (``grants/refresh_token.py``) turns
a refusal into the RFC 6749 §5.2 error. In order:

1. a token of another client, or of a revoked family, is refused;
2. a token already rotated is a reuse — one of two parties holds a stolen copy, so the whole
   family is revoked — unless it is retried within the grace period (a client that lost the
   response may retry the *same* token for a few seconds);
3. an expired token, or a token of an expired family, is refused;
4. the new access token's scope is the requested one, or else the family's, within what the client
   may still have; asking for more than the family was granted, or ending with nothing, is refused
   (the new refresh token keeps the family's full scope, as RFC 6749 §6 requires);
5. otherwise the token rotates. A retry within the grace period rotates in place of the successor
   the client never saw; if that successor has been used, the client did see it
   (:meth:`RotationPolicy.successor_used`): the retry is a reuse.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


class Rejection(enum.Enum):
    UNKNOWN = enum.auto()
    WRONG_CLIENT = enum.auto()
    EXPIRED = enum.auto()
    REVOKED = enum.auto()
    REUSED = enum.auto()
    SCOPE_EXCEEDED = enum.auto()

    @property
    def description(self) -> str:
        if self is Rejection.REUSED:
            return "The refresh token was already used; its token family has been revoked."
        if self is Rejection.SCOPE_EXCEEDED:
            return "The requested scope exceeds what was granted or what the client may have."
        # one description for every other dead token: the answer must not tell a real token from a guess
        return "The refresh token is invalid, expired or revoked."


@dataclass(frozen=True, slots=True)
class Presented:
    """The facts of a presented refresh token, read from its locked row."""

    client_id: str  # the client its family was granted to
    scope: tuple[str, ...]  # what its family was granted
    revoked: bool  # its family has been revoked
    rotated_at: datetime | None  # when it was exchanged for a successor; None: never
    expires_at: datetime  # when it, or its family, ends, whichever is first
    now: datetime  # the database's clock, the one the times above were written by


@dataclass(frozen=True, slots=True)
class Rotate:
    """Issue a successor; the new access token has ``scope``."""

    scope: tuple[str, ...]
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
    ) -> Decision:
        """What ``client_id``, which may now have ``client_scope``, gets for ``token``."""
        if token.client_id != client_id:
            return Refuse(Rejection.WRONG_CLIENT)
        if token.revoked:
            return Refuse(Rejection.REVOKED)
        retry = token.rotated_at is not None
        if token.rotated_at is not None and not (
            self.grace_period and token.now - token.rotated_at <= self.grace_period
        ):
            return Reuse()
        if token.expires_at <= token.now:
            return Refuse(Rejection.EXPIRED)
        if requested_scope is not None and not set(requested_scope) <= set(token.scope):
            return Refuse(Rejection.SCOPE_EXCEEDED)
        scope = tuple(s for s in (requested_scope or token.scope) if s in client_scope)
        if not scope:
            return Refuse(Rejection.SCOPE_EXCEEDED)
        return Rotate(scope, retry=retry)

    def successor_used(self) -> Refuse | Reuse:
        """A retry within the grace period whose successor has been used: the client saw the
        successor, so presenting its predecessor again is a reuse."""
        return Reuse()
