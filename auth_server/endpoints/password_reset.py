"""Resetting a forgotten password (issue 18): ``/password-reset`` (asked for by username or email
address, from the login page's "Forgot your password?") and ``/password-reset/new`` (the link
mailed, where the new password is set).

The request's answer never says whether an account exists: the page queues the request and
answers "check your email" (:func:`auth_server.endpoints.signup.request_mail`); the mail worker
looks it up and mails a link only to an account's *confirmed* address. The link's token (256
bits) is stored only as its hash, in Redis, for ``TESSERA_PASSWORD_RESET_TTL`` (30 minutes), with a
digest of the password hash it was sent under: it works once, and not at all once the password
has changed. Opening it shows the form; the token is spent only when a good new password is set
(the same rules as at sign-up), and the new hash replaces the old one only if that is still the
user's (a race with another change loses, harmlessly). Then every session of the user ends (their
clients are told, by back-channel logout), their refresh tokens are revoked and their live access
tokens deny-listed, and a note goes to the address.
"""

from __future__ import annotations

import uuid

from aiohttp import web

from auth_server import accounts, login_csrf, paths, platform
from auth_server.accounts import account_page
from auth_server.appkeys import REGISTRY
from auth_server.endpoints.signup import request_mail
from auth_server.oidc.logout import end_all_sessions
from auth_server.passwords import BUSY_RETRY_AFTER, TooBusy
from auth_server.registry import Registry
from auth_server.stores import outbox
from auth_server.stores.account_tokens import RESET_PASSWORD, AccountToken, password_marker
from auth_server.stores.outbox import Mail
from auth_server.stores.users import User
from shared.error_middleware import html_page
from shared.http import client_ip, read_form


def _mail_on(request: web.Request) -> None:
    if not request.app[REGISTRY].settings.mail_enabled:
        raise web.HTTPNotFound()  # no TESSERA_SMTP_URL: no link could be sent


@html_page
async def request_page(request: web.Request) -> web.Response:
    _mail_on(request)
    return account_page(request, "password_reset.html", identifier="")


@html_page
async def request_reset(request: web.Request) -> web.Response:
    _mail_on(request)
    settings = request.app[REGISTRY].settings
    form = await read_form(request)
    typed = form.get("identifier", "").strip()
    return await request_mail(
        request,
        template="password_reset.html",
        typed=typed,
        csrf_ok=login_csrf.matches(request, form.get("csrf_token", "")),
        limits=(
            accounts.per_address_per_hour("account-mail", request, settings.rate_account_mail_per_ip),
            accounts.per_identifier_per_hour("reset", typed, settings.rate_reset_per_email),
        ),
        mail=Mail(outbox.RESET_REQUEST, typed=typed),
        event="password_reset.requested",
        sent=paths.PASSWORD_RESET_SENT,
    )


@html_page
async def sent_page(request: web.Request) -> web.Response:
    _mail_on(request)
    settings = request.app[REGISTRY].settings
    return account_page(
        request,
        "mail_sent.html",
        kind="reset",
        sign_in=paths.LOGIN,
        verify_hours=settings.email_verification_ttl // 3600,
        verify_minutes=settings.email_verification_ttl // 60,
        reset_minutes=settings.password_reset_ttl // 60,
    )


async def _holder(registry: Registry, found: AccountToken | None) -> User | None:
    """The user a reset token is for, while their password is still the one it was sent under."""
    if found is None:
        return None
    try:
        user = await registry.users.get(uuid.UUID(found.user_id))
    except ValueError:
        return None
    if user is None or password_marker(user.password_hash) != found.password_marker:
        return None
    return user


def _expired(request: web.Request) -> web.Response:
    return account_page(request, "password_reset_new.html", status=400, state="expired")


@html_page
async def new_password_page(request: web.Request) -> web.Response:
    """The form the link opens (the token is not spent by opening it)."""
    _mail_on(request)
    registry = request.app[REGISTRY]
    token = request.query.get("token", "")
    user = await _holder(registry, await registry.account_tokens.peek(RESET_PASSWORD, token))
    if user is None:
        return _expired(request)
    return account_page(request, "password_reset_new.html", state="form", token=token, username=user.username)


@html_page
async def set_new_password(request: web.Request) -> web.Response:
    _mail_on(request)
    registry = request.app[REGISTRY]
    settings = registry.settings
    form = await read_form(request)
    token = form.get("token", "")
    found = await registry.account_tokens.peek(RESET_PASSWORD, token)
    user = await _holder(registry, found)
    if user is None or found is None:
        return _expired(request)

    def again(status: int, **context: object) -> web.Response:
        return account_page(
            request,
            "password_reset_new.html",
            status=status,
            state="form",
            token=token,
            username=user.username,
            **context,
        )

    if not login_csrf.matches(request, form.get("csrf_token", "")):
        return again(400, message="expired_form")
    password = form.get("password", "")
    problems = accounts.password_problems(
        password, form.get("password_again", ""), settings, username=user.username, email=found.email
    )
    if problems:
        return again(400, message="fix_below", problems={"password": problems})
    try:
        new_hash = await accounts.hash_new_password(password)
    except TooBusy:
        page = again(503, message="busy")
        page.headers["Retry-After"] = str(BUSY_RETRY_AFTER)
        return page
    # spent now, once: a second submission, or a race, finds it gone; and the hash changes only
    # if it is still the one the link was sent under
    if await registry.account_tokens.take(RESET_PASSWORD, token) is None:
        return _expired(request)
    if not await registry.users.replace_password(user.user_id, user.password_hash, new_hash):
        return _expired(request)
    ip = client_ip(request)
    families = await platform.revoke_grants(registry, "password reset", subject=user.subject)
    ended = await end_all_sessions(registry, user.subject, ip=ip, via="password_reset")
    await registry.outbox.enqueue(Mail(outbox.PASSWORD_CHANGED, user_id=user.subject))
    await registry.audit.record(
        "user.password_reset",
        subject=user.subject,
        ip=ip,
        sessions_ended=ended,
        refresh_token_families_revoked=families,
    )
    return account_page(request, "password_reset_new.html", state="done")
