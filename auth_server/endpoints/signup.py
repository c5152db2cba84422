"""Sign-up and email verification (issue 18): ``/signup``, the link mailed to confirm the address
(``/signup/verify``), and a new link for a sign-up left half-finished (``/signup/resend``).

**Sign-up** (only with ``TESSERA_SIGNUP=on``): username, email address, password and an optional
nickname. A bad field is said on the page, and nothing typed but the passwords is lost. A taken
*username* is said too: usernames are public handles (the consoles and the sessions list show
them, and the page could not refuse one without telling), as on most sites; the per-address
budget bounds how fast anyone can probe them. A taken *email address* is never said: the account is
made all the same, with the address unconfirmed, and the mail sent to the address tells its owner
that they already have an account, where a new one would get its confirmation link. So the
answer, the work (one argon2id hash) and what becomes of the username are the same either way, and
nobody can hold someone else's address: an address is confirmed for one account at most, by
whoever can read its mail. The account can sign in at once; until the address is confirmed, its
``email_verified`` is false in ID tokens and at userinfo.

**Verification**: the link's token (256 bits, only its hash in Redis, for
``TESSERA_EMAIL_VERIFICATION_TTL``) is spent by a button on the page it opens, never by merely
opening it (mail scanners open links). **A new link**: asked for by username or address; the
answer is the same whether or not an account matched, and the lookup is the mail worker's.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from aiohttp import web

from auth_server import accounts, i18n, login_csrf, paths
from auth_server.accounts import SignUpFields, account_page, retry_minutes
from auth_server.appkeys import REGISTRY
from auth_server.endpoints.login import safe_return_to
from auth_server.pages import see_other
from auth_server.passwords import BUSY_RETRY_AFTER, TooBusy
from auth_server.rate_limits import limit
from auth_server.stores import outbox
from auth_server.stores.account_tokens import VERIFY_EMAIL
from auth_server.stores.outbox import Mail
from auth_server.stores.rate_limits import Limit
from auth_server.stores.users import EmailVerification, Profile, UsernameTaken
from shared.error_middleware import html_page
from shared.errors import TooManyRequests
from shared.http import client_ip, read_form


def _sign_in_link(return_to: str) -> str:
    """The login page, resuming the authorization request the sign-up came from, if any."""
    return paths.LOGIN if return_to == paths.LOGIN else f"{paths.LOGIN}?{urlencode({'return_to': return_to})}"


def _form(
    request: web.Request,
    fields: SignUpFields,
    return_to: str,
    *,
    status: int = 200,
    retry_after: int | None = None,
    **context: object,
) -> web.Response:
    page = account_page(
        request,
        "signup.html",
        status=status,
        fields=fields,
        return_to=return_to,
        sign_in=_sign_in_link(return_to),
        **context,
    )
    if retry_after is not None:
        page.headers["Retry-After"] = str(retry_after)
    return page


def _signup_on(request: web.Request) -> None:
    if not request.app[REGISTRY].settings.signup:
        raise web.HTTPNotFound()  # TESSERA_SIGNUP=off: as if there were no such page


@html_page
async def signup_page(request: web.Request) -> web.Response:
    _signup_on(request)
    return _form(request, SignUpFields(), safe_return_to(request.query.get("return_to")))


@html_page
async def signup(request: web.Request) -> web.Response:
    """Make the account (its address unconfirmed) and queue its mail; then "check your email"."""
    _signup_on(request)
    registry = request.app[REGISTRY]
    settings = registry.settings
    form = await read_form(request)
    fields = SignUpFields.of(form)
    return_to = safe_return_to(form.get("return_to"))
    if not login_csrf.matches(request, form.get("csrf_token", "")):
        return _form(request, fields, return_to, status=400, message="expired_form")
    problems = accounts.sign_up_problems(
        fields, form.get("password", ""), form.get("password_again", ""), settings
    )
    if problems:
        return _form(request, fields, return_to, status=400, message="fix_below", problems=problems)
    try:  # counted only now: a typo costs nothing, and everything past here costs a hash
        await limit(registry, accounts.per_address_per_hour("signup", request, settings.rate_signup_per_ip))
        password_hash = await accounts.hash_new_password(form["password"])
    except TooManyRequests as refused:
        wait = refused.retry_after or 60
        minutes = retry_minutes(wait)
        return _form(
            request,
            fields,
            return_to,
            status=429,
            retry_after=wait,
            message="too_many",
            retry_minutes=minutes,
        )
    except TooBusy:
        return _form(request, fields, return_to, status=503, retry_after=BUSY_RETRY_AFTER, message="busy")
    email = accounts.normal_email(fields.email)
    try:
        user = await registry.users.sign_up(
            fields.username, password_hash, email=email, nickname=fields.nickname or None
        )
    except UsernameTaken:
        return _form(
            request, fields, return_to, status=400, message="fix_below", problems={"username": "taken"}
        )
    # her language: the page's, kept as her profile's locale (OpenID Connect's claim), which her mail speaks
    await registry.users.set_profile(user.user_id, {"locale": i18n.current().tag})
    # the worker decides, when it sends it, between the confirmation link and "you have an account"
    await registry.outbox.enqueue(Mail(outbox.SIGNUP, user_id=user.subject))
    await registry.audit.record("user.signed_up", subject=user.subject, ip=client_ip(request))
    query = "" if return_to == paths.LOGIN else f"?{urlencode({'return_to': return_to})}"
    return see_other(f"{paths.SIGNUP_SENT}{query}")


@html_page
async def sent_page(request: web.Request) -> web.Response:
    """ "Check your email", after a sign-up (``again``: after asking for a new link)."""
    settings = request.app[REGISTRY].settings
    return_to = safe_return_to(request.query.get("return_to"))
    return account_page(
        request,
        "mail_sent.html",
        kind="verify" if request.query.get("again") else "signup",
        sign_in=_sign_in_link(return_to),
        verify_hours=settings.email_verification_ttl // 3600,
        verify_minutes=settings.email_verification_ttl // 60,
        reset_minutes=settings.password_reset_ttl // 60,
    )


def _mail_on(request: web.Request) -> None:
    if not request.app[REGISTRY].settings.mail_enabled:
        raise web.HTTPNotFound()  # no TESSERA_SMTP_URL: no mail, and no page that would send one


@html_page
async def verify_page(request: web.Request) -> web.Response:
    """The page a confirmation link opens: the address and account, and a button that confirms it
    (the token is spent by the button, not by opening the link)."""
    _mail_on(request)
    token = request.query.get("token", "")
    found = await request.app[REGISTRY].account_tokens.peek(VERIFY_EMAIL, token)
    if found is None:
        return account_page(request, "verify.html", status=400, state="expired")
    profile = await _profile(request, found.user_id)
    if profile is None:
        return account_page(request, "verify.html", status=400, state="expired")
    return account_page(
        request, "verify.html", state="confirm", token=token, email=found.email, username=profile.username
    )


@html_page
async def verify(request: web.Request) -> web.Response:
    _mail_on(request)
    registry = request.app[REGISTRY]
    form = await read_form(request)
    token = form.get("token", "")
    if not login_csrf.matches(request, form.get("csrf_token", "")):
        found = await registry.account_tokens.peek(VERIFY_EMAIL, token)
        profile = None if found is None else await _profile(request, found.user_id)
        if found is None or profile is None:
            return account_page(request, "verify.html", status=400, state="expired")
        return account_page(
            request,
            "verify.html",
            status=400,
            state="confirm",
            message="expired_form",
            token=token,
            email=found.email,
            username=profile.username,
        )
    taken = await registry.account_tokens.take(VERIFY_EMAIL, token)
    profile = None if taken is None else await _profile(request, taken.user_id)
    if taken is None or profile is None:
        return account_page(request, "verify.html", status=400, state="expired")
    outcome = await registry.users.verify_email(profile.user_id, taken.email)
    await registry.audit.record(
        "user.email_verified", subject=taken.user_id, ip=client_ip(request), outcome=outcome.value
    )
    return account_page(
        request,
        "verify.html",
        status=200 if outcome is EmailVerification.VERIFIED else 409,
        state=outcome.value,
        email=taken.email,
    )


async def _profile(request: web.Request, user_id: str) -> Profile | None:
    try:
        return await request.app[REGISTRY].users.profile(uuid.UUID(user_id))
    except ValueError:
        return None


@html_page
async def resend_page(request: web.Request) -> web.Response:
    _mail_on(request)
    return account_page(request, "verify_resend.html", identifier="")


@html_page
async def resend(request: web.Request) -> web.Response:
    """Queue a request for new confirmation links: the worker finds the accounts (if any) that
    what was typed names and whose address is unconfirmed, out of sight of whoever asked."""
    _mail_on(request)
    registry = request.app[REGISTRY]
    settings = registry.settings
    form = await read_form(request)
    typed = form.get("identifier", "").strip()
    return await request_mail(
        request,
        template="verify_resend.html",
        typed=typed,
        csrf_ok=login_csrf.matches(request, form.get("csrf_token", "")),
        limits=(
            accounts.per_address_per_hour("account-mail", request, settings.rate_account_mail_per_ip),
            accounts.per_identifier_per_hour("verify-resend", typed, settings.rate_verify_resend),
        ),
        mail=Mail(outbox.VERIFY_REQUEST, typed=typed),
        event="user.verification_requested",
        sent=f"{paths.SIGNUP_SENT}?again=1",
    )


async def request_mail(
    request: web.Request,
    *,
    template: str,
    typed: str,
    csrf_ok: bool,
    limits: tuple[Limit, ...],
    mail: Mail,
    event: str,
    sent: str,
) -> web.Response:
    """A form that asks for mail about an account (a new confirmation link, a reset link): the same
    answer, "check your email", whether or not an account matches, after the same work (a request
    queued; the lookup is the worker's). Its budgets: per client address, and per what was typed."""
    registry = request.app[REGISTRY]
    if not csrf_ok:
        return account_page(request, template, status=400, identifier=typed, message="expired_form")
    if not typed or len(typed) > accounts.IDENTIFIER_MAX:
        return account_page(
            request,
            template,
            status=400,
            identifier=typed[: accounts.IDENTIFIER_MAX],
            problems={"identifier": "missing"},
        )
    try:
        await limit(registry, *limits)
    except TooManyRequests as refused:
        wait = refused.retry_after or 60
        page = account_page(
            request,
            template,
            status=429,
            identifier=typed,
            message="too_many",
            retry_minutes=retry_minutes(wait),
        )
        page.headers["Retry-After"] = str(wait)
        return page
    await registry.outbox.enqueue(mail)
    await registry.audit.record(event, ip=client_ip(request))
    return see_other(sent)
