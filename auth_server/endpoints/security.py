"""The security page, ``/account/security`` (issue 18): two-step sign-in, passkeys, the password,
and where the user is signed in.

* **Authenticator app** (TOTP, RFC 6238): *Set up* makes a seed (kept encrypted, not yet on) and
  shows it as a QR code drawn here as SVG and as text; typing a code from the app turns it on. The
  first second step she turns on (the app or a passkey) comes with ten one-time recovery codes,
  shown once on that answer (never stored in the clear, never shown again). Turning the app off
  needs her password or a current code.
* **Passkeys** (WebAuthn): added with the page's one script (a name, then the browser's dialog),
  listed with when each was added and last used, removed one by one. Removing her last second step
  turns two-step sign-in off, and so needs her password.
* **Password**: the current one and a new one; every other session of hers ends (and the apps that
  got ID tokens in them are told, back-channel logout).
* **Sessions**: each signed-in browser (in plain words from its User-Agent), its address, when it
  signed in and was last seen; any other one can be ended, or all of them at once.

Adding a second step or making new recovery codes needs a sign-in within :data:`RECENT_SIGN_IN`
seconds (someone who found her browser signed in cannot add a passkey of their own); otherwise
the page asks her to sign in again and brings her back. Every form carries the session's CSRF
token; only her own things can be named (the user is the session's, never a form field). After a
change the page redirects back here (POST/redirect/GET) with a notice, except where codes are
shown once. Server-rendered, usable without JavaScript but for passkeys.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode

from aiohttp import web

from auth_server import paths
from auth_server.appkeys import REGISTRY
from auth_server.crypto import HASHING, hash_password
from auth_server.devices import describe
from auth_server.endpoints.account import when
from auth_server.endpoints.login import options_response
from auth_server.oidc.logout import end_all_sessions, end_listed_session
from auth_server.pages import current_session, render, see_other, session_id
from auth_server.passwords import MAX_PASSWORD_LENGTH, LockedOut, TooBusy, check_credentials
from auth_server.rate_limits import limit, per_address
from auth_server.registry import Registry
from auth_server.stores.login_attempts import Attempt, Busy
from auth_server.stores.sessions import Session, handle_of
from auth_server.stores.two_step import Passkey, TwoStepStatus
from auth_server.two_step import passkeys, recovery, totp
from auth_server.two_step.script import SCRIPT, allow_script
from shared.error_middleware import html_page
from shared.errors import InvalidRequest
from shared.http import client_ip, read_form

RECENT_SIGN_IN = 900  # seconds since signing in within which a second step may be added
MIN_PASSWORD_LENGTH = 8
# the notices the page shows after a change (?done=...), each worded in security.html
NOTICES = frozenset(
    {
        "totp-on",
        "totp-off",
        "passkey-added",
        "passkey-removed",
        "session-ended",
        "sessions-ended",
        "password-changed",
    }
)
TOTP_SETUP = f"{paths.SECURITY}/totp"


def _again(return_to: str = paths.SECURITY) -> str:
    """The login page, to sign in again and come back here."""
    return f"{paths.LOGIN}?{urlencode({'return_to': return_to, 'reauthenticate': '1'})}"


def _recent(session: Session) -> bool:
    return session.auth_time is not None and time.time() - session.auth_time <= RECENT_SIGN_IN


def _user_id(session: Session) -> uuid.UUID:
    assert session.user_id is not None
    return uuid.UUID(session.user_id)


async def _session(request: web.Request) -> Session | None:
    session = await current_session(request)
    return None if session is None or session.user_id is None else session


async def _posted(request: web.Request) -> tuple[Session, dict[str, str]]:
    """The signed-in session and the form it posted, its CSRF token checked."""
    form = await read_form(request)
    session = await _session(request)
    if session is None or not session.csrf_matches(form.get("csrf_token", "")):
        raise InvalidRequest(
            "The form expired or did not come from this site; open your security page again."
        )
    return session, form


def _to_login() -> web.Response:
    return see_other(f"{paths.LOGIN}?{urlencode({'return_to': paths.SECURITY})}")


async def _page(
    request: web.Request,
    session: Session,
    *,
    done: str | None = None,
    error: str | None = None,
    status: int = 200,
    name: str = "",
) -> web.Response:
    """The security page; ``error`` names what went wrong (worded in the template)."""
    registry = request.app[REGISTRY]
    user_id = _user_id(session)
    two_step = await registry.two_step.status(user_id)
    current = session_id(request)
    here = None if current is None else handle_of(current)
    sessions = [
        {
            "handle": listed.handle,
            "here": listed.handle == here,
            "browser": describe(listed.session.user_agent)[0],
            "system": describe(listed.session.user_agent)[1],
            "ip": listed.session.ip,
            "signed_in": listed.session.auth_time,
            "last_seen": listed.session.last_seen,
            "how": _how(listed.session.amr),
        }
        for listed in await registry.sessions.signed_in(str(user_id))
    ]
    sessions.sort(key=lambda s: not s["here"])  # this browser first
    response = render(
        "security.html",
        status=status,
        username=session.username,
        csrf=session.csrf,
        two_step=two_step,
        passkeys=[_passkey_row(p) for p in two_step.passkeys],
        sessions=sessions,
        recent=_recent(session),
        sign_in_again=_again(),
        done=done if done in NOTICES else None,
        error=error,
        name=name,
        when=_when,
        passkey_script=SCRIPT,
    )
    return allow_script(response)


def _how(amr: tuple[str, ...]) -> str:
    """How a session signed in, as the page words it (a key the template turns into words)."""
    if "mfa" in amr:
        return "passkey" if "pwd" not in amr else "two-step"
    return "password"


def _when(seconds: int | None) -> str:
    return "" if seconds is None else when(datetime.fromtimestamp(seconds, UTC))


def _passkey_row(passkey: Passkey) -> dict[str, object]:
    return {
        "handle": passkey.handle,
        "name": passkey.name,
        "created": when(passkey.created_at),
        "last_used": None if passkey.last_used_at is None else when(passkey.last_used_at),
        "synced": passkey.backed_up,
    }


@html_page
async def security_page(request: web.Request) -> web.Response:
    session = await _session(request)
    if session is None:
        return _to_login()
    return await _page(request, session, done=request.query.get("done"))


# -- the authenticator app --------------------------------------------------------------------------


@html_page
async def start_totp(request: web.Request) -> web.Response:
    """Make a new seed for her to scan (not on until she types a code from it)."""
    registry = request.app[REGISTRY]
    session, _ = await _posted(request)
    if not _recent(session):
        return await _page(request, session, error="not-recent", status=403)
    if not await registry.two_step.start_totp(_user_id(session), totp.new_secret()):
        return see_other(paths.SECURITY)  # she has one already
    return see_other(TOTP_SETUP)


@html_page
async def totp_setup_page(request: web.Request) -> web.Response:
    """The QR code and the seed of the app she is setting up, and the form that turns it on."""
    session = await _session(request)
    if session is None:
        return _to_login()
    return await _setup_page(request, session)


async def _setup_page(
    request: web.Request, session: Session, *, error: str | None = None, status: int = 200
) -> web.Response:
    registry = request.app[REGISTRY]
    secret = await registry.two_step.totp_secret(_user_id(session), confirmed=False)
    if secret is None:
        return see_other(paths.SECURITY)
    site = registry.settings.site_name
    assert session.username is not None
    uri = totp.provisioning_uri(secret, account=session.username, issuer=site)
    return render(
        "security_totp.html",
        status=status,
        csrf=session.csrf,
        username=session.username,
        site_name=site,
        qr=totp.qr_svg(uri, title=f"QR code for {site}"),
        secret=totp.shown_secret(secret),
        error=error,
    )


@html_page
async def confirm_totp(request: web.Request) -> web.Response:
    """Turn the app on once she types a code from it (the code is then spent, as at sign-in)."""
    registry = request.app[REGISTRY]
    await limit(registry, per_address("login", request, registry.settings.rate_login_per_ip))
    session, form = await _posted(request)
    user_id = _user_id(session)
    secret = await registry.two_step.totp_secret(user_id, confirmed=False)
    if secret is None:
        return see_other(paths.SECURITY)
    step = totp.matching_step(secret, form.get("code", ""))
    if step is None or not await registry.two_step.use_step(user_id, step):
        return await _setup_page(request, session, error="code-wrong", status=400)
    was_on = await registry.two_step.enabled(user_id)
    if not await registry.two_step.confirm_totp(user_id):
        return see_other(paths.SECURITY)
    await registry.audit.record("two_step.totp_on", subject=session.user_id, ip=client_ip(request))
    if not was_on:
        return await _new_codes(request, session, first=True)
    return see_other(f"{paths.SECURITY}?done=totp-on")


@html_page
async def totp_off(request: web.Request) -> web.Response:
    """Turn the app off, with her password or a current code from it."""
    registry = request.app[REGISTRY]
    session, form = await _posted(request)
    user_id = _user_id(session)
    proved = await _proves_it_is_her(request, session, form)
    if proved is not None:
        return await _page(request, session, error=proved, status=400 if proved != "locked" else 429)
    if await registry.two_step.remove_totp(user_id):
        await registry.audit.record("two_step.totp_off", subject=session.user_id, ip=client_ip(request))
    return see_other(f"{paths.SECURITY}?done=totp-off")


async def _proves_it_is_her(request: web.Request, session: Session, form: Mapping[str, str]) -> str | None:
    """``None`` if the form carries her password, or a current code from her app (each counted as
    a sign-in attempt, so neither can be guessed from a stolen session); else the error's name."""
    registry = request.app[REGISTRY]
    assert session.username is not None
    user_id = _user_id(session)
    password, code = form.get("password", ""), form.get("code", "")
    if password:
        try:
            user = await check_credentials(
                registry, session.username, password, client_ip(request), via="security_page"
            )
        except LockedOut:
            return "locked"
        except TooBusy:
            return "busy"
        return None if user is not None and user.user_id == user_id else "password-wrong"
    if code:
        return await _code_is_hers(registry, request, session, code)
    return "proof-missing"


