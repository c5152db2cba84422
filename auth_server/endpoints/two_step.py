"""The second step of signing in (issue 18): a code from her authenticator app, one of her
recovery codes, or one of her passkeys, after the right password.

The login page keeps the half-done sign-in (:mod:`auth_server.stores.sign_in_steps`: short-lived,
bound to the browser by a cookie of its own, able to authorize nothing) and sends the browser here.
``GET /login/two-step`` asks for the second step; ``POST`` checks it. Every try reserves an attempt
in the lockout buckets the login page and the password grant share, and settles it (a wrong code
counts as a failed sign-in; the right one as the success that forgets this device's failures), so
guessing codes is throttled exactly as guessing passwords is. A TOTP code is accepted one step
either side of now, once (a code replayed, or any earlier one, is refused on every replica). Once
it succeeds, the sign-in is taken (once) and the session made, its ``amr`` saying both steps
(:mod:`auth_server.oidc.acr`).

A request that demands two-step sign-in (``acr_values``, a client's ``default_acr_values``) of a
user signed in with her password alone is sent here too (a *step-up*): if she has a second step,
she is asked for it, and her session goes on (same ``sid``) with both steps; if she has none, a page
says how to turn it on.
"""

from __future__ import annotations

import secrets
import uuid
from urllib.parse import urlencode

from aiohttp import web

from auth_server import paths
from auth_server.appkeys import REGISTRY
from auth_server.endpoints.login import (
    complete_sign_in,
    forget_pending_cookie,
    options_response,
    pending_cookie_name,
    safe_return_to,
    set_pending_cookie,
)
from auth_server.oidc.acr import ONE_TIME_CODE, PASSKEY, with_second_step
from auth_server.pages import current_session, render, see_other
from auth_server.passwords import BUSY_RETRY_AFTER
from auth_server.rate_limits import limit, per_address
from auth_server.registry import Registry
from auth_server.stores.login_attempts import Busy, Lockout
from auth_server.stores.sign_in_steps import PendingSignIn
from auth_server.stores.two_step import TwoStepStatus
from auth_server.two_step import passkeys, recovery, totp
from auth_server.two_step.script import SCRIPT, allow_script
from shared.error_middleware import html_page
from shared.errors import InvalidRequest
from shared.http import client_ip, read_form

METHODS = ("totp", "recovery", "passkey")
# what went wrong, by the name two_step.html words it under: "<method>-wrong", "replayed", "locked"
# (with minutes), "busy", "form-expired"


def _token(request: web.Request) -> str | None:
    return request.cookies.get(pending_cookie_name(request)) or None


async def _pending(request: web.Request) -> tuple[str, PendingSignIn] | None:
    token = _token(request)
    pending = None if token is None else await request.app[REGISTRY].sign_in_steps.get(token)
    return None if token is None or pending is None else (token, pending)


def _expired(request: web.Request) -> web.Response:
    """The sign-in waited too long (or this browser never started one): back to the login page."""
    response = see_other(paths.LOGIN)
    forget_pending_cookie(request, response)
    return response


async def _page(
    request: web.Request,
    pending: PendingSignIn,
    status: TwoStepStatus,
    *,
    error: str | None = None,
    minutes: int = 0,
    code: int = 200,
    retry_after: int | None = None,
    open_recovery: bool = False,
) -> web.Response:
    response = render(
        "two_step.html",
        status=code,
        csrf=pending.csrf,
        username=pending.username,
        step_up=pending.step_up,
        totp=status.totp,
        passkeys=bool(status.passkeys),
        recovery_codes_left=status.recovery_codes_left,
        error=error,
        minutes=minutes,
        open_recovery=open_recovery,
        site_name=request.app[REGISTRY].settings.site_name,
        passkey_script=SCRIPT,
    )
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return allow_script(response)


@html_page
async def two_step_page(request: web.Request) -> web.Response:
    """Ask for the second step of the sign-in this browser started; or, for a signed-in user whom
    a request sends here (``return_to``), for the second step that request demands (a step-up)."""
    registry = request.app[REGISTRY]
    found = await _pending(request)
    if found is not None:
        _, pending = found
        return await _page(request, pending, await registry.two_step.status(uuid.UUID(pending.user_id)))
    return_to = safe_return_to(request.query.get("return_to"))
    session = await current_session(request)
    if session is None or session.user_id is None or session.username is None or return_to == paths.LOGIN:
        return _expired(request)
    status = await registry.two_step.status(uuid.UUID(session.user_id))
    if not status.on:
        return render(
            "two_step_needed.html",
            username=session.username,
            site_name=registry.settings.site_name,
            security=paths.SECURITY,
        )
    pending = PendingSignIn(
        session.user_id,
        session.username,
        session.amr,
        return_to,
        csrf=secrets.token_urlsafe(32),
        step_up=True,
    )
    token = await registry.sign_in_steps.start(pending)
    response = await _page(request, pending, status)
    set_pending_cookie(request, response, token)
    return response


