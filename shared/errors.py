"""OAuth 2.0 errors and the one middleware that renders them.

Every error a client can see is one of these classes: RFC 6749 §4.1.2.1 / §5.2 codes for the
authorization server, RFC 6750 §3.1 codes for resource servers. Handlers raise; only
:func:`error_middleware` builds the response, so the body, the status and the headers
(``Cache-Control: no-store``, ``WWW-Authenticate``, ``Retry-After``) are the same everywhere.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import ClassVar

import asyncpg
import redis.exceptions
from aiohttp import web

log = logging.getLogger("tessera.errors")

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
    """RFC 6750 §3: errors of a protected resource, challenged with ``WWW-Authenticate: Bearer``."""

    realm: ClassVar[str] = "tessera"

    def challenge_params(self) -> dict[str, str]:
        return {"realm": self.realm, "error": self.error, "error_description": self.description}

    def headers(self) -> dict[str, str]:
        params = ", ".join(f'{k}="{_quote(v)}"' for k, v in self.challenge_params().items())
        return {**super().headers(), "WWW-Authenticate": f"Bearer {params}"}


class InvalidToken(BearerError):
    error = "invalid_token"
    status = 401


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
    cleaned = "".join(c if (c == " " or "!" <= c <= "~") and c not in '"\\' else "?" for c in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


# Failures of the backing services: the request cannot be served now, but may be in a moment.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,  # Postgres restarting
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InternalClientError,  # asyncpg's protocol state when the server vanished mid-operation
    ConnectionError,
    TimeoutError,
    socket.gaierror,  # the service's host name does not resolve
    FileNotFoundError,  # its Unix socket is gone (a local server stopped)
)


def json_error(error: OAuthError) -> web.Response:
    return web.Response(
        body=json.dumps(error.body()).encode(),
        status=error.status,
        headers=error.headers(),
        content_type="application/json",
    )


HtmlRenderer = Callable[[web.Request, OAuthError], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def html_page(handler: Handler) -> Handler:
    """Mark a handler whose errors are shown to a person as a page, not returned as JSON."""
    handler.__tessera_html__ = True  # type: ignore[attr-defined]
    return handler


def error_middleware(
    html: HtmlRenderer | None = None, *, observe: Callable[[OAuthError], None] | None = None
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The one place errors become responses. Unknown exceptions are logged and become a bare 500.

    ``observe`` sees every error rendered (for metrics by error code).
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except OAuthError as error:
            if error.status >= 500:
                log.warning("%s %s -> %s: %s", request.method, request.path, error.error, error.description)
            return await _render(request, error, html, observe)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("%s %s -> backing service unavailable: %r", request.method, request.path, exc)
            unavailable = TemporarilyUnavailable(
                "A backing service is unavailable; retry shortly.", retry_after=1
            )
            return await _render(request, unavailable, html, observe)
        except Exception:
            log.exception("%s %s -> unhandled error", request.method, request.path)
            return await _render(request, ServerError("The server hit an unexpected error."), html, observe)

    return middleware


async def _render(
    request: web.Request,
    error: OAuthError,
    html: HtmlRenderer | None,
    observe: Callable[[OAuthError], None] | None,
) -> web.StreamResponse:
    if observe is not None:
        observe(error)
    route_handler = getattr(request.match_info, "handler", None)
    if html is not None and getattr(route_handler, "__tessera_html__", False):
        response = await html(request, error)
    else:
        response = json_error(error)
    if error.close_connection:
        response.force_close()
    return response