async def _code_is_hers(registry: Registry, request: web.Request, session: Session, code: str) -> str | None:
    """A current code from her app, counted in the lockout buckets as a sign-in attempt."""
    assert session.username is not None
    user_id = _user_id(session)
    try:
        attempt = await registry.login_attempts.reserve(session.username, client_ip(request))
    except Busy:
        return "busy"
    if not isinstance(attempt, Attempt):
        return "locked"
    try:
        secret = await registry.two_step.totp_secret(user_id)
        step = None if secret is None else totp.matching_step(secret, code)
        ok = step is not None and await registry.two_step.use_step(user_id, step)
    except BaseException:
        await registry.login_attempts.settle(attempt, succeeded=None)
        raise
    await registry.login_attempts.settle(attempt, succeeded=ok)
    return None if ok else "code-wrong"


# -- recovery codes -----------------------------------------------------------------------------------


@html_page
async def new_recovery_codes(request: web.Request) -> web.Response:
    """Replace her recovery codes (the old ones stop working) and show the new ones, once."""
    registry = request.app[REGISTRY]
    session, _ = await _posted(request)
    if not _recent(session):
        return await _page(request, session, error="not-recent", status=403)
    if not await registry.two_step.enabled(_user_id(session)):
        return see_other(paths.SECURITY)
    return await _new_codes(request, session, first=False)


