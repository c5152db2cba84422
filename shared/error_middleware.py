"""The one aiohttp middleware per app that turns errors into responses.

Handlers raise :mod:`shared.errors` classes; :func:`error_middleware` renders them: JSON with
``Cache-Control: no-store`` (:func:`json_error`), or, for a route marked :func:`html_page` in an app
that passed an ``html`` renderer, a page for a person. Failures of the backing services the app
names in ``unavailable`` (each backend lists its own: ``shared.db.UNAVAILABLE_ERRORS``,
``shared.redis.UNAVAILABLE_ERRORS``) become ``503 temporarily_unavailable``; anything else is
logged with its traceback and becomes a bare ``500 server_error``. A path that is not there
(aiohttp's ``HTTPNotFound``), or a method a path does not take (``HTTPMethodNotAllowed``), gets the
same body (``not_found``, ``method_not_allowed``), never aiohttp's plain text; as a page for a
browser (``Accept: text/html``) when the app has an ``html`` renderer, since no route marks it.

This module imports neither asyncpg nor redis: an app hands in the failures it can meet, so a
resource server can use this middleware without loading either.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from shared.errors import OAuthError, ServerError, TemporarilyUnavailable

log = logging.getLogger("tessera.errors")

HtmlRenderer = Callable[[web.Request, OAuthError], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class NotFound(OAuthError):
    """404: nothing at this path (HTTP's status; ``not_found`` is no RFC 6749 code)."""

    error = "not_found"
    status = 404


class MethodNotAllowed(OAuthError):
    """405: the path takes other methods, named in ``Allow`` (RFC 9110 §15.5.6)."""

    error = "method_not_allowed"
    status = 405

    def __init__(self, description: str, allowed: str) -> None:
        super().__init__(description)
        self.allowed = allowed

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Allow": self.allowed}


def json_error(error: OAuthError) -> web.Response:
    return web.Response(
        body=json.dumps(error.body()).encode(),
        status=error.status,
        headers=error.headers(),
        content_type="application/json",
    )


def html_page(handler: Handler) -> Handler:
    """Mark a handler whose errors are shown to a person as a page, not returned as JSON."""
    handler.__tessera_html__ = True  # type: ignore[attr-defined]
    return handler


def error_middleware(
    html: HtmlRenderer | None = None,
    *,
    observe: Callable[[OAuthError], None] | None = None,
    unavailable: tuple[type[BaseException], ...] = (),
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The one place errors become responses. Unknown exceptions are logged and become a bare 500.

    ``html`` renders the errors of :func:`html_page` routes; ``observe`` sees every error rendered
    (for metrics by error code); ``unavailable`` lists the exceptions that mean a backing service
    cannot be reached now (503 with ``Retry-After``, not 500).
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return await _render(request, NotFound("Nothing is here: check the path."), html, None)
        except web.HTTPMethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.allowed_methods))
            wrong = MethodNotAllowed(f"{request.method} is not allowed here; allowed: {allowed}.", allowed)
            return await _render(request, wrong, html, None)
        except web.HTTPException:
            raise
        except OAuthError as error:
            if error.status >= 500:
                log.warning("%s %s -> %s: %s", request.method, request.path, error.error, error.description)
            return await _render(request, error, html, observe)
        except unavailable as exc:
            log.warning("%s %s -> backing service unavailable: %r", request.method, request.path, exc)
            down = TemporarilyUnavailable("A backing service is unavailable; retry shortly.", retry_after=1)
            return await _render(request, down, html, observe)
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
    """JSON, unless the app has an ``html`` renderer and the matched route is an :func:`html_page`
    (or, with no route matched, a browser asks for a page)."""
    if observe is not None:
        observe(error)
    if html is not None and _for_a_person(request):
        response = await html(request, error)
        if isinstance(error, MethodNotAllowed):
            response.headers["Allow"] = error.allowed
    else:
        response = json_error(error)
    if error.close_connection:
        response.force_close()
    return response


def _for_a_person(request: web.Request) -> bool:
    """Whether an error of ``request`` is shown as a page: its route says so (:func:`html_page`);
    a path that matched no route has none to ask, and is a page when a browser asks for one."""
    if getattr(request.match_info, "http_exception", None) is None:  # a route matched
        return bool(getattr(getattr(request.match_info, "handler", None), "__tessera_html__", False))
    return "text/html" in request.headers.get("Accept", "")
