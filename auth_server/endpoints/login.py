"""The login page: username and password, checked with argon2id off the event loop.

The login form's CSRF token is a signed double-submit cookie (:mod:`auth_server.login_csrf`): a
visitor who is not signed in has no session, and viewing the page stores nothing. A successful
login creates the session, with a fresh id and CSRF token, replacing any session the browser had.
``return_to`` may only lead back to the authorization endpoint (or to one of the consoles, by exact
path), so the page cannot be used as an open redirector.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web

from auth_server import login_csrf, paths
from auth_server.appkeys import REGISTRY
from auth_server.authorization.checks import registered_redirect
from auth_server.oidc.logout import end, end_session
from auth_server.pages import current_session, render, see_other, session_id, set_session_cookie
from auth_server.passwords import BUSY_RETRY_AFTER, LockedOut, TooBusy, check_credentials
from auth_server.rate_limits import limit, per_address
from shared.error_middleware import html_page
from shared.errors import InvalidRequest
from shared.http import client_ip, read_form

INVALID_LOGIN = "Invalid username or password."
# pages a sign-in may return to besides the authorization endpoint (exact paths, no query)
CONSOLE_PAGES = frozenset({paths.DEVELOPERS, paths.ADMIN, paths.ACCOUNT})


def safe_return_to(value: str | None) -> str:
    """The authorization request to resume, rebuilt from its parsed query; the login page otherwise."""
    if not value:
        return paths.LOGIN
    if value in CONSOLE_PAGES:
        return value
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path != paths.AUTHORIZE or not parts.query:
        return paths.LOGIN
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return paths.LOGIN
    return f"{paths.AUTHORIZE}?{urlencode(query)}"


async def _resumed(request: web.Request, return_to: str) -> tuple[str | None, str | None]:
    """The authorization request the login resumes: the name of the app asking (the page shows it),
    and where the request may answer (the client's verified redirect URI, which the form's CSP must
    allow: a remembered consent answers right after the login)."""
    query = dict(parse_qsl(urlsplit(return_to).query))
    client = await request.app[REGISTRY].clients.get(query.get("client_id", ""))
    if client is None:
        return None, None
    try:
        return client.client_name, registered_redirect(client, query.get("redirect_uri"))
    except InvalidRequest:
        return client.client_name, None


async def _form_page(
    request: web.Request,
    *,
    return_to: str,
    message: str | None = None,
    username: str = "",
    status: int = 200,
    retry_after: int | None = None,
) -> web.Response:
    """The login form, its CSRF token bound to the visitor's login cookie (nothing is stored)."""
    nonce, csrf = login_csrf.token(request)
    client_name, answered_at = await _resumed(request, return_to)
    response = render(
        "login.html",
        status=status,
        csrf=csrf,
        return_to=return_to,
        message=message,
        username=username,
        site_name=request.app[REGISTRY].settings.site_name,
        client_name=client_name,
        form_to=answered_at,
    )
    login_csrf.set_cookie(request, response, nonce)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@html_page
async def login_page(request: web.Request) -> web.Response:
    """The sign-in form; a signed-in user goes straight back to the request, unless it asks for a
    fresh sign-in (``reauthenticate``: OpenID Connect's ``prompt=login``, ``max_age``, or a hinted
    user who is not the one signed in)."""
    return_to = safe_return_to(request.query.get("return_to"))
    session = await current_session(request)
    reauthenticate = request.query.get("reauthenticate") == "1" and return_to != paths.LOGIN
    if session is not None and session.user_id is not None and not reauthenticate:
        if return_to != paths.LOGIN:
            return see_other(return_to)
        return render("signed_in.html", username=session.username, csrf=session.csrf)
    return await _form_page(request, return_to=return_to, username=_login_hint(return_to))


def _login_hint(return_to: str) -> str:
    """The ``login_hint`` of the request resumed (OpenID Connect Core §3.1.2.1): the username to
    pre-fill, if it is one (at most a username's length, printable)."""
    hint = dict(parse_qsl(urlsplit(return_to).query)).get("login_hint", "")
    return hint if len(hint) <= 150 and hint.isprintable() else ""


@html_page
async def login(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    await limit(registry, per_address("login", request, registry.settings.rate_login_per_ip))
    form = await read_form(request)
    return_to = safe_return_to(form.get("return_to"))
    presented = form.get("csrf_token", "")
    session = await current_session(request)  # one signed in already may sign in again (as another)
    if not login_csrf.matches(request, presented) and (
        session is None or not session.csrf_matches(presented)
    ):
        return await _form_page(
            request, return_to=return_to, message="Your session expired. Please sign in again.", status=400
        )
    username, password = form.get("username", ""), form.get("password", "")
    try:
        user = await check_credentials(registry, username, password, client_ip(request), via="login_page")
    except LockedOut as locked:
        minutes = max(1, round(locked.retry_after / 60))
        message = f"Too many failed sign-in attempts. Try again in about {minutes} minute(s)."
        return await _form_page(
            request,
            return_to=return_to,
            message=message,
            username=username,
            status=429,
            retry_after=locked.retry_after,
        )
    except TooBusy:
        return await _form_page(
            request,
            return_to=return_to,
            message="Too many people are signing in right now. Please try again in a moment.",
            username=username,
            status=503,
            retry_after=BUSY_RETRY_AFTER,
        )
    if user is None:
        return await _form_page(
            request, return_to=return_to, message=INVALID_LOGIN, username=username, status=400
        )
    old_key = session_id(request)
    if old_key is not None and session is not None and session.user_id not in (None, user.subject):
        # another user signs in on this browser: the first one's session ends, and its clients are told
        await end(registry, old_key, session, ip=client_ip(request), via="another_user_signed_in")
    new_sid = await registry.sessions.log_in(
        old_key, user_id=user.subject, username=user.username, now=int(time.time())
    )
    response = see_other(return_to)
    set_session_cookie(request, response, new_sid)
    login_csrf.forget(request, response)
    return response


@html_page
async def logout(request: web.Request) -> web.Response:
    form = await read_form(request)
    session = await current_session(request)
    sid = session_id(request)
    if session is None or sid is None or not session.csrf_matches(form.get("csrf_token", "")):
        raise InvalidRequest("The sign-out form expired; reload the page and try again.")
    response = see_other(paths.LOGIN)
    # deletes the session, clears the cookie, and tells the session's clients (back-channel logout)
    await end_session(request, response, via="logout")
    return response