async def _new_codes(request: web.Request, session: Session, *, first: bool) -> web.Response:
    registry = request.app[REGISTRY]
    codes = recovery.new_codes()
    hashes = [recovery.code_hash(code) for code in codes]
    await registry.two_step.replace_recovery_codes(_user_id(session), [h for h in hashes if h is not None])
    await registry.audit.record(
        "two_step.recovery_codes_made", subject=session.user_id, ip=client_ip(request)
    )
    return render(
        "security_codes.html",
        codes=codes,
        first=first,
        site_name=registry.settings.site_name,
        username=session.username,
    )


# -- passkeys -----------------------------------------------------------------------------------------


def _relying_party(registry: Registry) -> passkeys.RelyingParty:
    return passkeys.RelyingParty.of(registry.settings.issuer, registry.settings.site_name)


async def passkey_options(request: web.Request) -> web.Response:
    """WebAuthn options to make a passkey for her (JSON, for the page's script)."""
    registry = request.app[REGISTRY]
    await limit(registry, per_address("login", request, registry.settings.rate_login_per_ip))
    session, _ = await _posted(request)
    if not _recent(session):
        raise InvalidRequest("Sign in again before you add a passkey.")
    assert session.user_id is not None and session.username is not None
    user_id = _user_id(session)
    existing = [(p.credential_id, p.transports) for p in await registry.two_step.passkeys(user_id)]
    challenge = passkeys.new_challenge()
    challenge_id = await registry.sign_in_steps.put_challenge(
        challenge, purpose="register", bound_to=session.user_id
    )
    options = passkeys.registration_options(
        _relying_party(registry), challenge, user_id=user_id, username=session.username, existing=existing
    )
    return options_response(challenge_id, options)


@html_page
async def add_passkey(request: web.Request) -> web.Response:
    """Keep the passkey the browser made (the page's script sends it), under the name she gave."""
    registry = request.app[REGISTRY]
    session, form = await _posted(request)
    assert session.user_id is not None
    if not _recent(session):
        return await _page(request, session, error="not-recent", status=403)
    user_id = _user_id(session)
    challenge = await registry.sign_in_steps.take_challenge(
        form.get("challenge_id", ""), purpose="register", bound_to=session.user_id
    )
    name = passkeys.name_of(form.get("name", ""))
    try:
        if challenge is None:
            raise passkeys.PasskeyRefused("no such challenge (expired, used, or another user's)")
        made = passkeys.verify_registration(_relying_party(registry), form.get("credential", ""), challenge)
    except passkeys.PasskeyRefused:
        return await _page(request, session, error="passkey-failed", status=400, name=name)
    was_on = await registry.two_step.enabled(user_id)
    added = await registry.two_step.add_passkey(
        user_id,
        credential_id=made.credential_id,
        name=name,
        public_key=made.public_key,
        sign_count=made.sign_count,
        transports=made.transports,
        backed_up=made.backed_up,
    )
    if added is None:
        return await _page(request, session, error="passkey-known", status=400, name=name)
    await registry.audit.record("two_step.passkey_added", subject=session.user_id, ip=client_ip(request))
    if not was_on:
        return await _new_codes(request, session, first=True)
    return see_other(f"{paths.SECURITY}?done=passkey-added")


