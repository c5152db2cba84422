"""The login page: username and password, checked with argon2id off the event loop.

The login form's CSRF token is a signed double-submit cookie (:mod:`auth_server.login_csrf`): a
visitor who is not signed in has no session, and viewing the page stores nothing. A successful
login creates the session, with a fresh id and CSRF token, replacing any session the browser had.
``return_to`` may only lead back to the authorization endpoint, the device page (with a user code at
most), or one of the consoles (by exact path), so the page cannot be used as an open redirector.

A user with two-step sign-in (issue 18) who gives the right password is not signed in yet: she is
sent to the second step (:mod:`auth_server.endpoints.two_step`), which signs her in through
:func:`complete_sign_in` as this page does. The page also offers *Sign in with a passkey* (its one
script, :mod:`auth_server.two_step.script`), answered by :func:`passkey_options` and
:func:`passkey_login`: a passkey that verifies its user (PIN, fingerprint) is two factors alone.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web

from auth_server import login_csrf, paths
from auth_server.appkeys import REGISTRY
from auth_server.authorization.checks import registered_redirect
from auth_server.crypto import new_token
from auth_server.i18n import N_, _, ngettext
from auth_server.oidc.acr import MULTIPLE_FACTORS, PASSKEY, PASSWORD
from auth_server.oidc.logout import end, end_session
from auth_server.pages import current_session, render, see_other, session_id, set_session_cookie
from auth_server.passwords import BUSY_RETRY_AFTER, LockedOut, TooBusy, check_credentials
from auth_server.rate_limits import limit, per_address
from auth_server.stores.device_codes import normal_user_code, shown_user_code
from auth_server.stores.sign_in_steps import PENDING_TTL, PendingSignIn
from auth_server.two_step import passkeys
from auth_server.two_step.script import SCRIPT, allow_script
from shared.error_middleware import html_page
from shared.errors import InvalidRequest
from shared.http import client_ip, read_form

INVALID_LOGIN = N_("Invalid username or password.")  # shown in the page's language
# pages a sign-in may return to besides the authorization endpoint (exact paths, no query)
CONSOLE_PAGES = frozenset({paths.DEVELOPERS, paths.ADMIN, paths.ACCOUNT, paths.SECURITY})


def safe_return_to(value: str | None) -> str:
    """The authorization request to resume, rebuilt from its parsed query; the login page otherwise."""
    if not value:
        return paths.LOGIN
    if value in CONSOLE_PAGES:
        return value
    parts = urlsplit(value)
    if parts.path == paths.DEVICE and not parts.scheme and not parts.netloc:
        # the device page (RFC 8628 §3.3), and the user code it was opened with, if it is one
        code = normal_user_code(dict(parse_qsl(parts.query)).get("user_code", ""))
        return paths.DEVICE if code is None else f"{paths.DEVICE}?user_code={shown_user_code(code)}"
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
    passkey_error: str | None = None,
) -> web.Response:
    """The login form, its CSRF token bound to the visitor's login cookie (nothing is stored);
    ``passkey_error`` names what went wrong with a passkey (``failed``, ``unverified``: worded in
    login.html)."""
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
        signup=request.app[REGISTRY].settings.signup,  # "Create an account"
        password_reset=request.app[REGISTRY].settings.mail_enabled,  # "Forgot your password?"
        passkey_script=SCRIPT,
        passkey_error=passkey_error,
    )
    allow_script(response)
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
            request, return_to=return_to, message=_("Your session expired. Please sign in again."), status=400
        )
    username, password = form.get("username", ""), form.get("password", "")
    try:
        user = await check_credentials(registry, username, password, client_ip(request), via="login_page")
    except LockedOut as locked:
        minutes = max(1, round(locked.retry_after / 60))
        message = ngettext(
            "Too many failed sign-in attempts. Try again in about %(num)s minute.",
            "Too many failed sign-in attempts. Try again in about %(num)s minutes.",
            minutes,
        ) % {"num": minutes}
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
            message=_("Too many people are signing in right now. Please try again in a moment."),
            username=username,
            status=503,
            retry_after=BUSY_RETRY_AFTER,
        )
    if user is None:
        return await _form_page(
            request, return_to=return_to, message=_(INVALID_LOGIN), username=username, status=400
        )
    if await registry.two_step.enabled(user.user_id):
        # the password was only the first step: nothing is signed in until the second
        pending = PendingSignIn(user.subject, user.username, (PASSWORD,), return_to, csrf=new_token())
        return await begin_second_step(request, pending)
    return await complete_sign_in(
        request, user_id=user.subject, username=user.username, amr=(PASSWORD,), return_to=return_to
    )


async def complete_sign_in(
    request: web.Request, *, user_id: str, username: str, amr: tuple[str, ...], return_to: str
) -> web.Response:
    """Sign the browser in as this user (a new session id and CSRF token; the same ``sid`` if she
    was signed in already) and send it on to ``return_to``. Another user's session on this browser
    ends first, and its clients are told."""
    registry = request.app[REGISTRY]
    old_key = session_id(request)
    session = None if old_key is None else await registry.sessions.get(old_key)
    if old_key is not None and session is not None and session.user_id not in (None, user_id):
        # another user signs in on this browser: the first one's session ends, and its clients are told
        await end(registry, old_key, session, ip=client_ip(request), via="another_user_signed_in")
    new_sid = await registry.sessions.log_in(
        old_key,
        user_id=user_id,
        username=username,
        now=int(time.time()),
        amr=amr,
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent"),
    )
    response = see_other(return_to)
    set_session_cookie(request, response, new_sid)
    login_csrf.forget(request, response)
    return response


def pending_cookie_name(request: web.Request) -> str:
    """The cookie of a sign-in waiting for its second step (``__Host-`` on https, like the session's)."""
    secure = request.app[REGISTRY].settings.secure_cookies
    return "__Host-tessera_two_step" if secure else "tessera_two_step"


async def begin_second_step(request: web.Request, pending: PendingSignIn) -> web.Response:
    """Keep a sign-in waiting for its second step (bound to this browser by a cookie of its own,
    for :data:`~auth_server.stores.sign_in_steps.PENDING_TTL` seconds) and send the browser to
    the second step's page."""
    token = await request.app[REGISTRY].sign_in_steps.start(pending)
    response = see_other(paths.TWO_STEP)
    set_pending_cookie(request, response, token)
    return response


def set_pending_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    settings = request.app[REGISTRY].settings
    response.set_cookie(
        pending_cookie_name(request),
        token,
        max_age=PENDING_TTL,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="Lax",
    )


def forget_pending_cookie(request: web.Request, response: web.StreamResponse) -> None:
    settings = request.app[REGISTRY].settings
    response.del_cookie(pending_cookie_name(request), path="/", secure=settings.secure_cookies, httponly=True)


def _login_form_matches(request: web.Request, presented: str, session_csrf: str | None) -> bool:
    """The login form's CSRF token (or the signed-in session's, for one signing in again)."""
    if login_csrf.matches(request, presented):
        return True
    return session_csrf is not None and secrets.compare_digest(
        session_csrf.encode(), presented.encode("utf-8", "surrogatepass")
    )


def _passkey_party(request: web.Request) -> str:
    """Who a sign-in ceremony's challenge is bound to: this browser's login-form cookie."""
    return "login:" + request.cookies.get(login_csrf.cookie_name(request), "")


async def passkey_options(request: web.Request) -> web.Response:
    """WebAuthn options to sign in with any passkey of this site (JSON, for the login page's
    script): user verification required, no credential named (the browser offers hers)."""
    registry = request.app[REGISTRY]
    await limit(registry, per_address("login", request, registry.settings.rate_login_per_ip))
    form = await read_form(request)
    session = await current_session(request)
    if not request.cookies.get(login_csrf.cookie_name(request)) or not _login_form_matches(
        request, form.get("csrf_token", ""), None if session is None else session.csrf
    ):
        raise InvalidRequest("The sign-in form expired; reload the page and try again.")
    rp = passkeys.RelyingParty.of(registry.settings.issuer, registry.settings.site_name)
    challenge = passkeys.new_challenge()
    challenge_id = await registry.sign_in_steps.put_challenge(
        challenge, purpose="sign-in", bound_to=_passkey_party(request)
    )
    options = passkeys.authentication_options(rp, challenge, allowed=None, user_verification=True)
    return options_response(challenge_id, options)


def options_response(challenge_id: str, options: str) -> web.Response:
    body = f'{{"challenge_id": "{challenge_id}", "options": {options}}}'
    return web.Response(text=body, content_type="application/json", headers={"Cache-Control": "no-store"})


@html_page
async def passkey_login(request: web.Request) -> web.Response:
    """Sign in with a passkey: the login page's script sends what the browser's passkey signed."""
    registry = request.app[REGISTRY]
    await limit(registry, per_address("login", request, registry.settings.rate_login_per_ip))
    form = await read_form(request)
    return_to = safe_return_to(form.get("return_to"))
    session = await current_session(request)
    if not _login_form_matches(
        request, form.get("csrf_token", ""), None if session is None else session.csrf
    ):
        return await _form_page(
            request, return_to=return_to, message=_("Your session expired. Please sign in again."), status=400
        )
    challenge = await registry.sign_in_steps.take_challenge(
        form.get("challenge_id", ""), purpose="sign-in", bound_to=_passkey_party(request)
    )
    rp = passkeys.RelyingParty.of(registry.settings.issuer, registry.settings.site_name)
    credential = form.get("credential", "")
    try:
        if challenge is None:
            raise passkeys.PasskeyRefused("no such challenge (expired, used, or another browser's)")
        credential_id, user_handle = passkeys.credential_of(credential)
        passkey = await registry.two_step.passkey(credential_id)
        if passkey is None or (user_handle is not None and user_handle != passkey.user_id.bytes):
            raise passkeys.PasskeyRefused("unknown passkey")
        assertion = passkeys.verify_authentication(
            rp, credential, challenge, public_key=passkey.public_key, sign_count=passkey.sign_count
        )
    except passkeys.PasskeyRefused:
        await registry.audit.record("login.failed", ip=client_ip(request), via="passkey")
        return await _form_page(request, return_to=return_to, passkey_error="failed", status=400)
    await registry.two_step.passkey_used(passkey.credential_id, assertion.sign_count)
    if not assertion.user_verified:  # presence alone is one factor: not enough without the password
        await registry.audit.record("login.failed", ip=client_ip(request), via="passkey")
        return await _form_page(request, return_to=return_to, passkey_error="unverified", status=400)
    user = await registry.users.get(passkey.user_id)
    if user is None:
        return await _form_page(request, return_to=return_to, passkey_error="failed", status=400)
    await registry.audit.record("login.succeeded", subject=user.subject, ip=client_ip(request), via="passkey")
    return await complete_sign_in(
        request,
        user_id=user.subject,
        username=user.username,
        amr=(PASSKEY, MULTIPLE_FACTORS),
        return_to=return_to,
    )


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
