"""The consent page and its decision: the user allows or denies what ``/authorize`` checked and
stored, choosing which of the requested scopes to grant and for how long (issue 15).

The form names only a pending request id (bound to the user who saw the page) and carries the
session's CSRF token; ``deny`` sends the user back with ``access_denied`` (RFC 6749 §4.1.2.1).

The page offers one checkbox per requested scope, ``name="scope"``, ticked by default; the client
gets only what was ticked, and the token response's ``scope`` says so (RFC 6749 §3.3). A scope
posted that the request did not ask for is refused: a consent never widens a request. ``openid``
has no checkbox: it is what signing in *is* (OpenID Connect Core §3.1.2.1), so it is shown as
always included and kept server-side whenever the request asked for it — unticking it could only
turn an authentication request into a malformed one. Allowing with nothing ticked (and nothing
kept) is a denial (``access_denied``). Unticking everything but ``openid`` leaves a sign-in only.

A form without the choice (a page rendered before it existed, a scripted user agent) carries no
``scope_choice`` marker and grants the request as shown; with the marker, only the boxes ticked.

The duration (``duration``: one hour, 30 days, or until revoked) is stored as the consent's
``expires_at`` and bounds the refresh-token family issued from the code (never beyond
``TESSERA_REFRESH_FAMILY_LIFETIME``); an expired consent answers no request silently. The default
is *until revoked*: it is what the user granted before the choice existed, the app keeps working
without surprise, and the account page shows it and takes it back in one click.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from auth_server import client_documents, i18n, paths, resources
from auth_server.appkeys import REGISTRY
from auth_server.authorization.answer import answer, redirection_for
from auth_server.authorization.request import AuthorizationRequest, ResourceOwner
from auth_server.clients import Client
from auth_server.pages import current_session, render
from auth_server.registry import Registry
from auth_server.stores.device_codes import DeviceRequest
from auth_server.stores.sessions import Session
from shared.error_middleware import html_page
from shared.errors import AccessDenied, InvalidRequest, PayloadTooLarge
from shared.http import FORM, body_deadline, client_ip, single_valued
from shared.observability import METRICS

# The durations offered (the radio buttons' values), in the order shown: label (translated on the
# page), and how long (None: until the user revokes it).
DURATIONS: dict[str, tuple[str, timedelta | None]] = {
    "1h": (i18n.N_("For one hour"), timedelta(hours=1)),
    "30d": (i18n.N_("For 30 days"), timedelta(days=30)),
    "until-revoked": (i18n.N_("Until I take it back"), None),
}
DEFAULT_DURATION = "until-revoked"
# the scope that cannot be unticked: the request is a sign-in (OpenID Connect Core §3.1.2.1)
FIXED_SCOPES = ("openid",)
# present in every form that offers the scope checkboxes (see the module docstring)
CHOICE_MARKER = "scope_choice"


def provenance(client: Client, site_name: str) -> str:
    """Who vouches for the app, in words (the page's language): the platform's review, its
    operators, or nobody."""
    _ = i18n.gettext
    host = client_documents.document_host(client)
    if host is not None:  # what its document says may change at any time: no review vouches for it
        return _("Not reviewed by %(site)s: the app describes itself, at %(host)s") % {
            "site": site_name,
            "host": host,
        }
    if client.reviewed_at is not None:
        return _("Reviewed by %(site)s") % {"site": site_name}
    if client.registered_via == "operator":
        return _("Registered by %(site)s's operators") % {"site": site_name}
    if client.registered_via == "dynamic":
        return _("Not reviewed by %(site)s: the app registered itself") % {"site": site_name}
    return _("Not reviewed by %(site)s") % {"site": site_name}


def vouched(client: Client) -> str:
    """``reviewed`` (the platform's review), ``operator`` (registered by its operators), or
    ``unreviewed``: how the page marks :func:`provenance`."""
    if client.from_metadata_document:
        return "unreviewed"
    if client.reviewed_at is not None:
        return "reviewed"
    return "operator" if client.registered_via == "operator" else "unreviewed"


def consent_page(
    *,
    client: Client,
    session: Session,
    authz: AuthorizationRequest | DeviceRequest,
    scopes: dict[str, str],
    site_name: str,
    redirect_uri: str | None,
    request_id: str,
    apis: tuple[str, ...] = (),
) -> web.Response:
    """The consent page for a checked request (``/authorize`` shows it): the app, what it asks in
    words (one checkbox per scope but ``openid``), the durations, and Allow / Deny. For a device's
    request (RFC 8628 §3.3, ``endpoints/device.py``) there is no redirect URI: the page says it is a
    device sign-in, and its answer goes to ``/device/consent``."""
    device = isinstance(authz, DeviceRequest)
    return render(
        "consent.html",
        client_name=client.client_name,
        client=client,
        provenance=provenance(client, site_name),
        vouched=vouched(client),
        # a client ID metadata document's host: its name and logo are its own claims (the page
        # shows the host beside the name, and no logo)
        document_host=client_documents.document_host(client),
        username=session.username,
        # each scope in words, in the page's language (TESSERA_SCOPES, or the catalogs)
        fixed=[(s, i18n.localized(scopes.get(s, s))) for s in authz.scope if s in FIXED_SCOPES],
        choices=[(s, i18n.localized(scopes.get(s, s))) for s in authz.scope if s not in FIXED_SCOPES],
        durations=[(value, i18n.gettext(label)) for value, (label, _) in DURATIONS.items()],
        default_duration=DEFAULT_DURATION,
        choice_marker=CHOICE_MARKER,
        redirect_host=None if redirect_uri is None else urlsplit(redirect_uri).netloc or redirect_uri,
        device=device,
        apis=apis,  # the APIs the tokens are for (RFC 8707), by name; none: the general audience
        action=paths.DEVICE_CONSENT if device else paths.CONSENT,
        csrf=session.csrf,
        request_id=request_id,
        form_to=redirect_uri,  # the consent form's answer redirects there (CSP)
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """A consent form as answered by the signed-in user it was shown to (its CSRF token checked)."""

    owner: ResourceOwner
    request_id: str  # the pending request it answers
    allow: bool
    lasts: timedelta | None  # how long the consent lasts (None: until revoked)
    ticked: tuple[str, ...]
    offered: bool  # whether the form offered the scope checkboxes (CHOICE_MARKER)

    def scope(self, requested: tuple[str, ...]) -> tuple[str, ...]:
        """What the user grants of ``requested`` (:func:`granted_scope`)."""
        return granted_scope(requested, self.ticked, offered=self.offered)


async def read_decision(request: web.Request) -> Decision:
    """The consent form posted (to ``/consent``, or ``/device/consent`` for a device)."""
    form, ticked = await _read_form(request)
    session = await current_session(request)
    owner = ResourceOwner.of(session)
    if session is None or owner is None or not session.csrf_matches(form.get("csrf_token", "")):
        raise InvalidRequest("The consent form expired or did not come from this site; start again.")
    decision = form.get("consent")
    if decision not in ("allow", "deny"):
        raise InvalidRequest("consent must be allow or deny.")
    return Decision(
        owner,
        form.get("request_id", ""),
        decision == "allow",
        _duration(form.get("duration")),
        ticked,
        CHOICE_MARKER in form,
    )


async def record_consent(
    registry: Registry,
    request: web.Request,
    decision: Decision,
    client: Client,
    *,
    asked: tuple[str, ...],
    scope: tuple[str, ...],
    named: tuple[str, ...],
) -> datetime | None:
    """Keep the consent the user gave ``client`` (what /account shows and takes back) and audit it:
    ``scope`` of the ``asked``, for the resources ``named``; when it ends (None: until revoked)."""
    owner = decision.owner
    ends = await registry.consents.grant(
        uuid.UUID(owner.subject),
        client.client_id,
        scope,
        asked=asked,
        lasts=decision.lasts,
        audiences=tuple(sorted(resources.consented(named, registry.settings.access_token_audience))),
        default=registry.settings.access_token_audience,
    )
    await registry.audit.record(
        "consent.granted",
        client_id=client.client_id,
        subject=owner.subject,
        ip=client_ip(request),
        scope=list(scope),
        resources=list(named),
        expires_at=None if ends is None else ends.isoformat(),
    )
    return ends


@html_page
async def consent(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    decision = await read_decision(request)
    owner = decision.owner
    pending = await registry.authorization_requests.take(decision.request_id, owner.subject)
    if pending is None or pending.user_id != owner.subject:
        raise InvalidRequest("This authorization request has expired or was already answered; start again.")
    client = await client_documents.find_client(registry, pending.client_id)
    if client is None or not client.active or pending.redirect_uri not in client.redirect_uris:
        raise InvalidRequest("The client is no longer registered.")
    answer_to = redirection_for(pending, registry.settings.issuer)
    if not decision.allow:
        return answer_to.error(AccessDenied("The user denied the request."), status=303)
    scope = decision.scope(pending.scope)
    if not scope:
        return answer_to.error(AccessDenied("The user granted none of the requested scopes."), status=303)
    # a client its metadata document describes is stored now that a user allows it, not before
    client = await client_documents.keep(registry, client)
    ends = await record_consent(
        registry, request, decision, client, asked=pending.scope, scope=scope, named=pending.resources
    )
    approved = replace(pending, scope=scope, grant_ends_at=None if ends is None else int(ends.timestamp()))
    params = await answer(registry, request.app[METRICS], approved, owner)
    return answer_to.response(params, status=303)


def granted_scope(requested: tuple[str, ...], ticked: tuple[str, ...], *, offered: bool) -> tuple[str, ...]:
    """What the user grants, in the request's order: the scopes ticked, plus ``openid`` when asked
    (it has no checkbox); the whole request from a form without the choice. A ticked scope the
    request did not ask for is refused (RFC 6749 §3.3: the grant never exceeds the request)."""
    if not offered and not ticked:
        return requested
    unasked = set(ticked) - set(requested)
    if unasked:
        raise InvalidRequest("The consent form granted a scope the application did not ask for.")
    chosen = set(ticked) | (set(FIXED_SCOPES) & set(requested))
    return tuple(s for s in requested if s in chosen)


def _duration(value: str | None) -> timedelta | None:
    """How long the consent lasts (None: until revoked); the default when the form has no choice."""
    choice = DURATIONS.get(value or DEFAULT_DURATION)
    if choice is None:
        raise InvalidRequest(f"duration must be one of {', '.join(DURATIONS)}.")
    return choice[1]


async def _read_form(request: web.Request) -> tuple[dict[str, str], tuple[str, ...]]:
    """The consent form: its single-valued fields (RFC 6749 §3.1: none may repeat) and the scopes
    ticked (``scope`` repeats, one per checkbox; never twice the same)."""
    if request.content_type != FORM:
        raise InvalidRequest(f"The request body must be {FORM}.")
    try:
        async with body_deadline(request):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"The request body is larger than {request.client_max_size} bytes.") from None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The request body is not valid UTF-8 form encoding.") from None
    ticked = tuple(value for name, value in pairs if name == "scope" and value)
    if len(set(ticked)) != len(ticked):
        raise InvalidRequest("Parameter 'scope' repeats a value.")
    return single_valued((name, value) for name, value in pairs if name != "scope"), ticked
