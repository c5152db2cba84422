"""The device verification page (RFC 8628 §3.3, §5.1, §5.4): where a user signs in a device.

``GET /device`` (the ``verification_uri``) sends a visitor who is not signed in to the login page,
to come back here; then it asks for the code the device shows. Opened from
``verification_uri_complete`` (``/device?user_code=…``) the code is filled in, but she must still
confirm it (§3.3.1): a link with a code in it may come from someone else's device (remote phishing,
§5.4), which is also why the page and the consent page tell her to enter only a code shown on a
device in front of her.

``POST /device`` takes the code (case, dashes and spaces do not matter, §6.1) within the budgets of
wrong codes, per address and for everyone (§5.1: each entry counts until it proves right); a right
code is used up at once, and the consent page is shown, marked as a device sign-in, with the app's
name: it is the consent page of ``/authorize`` (``endpoints/consent.py``) and its choices, the
device's request waiting in Redis, bound to her, as an authorization request does.

``POST /device/consent`` is that page's answer, read by the consent page's own
:func:`~auth_server.endpoints.consent.read_decision`; allowing records the consent as ``/consent``
does (the account page shows it and takes it back), then tells the device; then "you can return to
your device".
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from auth_server import paths, resources, scopes
from auth_server.appkeys import REGISTRY
from auth_server.authorization.request import ResourceOwner
from auth_server.clients import Client
from auth_server.endpoints.consent import consent_page, read_decision, record_consent
from auth_server.grants.device_code import DEVICE_CODE
from auth_server.i18n import N_, _, ngettext
from auth_server.pages import current_session, render, see_other
from auth_server.registry import Registry
from auth_server.stores.device_codes import Approval, DeviceRequest, normal_user_code, shown_user_code
from auth_server.stores.sessions import Session
from shared.error_middleware import html_page
from shared.errors import InvalidRequest, InvalidScope
from shared.http import address_bucket, client_ip, read_form

MALFORMED = N_("A code is 8 letters, like BCDF-GHJK. Check the code your device shows and type it again.")
WRONG = N_(
    "That code does not work. Check the code your device shows: it may have expired, or been used"
    " already (then start again on your device)."
)
GONE = "This device sign-in has expired or was already answered; start again on your device."


@html_page
async def device_page(request: web.Request) -> web.Response:
    code = normal_user_code(request.query.get("user_code", ""))
    shown = "" if code is None else shown_user_code(code)
    session = await current_session(request)
    if session is None or ResourceOwner.of(session) is None:
        return _to_login(shown)
    registry = request.app[REGISTRY]
    return _code_page(registry, session, code=shown, prefilled=code is not None)


@html_page
async def enter_code(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    settings = registry.settings
    form = await read_form(request)
    typed = form.get("user_code", "")
    session = await current_session(request)
    owner = ResourceOwner.of(session)
    if session is None or owner is None:  # signed out meanwhile: sign in, and find the code again
        code = normal_user_code(typed)
        return _to_login("" if code is None else shown_user_code(code))
    if not session.csrf_matches(form.get("csrf_token", "")):
        raise InvalidRequest("The code form expired or did not come from this site; start again.")
    code = normal_user_code(typed)
    if code is None:  # cannot be a code: no guess spent
        return _code_page(registry, session, code=typed[:20], message=_(MALFORMED), status=400)
    guess = await registry.device_codes.spend_guess(
        address_bucket(client_ip(request)),
        per_address=settings.device_code_failures_per_ip,
        in_all=settings.device_code_failures,
    )
    if guess.wait is not None:
        minutes = max(1, round(guess.wait / 60))
        message = ngettext(
            "Too many wrong codes were entered. Try again in about %(minutes)d minute.",
            "Too many wrong codes were entered. Try again in about %(minutes)d minutes.",
            minutes,
        ) % {"minutes": minutes}
        page = _code_page(registry, session, code=shown_user_code(code), message=message, status=429)
        page.headers["Retry-After"] = str(guess.wait)
        return page
    entered = await registry.device_codes.enter(code)
    if entered is None:
        return _code_page(registry, session, code=shown_user_code(code), message=_(WRONG), status=400)
    await registry.device_codes.refund_guess(guess)  # a right code is no guess
    authorization = entered.authorization
    client = await _device_client(registry, authorization.client_id, entered.device)
    try:  # the admin API's scopes only for an admin, as at /authorize
        scope = await scopes.for_user(registry, owner.subject, authorization.scope)
    except InvalidScope:
        await registry.device_codes.deny(entered.device)
        raise
    pending = DeviceRequest(entered.device, client.client_id, scope, authorization.resources)
    return consent_page(
        client=client,
        session=session,
        authz=pending,
        scopes=dict(settings.scopes),
        site_name=settings.site_name,
        redirect_uri=None,
        request_id=await registry.device_requests.put(pending, owner.subject),
        apis=await resources.names(registry, pending.resources),
    )


@html_page
async def decide(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    decision = await read_decision(request)
    owner = decision.owner
    pending = await registry.device_requests.take(decision.request_id, owner.subject)
    if pending is None or pending.user_id != owner.subject:
        raise InvalidRequest(GONE)
    client = await _device_client(registry, pending.client_id, pending.device)
    scope = decision.scope(pending.scope) if decision.allow else ()
    if not scope:  # denied, or allowed with nothing ticked
        await registry.device_codes.deny(pending.device)
        return _done(registry, client, allowed=False)
    ends = await record_consent(
        registry, request, decision, client, asked=pending.scope, scope=scope, named=pending.resources
    )
    approval = Approval(
        subject=owner.subject,
        auth_time=owner.auth_time,
        amr=owner.amr,
        scope=scope,
        grant_ends_at=None if ends is None else int(ends.timestamp()),
    )
    if not await registry.device_codes.allow(pending.device, approval):
        raise InvalidRequest(GONE)
    return _done(registry, client, allowed=True)


async def _device_client(registry: Registry, client_id: str, device: str) -> Client:
    """The client a device authorization was issued to, if it may still use the grant; else the
    device is told no (access_denied) and the user that the app is gone."""
    client = await registry.clients.get(client_id)
    if client is None or not client.active or not client.allows_grant(DEVICE_CODE):
        await registry.device_codes.deny(device)
        raise InvalidRequest("The app that asked can no longer sign in this way; it was not given access.")
    return client


def _to_login(code: str) -> web.Response:
    return_to = paths.DEVICE if not code else f"{paths.DEVICE}?{urlencode({'user_code': code})}"
    return see_other(f"{paths.LOGIN}?{urlencode({'return_to': return_to})}")


def _code_page(
    registry: Registry,
    session: Session,
    *,
    code: str,
    prefilled: bool = False,
    message: str | None = None,
    status: int = 200,
) -> web.Response:
    return render(
        "device.html",
        status=status,
        site_name=registry.settings.site_name,
        username=session.username,
        csrf=session.csrf,
        code=code,
        prefilled=prefilled,
        message=message,
    )


def _done(registry: Registry, client: Client, *, allowed: bool) -> web.Response:
    return render(
        "device_done.html",
        site_name=registry.settings.site_name,
        client_name=client.client_name,
        allowed=allowed,
    )
