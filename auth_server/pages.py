"""Server-rendered HTML: templates, the session cookie, and the headers every page carries.

Pages work without JavaScript and allow none (CSP ``default-src 'none'``); they cannot be framed
(``X-Frame-Options: DENY``, ``frame-ancestors 'none'``), leak nothing through Referer, and are never cached.
"""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web

from auth_server.appkeys import REGISTRY
from auth_server.stores.sessions import Session
from shared.errors import NO_STORE, OAuthError

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("auth_server", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:;"
    " frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    **NO_STORE,
}


def render(template: str, *, status: int = 200, **context: Any) -> web.Response:
    html = _templates.get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", headers=PAGE_HEADERS)


async def error_page(request: web.Request, error: OAuthError) -> web.Response:
    """How an error reaches a person: a page, never a redirect to an unverified URI."""
    page = render("error.html", status=error.status, error=error.error, description=error.description)
    if error.retry_after is not None:
        page.headers["Retry-After"] = str(error.retry_after)
    return page


def cookie_name(request: web.Request) -> str:
    # The __Host- prefix pins the cookie to this host, path / and https (RFC 6265bis §4.1.3.2).
    return "__Host-tessera_session" if request.app[REGISTRY].settings.secure_cookies else "tessera_session"


def session_id(request: web.Request) -> str | None:
    return request.cookies.get(cookie_name(request)) or None


async def current_session(request: web.Request) -> Session | None:
    sid = session_id(request)
    return None if sid is None else await request.app[REGISTRY].sessions.get(sid)


def set_session_cookie(request: web.Request, response: web.StreamResponse, sid: str) -> None:
    settings = request.app[REGISTRY].settings
    response.set_cookie(
        cookie_name(request),
        sid,
        max_age=settings.session_ttl,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="Lax",
    )


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **PAGE_HEADERS})
