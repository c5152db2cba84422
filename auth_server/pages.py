"""Server-rendered HTML: templates, the session cookie, and the headers every page carries.

Pages work without JavaScript and allow none (CSP ``default-src 'none'``); their forms post only to
this server (``form-action 'self'``); they cannot be framed (``X-Frame-Options: DENY``,
``frame-ancestors 'none'``), nor held by the window that opened them
(``Cross-Origin-Opener-Policy``), leak nothing through Referer, and are never cached.

Every page is in the language :mod:`auth_server.i18n` chooses for its request, which
:func:`middleware` puts in force (with the operator's theme, :mod:`auth_server.theme`) before the
handler runs; templates mark their text with Jinja2's i18n extension, and a theme's templates
replace the shipped ones of the same name.
"""

from __future__ import annotations

import contextvars
import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import web

from auth_server import i18n, paths
from auth_server.appkeys import REGISTRY
from auth_server.i18n import N_
from auth_server.stores.sessions import Session
from auth_server.theme import PLAIN, THEME, Theme
from shared.errors import NO_STORE, OAuthError


@functools.cache
def environment(theme_templates: Path | None = None) -> jinja2.Environment:
    """The templates: a theme's own first (by name), then the shipped ones; gettext in the
    language of the page being made."""
    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("auth_server", "templates")]
    if theme_templates is not None:
        loaders.insert(0, jinja2.FileSystemLoader(theme_templates))
    templates = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    templates.policies["ext.i18n.trimmed"] = True  # a {% trans %} block's line breaks are spaces
    templates.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True, pgettext=i18n.pgettext, npgettext=i18n.npgettext
    )
    return templates


@dataclass(frozen=True, slots=True)
class _Page:
    """What the page being made needs to know of its request besides the language."""

    theme: Theme
    here: str  # the page's own address, for the language switch to come back to
    method: str


_page: contextvars.ContextVar[_Page | None] = contextvars.ContextVar("tessera_page", default=None)
_OUTSIDE = _Page(PLAIN, paths.WELCOME, "GET")  # a page made outside a request (tessera dev's mail page)


@web.middleware
async def middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The page's language (:func:`auth_server.i18n.choose`) and theme, for the handler and for the
    error page the error middleware (inside this one) may render instead."""
    language = i18n.Deferred(
        lambda: i18n.choose(request.query, request.cookies, request.headers.get("Accept-Language", ""))
    )
    spoken = i18n.use(language)
    page = _page.set(_Page(request.app.get(THEME, PLAIN), request.path_qs, request.method))
    try:
        return await handler(request)
    finally:
        _page.reset(page)
        i18n.reset(spoken)
        language.release()


def _here(page: _Page, context: dict[str, Any]) -> str:
    """Where the language switch leads back to: the page itself if it came from a GET; after a
    form, the form's page (the login form again with the request it resumes)."""
    if page.method in ("GET", "HEAD"):
        return page.here
    path = urlsplit(page.here).path
    return_to = context.get("return_to")
    return f"{path}?{urlencode({'return_to': return_to})}" if isinstance(return_to, str) else path


def language_links(here: str) -> list[tuple[i18n.Language, str]]:
    """The language switch: each language with the link that chooses it and comes back ``here``."""
    return [
        (language, f"{paths.LANGUAGE}?{urlencode({'lang': language.tag, 'next': here})}")
        for language in i18n.LANGUAGES
    ]


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
    """A page in the current language; ``form_to`` is a verified redirect URI its form's answer may
    lead to."""
    page = _page.get() or _OUTSIDE
    return_to = context.get("return_to")
    if isinstance(return_to, str):  # a page resuming an authorization request (the login form,
        i18n.hint(i18n.ui_locales_of({"return_to": return_to}))  # posted too) speaks its ui_locales
    language = i18n.current()
    html = (
        environment(page.theme.templates)
        .get_template(template)
        .render(
            **context,
            language=language,
            languages=language_links(_here(page, context)),
            theme_style=page.theme.style,
            theme_logo=paths.THEME_LOGO if page.theme.logo is not None else None,
        )
    )
    headers = {**PAGE_HEADERS, "Content-Language": language.tag}
    source = None if form_to is None else form_target(form_to)
    if source is not None:
        headers["Content-Security-Policy"] = f"{_CSP} {source}"
    return web.Response(text=html, status=status, content_type="text/html", headers=headers)


_GO_BACK = N_("Go back to the app you came from and try again.")
_GO_BACK_TELL_THEM = N_(
    "Go back to the app you came from and try again. If it happens again, let the app's makers know:"
    " the details below help them."
)

# What a person reads for each OAuth error code: what happened, and what to do about it, in the
# page's language (marked here, translated by plain_words). The code and its technical
# description follow in small print, for the app's developers, untranslated.
PLAIN_WORDS: dict[str, tuple[str, str]] = {
    "invalid_request": (N_("This sign-in link does not work"), _GO_BACK_TELL_THEM),
    "unauthorized_client": (N_("This app may not sign you in this way"), _GO_BACK_TELL_THEM),
    "unsupported_response_type": (
        N_("This app asked in a way this site does not support"),
        _GO_BACK_TELL_THEM,
    ),
    "invalid_scope": (N_("This app asked for access this site does not offer"), _GO_BACK_TELL_THEM),
    "access_denied": (
        N_("Access was not given"),
        N_("Nothing was shared with the app. Go back to the app you came from and try again."),
    ),
    "temporarily_unavailable": (
        N_("This site is busy right now"),
        N_("Nothing is wrong on your side. Please wait a minute, then try again."),
    ),
    "server_error": (
        N_("Something went wrong on this site"),
        N_("Nothing is wrong on your side. Please try again later."),
    ),
    # a path that is not there (shared.error_middleware), as the consoles' own "not found" says it
    "not_found": (
        N_("Page not found"),
        N_("There is no such page here. Check the address, or start from the home page."),
    ),
}
_EXPIRED = (
    N_("This page has expired"),
    N_(
        "Sign-in and permission pages last only a few minutes, and each can be used once."
        " Go back to the app you came from and start again."
    ),
)
_UNKNOWN = (N_("This request cannot be completed"), _GO_BACK_TELL_THEM)


def plain_words(error: OAuthError) -> tuple[str, str]:
    """The headline and the advice a person reads for ``error``, in the page's language."""
    headline, advice = _plain_words(error)
    return i18n.gettext(headline), i18n.gettext(advice)


def _plain_words(error: OAuthError) -> tuple[str, str]:
    if error.error == "invalid_request" and "expired" in error.description:
        return _EXPIRED
    if error.error == "invalid_request_uri":  # a pushed request (RFC 9126) spent or expired: start again
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