@html_page
async def remove_passkey(request: web.Request) -> web.Response:
    """Remove one of her passkeys; her password is needed if it is her last second step."""
    registry = request.app[REGISTRY]
    session, form = await _posted(request)
    user_id = _user_id(session)
    status = await registry.two_step.status(user_id)
    chosen = next((p for p in status.passkeys if p.handle == form.get("passkey", "")), None)
    if chosen is None:
        raise InvalidRequest("You have no such passkey: there is nothing to remove.")
    if _last_step(status):
        proved = await _proves_it_is_her(request, session, {"password": form.get("password", "")})
        if proved is not None:
            error = "last-passkey-password" if proved in ("password-wrong", "proof-missing") else proved
            return await _page(request, session, error=error, status=400 if proved != "locked" else 429)
    if await registry.two_step.remove_passkey(user_id, chosen.credential_id):
        await registry.audit.record(
            "two_step.passkey_removed", subject=session.user_id, ip=client_ip(request)
        )
    return see_other(f"{paths.SECURITY}?done=passkey-removed")


def _last_step(status: TwoStepStatus) -> bool:
    return status.methods == 1


# -- the password -------------------------------------------------------------------------------------


@html_page
async def change_password(request: web.Request) -> web.Response:
    """Her current password and a new one (twice); every other session of hers then ends."""
    registry = request.app[REGISTRY]
    session, form = await _posted(request)
    assert session.username is not None
    current, new, again = (
        form.get("current_password", ""),
        form.get("new_password", ""),
        form.get("repeat", ""),
    )
    error = _new_password_problem(session.username, current, new, again)
    if error is not None:
        return await _page(request, session, error=error, status=400)
    proved = await _proves_it_is_her(request, session, {"password": current})
    if proved is not None:
        error = "current-wrong" if proved in ("password-wrong", "proof-missing") else proved
        return await _page(request, session, error=error, status=400 if proved != "locked" else 429)
    with HASHING.admit():
        hashed = await asyncio.get_running_loop().run_in_executor(HASHING.executor, hash_password, new)
    await registry.users.update(_user_id(session), password_hash=hashed)
    key = session_id(request)
    ended = await end_all_sessions(
        registry,
        str(_user_id(session)),
        except_handle=None if key is None else handle_of(key),
        ip=client_ip(request),
        via="password_changed",
    )
    await registry.audit.record(
        "password.changed", subject=session.user_id, ip=client_ip(request), sessions_ended=ended
    )
    return see_other(f"{paths.SECURITY}?done=password-changed")


def _new_password_problem(username: str, current: str, new: str, again: str) -> str | None:
    """What is wrong with the new password as typed (a key worded in the template), if anything."""
    if not current:
        return "current-wrong"
    if len(new) < MIN_PASSWORD_LENGTH or len(new) > MAX_PASSWORD_LENGTH:
        return "new-length"
    if new != again:
        return "new-mismatch"
    if new == current or new.casefold() == username.casefold():
        return "new-same"
    return None


# -- sessions -----------------------------------------------------------------------------------------


@html_page
async def end_session(request: web.Request) -> web.Response:
    """End one of her other sessions (``session=<handle>``), or all of them (``session=others``);
    the apps that got ID tokens in them are told (back-channel logout)."""
    registry = request.app[REGISTRY]
    session, form = await _posted(request)
    user_id = str(_user_id(session))
    key = session_id(request)
    here = None if key is None else handle_of(key)
    chosen = form.get("session", "")
    if chosen == "others":
        await end_all_sessions(
            registry, user_id, except_handle=here, ip=client_ip(request), via="security_page"
        )
        return see_other(f"{paths.SECURITY}?done=sessions-ended")
    if chosen == here:
        raise InvalidRequest("This is the browser you are using: sign out instead.")
    if (
        await end_listed_session(registry, user_id, chosen, ip=client_ip(request), via="security_page")
        is None
    ):
        raise InvalidRequest("You have no such session: it may have ended already.")
    return see_other(f"{paths.SECURITY}?done=session-ended")
