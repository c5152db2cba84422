"""OAuth 2.0 errors: one class per RFC error code, with its status, body and headers.

Every error a client can see is one of these classes: RFC 6749 §4.1.2.1 / §5.2 codes for the
authorization server, RFC 6750 §3.1 codes for resource servers. Handlers raise; only the one
middleware of each app (:mod:`shared.error_middleware`) builds the response, so the body, the
status and the headers (``Cache-Control: no-store``, ``WWW-Authenticate``, ``Retry-After``) are the
same everywhere.

Plain Python, no framework and no backend: a resource server imports these without aiohttp's
middleware, asyncpg or redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An error with an RFC error code, a human-readable description and an HTTP status."""

    error: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400
    close_connection: ClassVar[bool] = False  # the rest of the request cannot be trusted to follow

    def __init__(self, description: str, *, retry_after: int | None = None) -> None:
        description = _describable(description)
        super().__init__(description)
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}

    def headers(self) -> dict[str, str]:
        headers = dict(NO_STORE)
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed (RFC 6749 §5.2): 401 with a ``WWW-Authenticate`` challenge."""

    error = "invalid_client"
    status = 401

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "WWW-Authenticate": 'Basic realm="tessera", charset="UTF-8"'}


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTarget(OAuthError):
    """RFC 8707 §2: a requested resource is unknown, not allowed, or not one this server issues for."""

    error = "invalid_target"


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403


class ServerError(OAuthError):
    error = "server_error"
    status = 500


class TemporarilyUnavailable(OAuthError):
    error = "temporarily_unavailable"
    status = 503


class TooManyRequests(OAuthError):
    """A rate limit was hit (429, with ``Retry-After``); the OAuth code says to come back later."""

    error = "temporarily_unavailable"
    status = 429


class PayloadTooLarge(InvalidRequest):
    status = 413


class RequestTimeout(InvalidRequest):
    """The body trickled in too slowly (slow-loris): 408, and the connection is closed."""

    status = 408
    close_connection = True


class BearerError(OAuthError):
    """RFC 6750 §3: errors of a protected resource, challenged with ``WWW-Authenticate: Bearer``.

    :meth:`add_params` adds auth-params to the challenge (RFC 6750 §3 allows more than its own):
    RFC 9728 §5.1 ``resource_metadata``, or the ``scope`` a 401'd request needs. The challenge's
    scheme is ``Bearer``, or ``DPoP`` for a request that used that scheme (RFC 9449 §7.1);
    :meth:`add_challenge` offers another scheme beside it (RFC 9110 §11.6.1, RFC 9449 §7.2).
    """

    realm: ClassVar[str] = "tessera"
    extra_params: Mapping[str, str] = MappingProxyType({})
    scheme: str = "Bearer"
    other_challenges: tuple[str, ...] = ()

    def add_challenge(self, challenge: str) -> None:
        """Offer ``challenge`` (a scheme and its parameters, e.g. ``DPoP algs="ES256"``) after this one."""
        self.other_challenges = (*self.other_challenges, challenge)

    def add_params(self, **params: str) -> None:
        """Carry ``params`` in the challenge too (never in place of ``realm``, ``error`` or
        ``error_description``)."""
        self.extra_params = {**self.extra_params, **params}

    def challenge_params(self) -> dict[str, str]:
        own = {"realm": self.realm, "error": self.error, "error_description": self.description}
        return {**own, **{k: v for k, v in self.extra_params.items() if k not in own}}

    def headers(self) -> dict[str, str]:
        params = ", ".join(f'{k}="{_quote(v)}"' for k, v in self.challenge_params().items())
        challenges = ", ".join((f"{self.scheme} {params}", *self.other_challenges))
        return {**super().headers(), "WWW-Authenticate": challenges}


class InvalidToken(BearerError):
    error = "invalid_token"
    status = 401


class NoToken(InvalidToken):
    """A request with no access token at all: RFC 6750 §3.1 says its challenge SHOULD NOT carry an
    error code or other error information (``WWW-Authenticate: Bearer realm="tessera"``, with any
    parameters the app adds, such as ``resource_metadata``); the body still says what is missing."""

    def challenge_params(self) -> dict[str, str]:
        params = super().challenge_params()
        del params["error"], params["error_description"]
        return params


class InsufficientScope(BearerError):
    error = "insufficient_scope"
    status = 403

    def __init__(self, description: str, *, scope: str) -> None:
        super().__init__(description)
        self.scope = scope

    def challenge_params(self) -> dict[str, str]:
        return {**super().challenge_params(), "scope": self.scope}


def _describable(text: str, limit: int = 300) -> str:
    """RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E. Echoed input is made safe."""
    if len(text) <= limit and text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text  # the common case, a fixed message: nothing to replace (checked in C, not per character)
    cleaned = "".join(c if (c == " " or "!" <= c <= "~") and c not in '"\\' else "?" for c in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
