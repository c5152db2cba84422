"""Server-rendered HTML: templates, the session cookie, and the headers every page carries.

Pages work without JavaScript and allow none (CSP ``default-src 'none'``); their forms post only to
this server (``form-action 'self'``); they cannot be framed (``X-Frame-Options: DENY``,
``frame-ancestors 'none'``), nor held by the window that opened them
(``Cross-Origin-Opener-Policy``), leak nothing through Referer, and are never cached.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

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

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https:; frame-ancestors 'none';"
    " base-uri 'none'; form-action 'self'"
)

PAGE_HEADERS = {
    # form-action: a form posts only here (markup injected into a page cannot send what the user
    # types elsewhere); render() adds the one origin a form's answer may redirect on to
    "Content-Security-Policy": _CSP,
    # no window that opened a page of ours keeps a handle on it (tabnabbing, XS-Leaks)
    "Cross-Origin-Opener-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    **NO_STORE,
}

# what may stand in a CSP source: an origin of a registered redirect URI, or a private-use scheme
_SOURCE = re.compile(
    r"[a-z][a-z0-9+.-]*:(//[A-Za-z0-9.\-]+(:[0-9]{1,5})?|//\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?)?"
)


def form_target(redirect_uri: str) -> str | None:
    """The CSP source of a verified redirect URI: browsers apply ``form-action`` to every redirect
    that follows a form's submission, so a consent (or login) form whose answer ends at the client
    must name the client's origin (``https://host:port``, or ``scheme:`` for a native app)."""
    parts = urlsplit(redirect_uri)
    source = f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"
    return source if _SOURCE.fullmatch(source) else None


def render(template: str, *, status: int = 200, form_to: str | None = None, **context: Any) -> web.Response:
    """A page; ``form_to`` is a verified redirect URI its form's answer may lead to."""
    html = _templates.get_template(template).render(**context)
    headers = PAGE_HEADERS
    source = None if form_to is None else form_target(form_to)
    if source is not None:
        headers = {**PAGE_HEADERS, "Content-Security-Policy": f"{_CSP} {source}"}
    return web.Response(text=html, status=status, content_type="text/html", headers=headers)


_GO_BACK = "Go back to the app you came from and try again."
_TELL_THEM = " If it happens again, let the app's makers know: the details below help them."

# What a person reads for each OAuth error code: what happened, and what to do about it. The
# code and its technical description follow in small print, for the app's developers.
PLAIN_WORDS: dict[str, tuple[str, str]] = {
    "invalid_request": ("This sign-in link does not work", _GO_BACK + _TELL_THEM),
    "unauthorized_client": ("This app may not sign you in this way", _GO_BACK + _TELL_THEM),
    "unsupported_response_type": (
        "This app asked in a way this site does not support",
        _GO_BACK + _TELL_THEM,
    ),
    "invalid_scope": ("This app asked for access this site does not offer", _GO_BACK + _TELL_THEM),
    "access_denied": ("Access was not given", "Nothing was shared with the app. " + _GO_BACK),
    "temporarily_unavailable": (
        "This site is busy right now",
        "Nothing is wrong on your side. Please wait a minute, then try again.",
    ),
    "server_error": (
        "Something went wrong on this site",
        "Nothing is wrong on your side. Please try again later.",
    ),
}
_EXPIRED = (
    "This page has expired",
    "Sign-in and permission pages last only a few minutes, and each can be used once."
    " Go back to the app you came from and start again.",
)
_UNKNOWN = ("This request cannot be completed", _GO_BACK + _TELL_THEM)


def plain_words(error: OAuthError) -> tuple[str, str]:
    """The headline and the advice a person reads for ``error``."""
    if error.error == "invalid_request" and "expired" in error.description:
        return _EXPIRED
    return PLAIN_WORDS.get(error.error, _UNKNOWN)


async def error_page(request: web.Request, error: OAuthError) -> web.Response:
    """How an error reaches a person: a page, never a redirect to an unverified URI."""
    headline, advice = plain_words(error)
    page = render(
        "error.html",
        status=error.status,
        headline=headline,
        advice=advice,
        error=error.error,
        description=error.description,
        site_name=request.app[REGISTRY].settings.site_name,
    )
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
