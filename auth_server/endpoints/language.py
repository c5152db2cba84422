"""The language switch on every page (issue 18, item 5): ``GET /language?lang=zh-Hans&next=/login…``.

A plain link, so it needs no JavaScript: it remembers the language in the :data:`~auth_server.i18n.COOKIE`
cookie (a year, ``SameSite=Lax``, ``HttpOnly``) and goes back to ``next``, a path on this server
(anything else goes to the welcome page: no open redirector). The cookie wins over
``Accept-Language`` on every page, but not over the ``ui_locales`` of an authorization request;
so that the switch still does what it says on a page of such a request, the ``ui_locales`` that
``next`` carries (its own, or in the ``return_to`` of the login page) becomes the language chosen.

Choosing a language changes nothing but the language, so a plain link (GET) is enough: a site that
made someone follow it would only change the language of their pages.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web

from auth_server import i18n, paths
from auth_server.appkeys import REGISTRY
from auth_server.pages import see_other
from shared.error_middleware import html_page
from shared.http import has_control_characters

NEXT_LIMIT = 4096


@html_page
async def switch(request: web.Request) -> web.Response:
    language = i18n.from_tag(request.query.get("lang"))
    back = safe_next(request.query.get("next"))
    if language is None:  # a link of another version, or a crafted one: just go back
        return see_other(back)
    response = see_other(with_ui_locales(back, language.tag))
    response.set_cookie(
        i18n.COOKIE,
        language.tag,
        max_age=i18n.COOKIE_MAX_AGE,
        path="/",
        secure=_secure_cookies(request),
        httponly=True,
        samesite="Lax",
    )
    return response


def _secure_cookies(request: web.Request) -> bool:
    """The authorization server's setting; ``tessera dev``'s mail page, which has no registry and
    serves plain http on the loopback interface only, sets a cookie a browser sends there."""
    registry = request.app.get(REGISTRY)
    return registry is not None and registry.settings.secure_cookies


def safe_next(value: str | None) -> str:
    """``value`` if it is a path of this server (``/…``, not ``//host`` nor ``/\\host``); else ``/``."""
    if (
        not value
        or len(value) > NEXT_LIMIT
        or not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or has_control_characters(value)
    ):
        return paths.WELCOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return paths.WELCOME
    return value


def with_ui_locales(path: str, tag: str) -> str:
    """``path`` with the ``ui_locales`` it carries (its own, or its ``return_to``'s) set to ``tag``;
    as it is when it carries none."""
    parts = urlsplit(path)
    query = parse_qsl(parts.query, keep_blank_values=True)
    changed = False
    rewritten = []
    for name, value in query:
        if name == "ui_locales":
            value, changed = tag, True
        elif name == "return_to" and "ui_locales" in value:
            inner = with_ui_locales(value, tag)
            value, changed = inner, changed or inner != value
        rewritten.append((name, value))
    return f"{parts.path}?{urlencode(rewritten)}" if changed else path