@html_page
async def two_step_answer(request: web.Request) -> web.Response:
    """Check the second step; sign in when it is right."""
    registry = request.app[REGISTRY]
    await limit(registry, per_address("login", request, registry.settings.rate_login_per_ip))
    form = await read_form(request)
    found = await _pending(request)
    if found is None:
        return _expired(request)
    token, pending = found
    user_id = uuid.UUID(pending.user_id)
    status = await registry.two_step.status(user_id)
    if not secrets.compare_digest(
        pending.csrf.encode(), form.get("csrf_token", "").encode("utf-8", "surrogatepass")
    ):
        return await _page(request, pending, status, error="form-expired", code=400)
    method = form.get("method", "")
    if method not in METHODS:
        raise InvalidRequest("Choose a code from your app, a recovery code or a passkey.")
    ip = client_ip(request)
    try:
        attempt = await registry.login_attempts.reserve(pending.username, ip)
    except Busy:
        return await _page(request, pending, status, error="busy", code=503, retry_after=BUSY_RETRY_AFTER)
    if isinstance(attempt, Lockout):
        minutes = max(1, round(attempt.retry_after / 60))
        await registry.audit.record("login.locked_out", subject=pending.user_id, ip=ip, via="two_step")
        return await _page(
            request,
            pending,
            status,
            error="locked",
            minutes=minutes,
            code=429,
            retry_after=attempt.retry_after,
        )
    try:
        outcome = await _check(registry, pending, token, method, form)
    except BaseException:
        await registry.login_attempts.settle(attempt, succeeded=None)
        raise
    locks_out = await registry.login_attempts.settle(attempt, succeeded=outcome is True)
    if outcome is True:
        taken = await registry.sign_in_steps.finish(token)
        if taken is None:  # another answer took it first
            return _expired(request)
        if pending.step_up and not await _still_signed_in(request, pending):
            return _expired(request)  # a step-up goes on from her session: it ended meanwhile
        await registry.audit.record(
            "login.succeeded", subject=pending.user_id, ip=ip, via="two_step", method=method
        )
        second = PASSKEY if method == "passkey" else ONE_TIME_CODE
        response = await complete_sign_in(
            request,
            user_id=pending.user_id,
            username=pending.username,
            amr=with_second_step(pending.amr, second),
            return_to=pending.return_to,
        )
        forget_pending_cookie(request, response)
        return response
    await registry.audit.record("login.failed", subject=pending.user_id, ip=ip, via="two_step", method=method)
    if locks_out:
        await registry.audit.record("login.locked_out", subject=pending.user_id, ip=ip, via="two_step")
    if await registry.sign_in_steps.failed(token):
        response = render(
            "two_step_again.html",
            status=400,
            site_name=registry.settings.site_name,
            login=f"{paths.LOGIN}?{urlencode({'return_to': pending.return_to})}",
        )
        forget_pending_cookie(request, response)
        return response
    error = "replayed" if outcome == "replayed" else f"{method}-wrong"
    return await _page(request, pending, status, error=error, code=400, open_recovery=method == "recovery")


async def _still_signed_in(request: web.Request, pending: PendingSignIn) -> bool:
    session = await current_session(request)
    return session is not None and session.user_id == pending.user_id


async def _check(
    registry: Registry, pending: PendingSignIn, token: str, method: str, form: dict[str, str]
) -> bool | str:
    """Whether the second step is right: True, False, or ``"replayed"`` (a TOTP code of a time
    step already used)."""
    user_id = uuid.UUID(pending.user_id)
    if method == "totp":
        secret = await registry.two_step.totp_secret(user_id)
        step = None if secret is None else totp.matching_step(secret, form.get("code", ""))
        if step is None:
            return False
        return True if await registry.two_step.use_step(user_id, step) else "replayed"
    if method == "recovery":
        code_hash = recovery.code_hash(form.get("code", ""))
        return code_hash is not None and await registry.two_step.use_recovery_code(user_id, code_hash)
    challenge = await registry.sign_in_steps.take_challenge(
        form.get("challenge_id", ""), purpose="two-step", bound_to=token
    )
    if challenge is None:
        return False
    credential = form.get("credential", "")
    rp = passkeys.RelyingParty.of(registry.settings.issuer, registry.settings.site_name)
    try:
        credential_id, _ = passkeys.credential_of(credential)
        passkey = await registry.two_step.passkey(credential_id)
        if passkey is None or passkey.user_id != user_id:
            return False
        assertion = passkeys.verify_authentication(
            rp, credential, challenge, public_key=passkey.public_key, sign_count=passkey.sign_count
        )
    except passkeys.PasskeyRefused:
        return False
    await registry.two_step.passkey_used(passkey.credential_id, assertion.sign_count)
    return True


async def passkey_options(request: web.Request) -> web.Response:
    """WebAuthn options for the second step (JSON, for the page's script): one of her passkeys."""
    registry = request.app[REGISTRY]
    await limit(registry, per_address("login", request, registry.settings.rate_login_per_ip))
    form = await read_form(request)
    found = await _pending(request)
    if found is None:
        raise InvalidRequest("The sign-in expired; sign in again.")
    token, pending = found
    if not secrets.compare_digest(
        pending.csrf.encode(), form.get("csrf_token", "").encode("utf-8", "surrogatepass")
    ):
        raise InvalidRequest("The form expired; reload the page and try again.")
    keys = await registry.two_step.passkeys(uuid.UUID(pending.user_id))
    if not keys:
        raise InvalidRequest("This account has no passkey.")
    rp = passkeys.RelyingParty.of(registry.settings.issuer, registry.settings.site_name)
    challenge = passkeys.new_challenge()
    challenge_id = await registry.sign_in_steps.put_challenge(challenge, purpose="two-step", bound_to=token)
    allowed = [(k.credential_id, k.transports) for k in keys]
    options = passkeys.authentication_options(rp, challenge, allowed=allowed, user_verification=False)
    return options_response(challenge_id, options)
