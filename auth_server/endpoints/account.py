"""The account page: every app that can act for the signed-in user, and taking access back (issue 15).

``GET /account`` lists, for the signed-in user only, each app with a live consent of hers or live
refresh tokens of hers (:meth:`auth_server.stores.consents.ConsentStore.apps`): its name, logo and
website, the scopes in words, since when, when last used, and until when. Anyone else is sent to
the login page, which returns here.

``POST /account`` with ``revoke=<client_id>`` and the session's CSRF token takes one app's access
back, as ``tessera consent revoke`` does: the consent is forgotten (the next request asks again),
the refresh-token families of hers with that app are revoked and their live access tokens
deny-listed (:func:`auth_server.platform.revoke_grants`), the app is sent a back-channel logout
token if it registered a ``backchannel_logout_uri`` (OpenID Connect Back-Channel Logout 1.0 §2.5),
and ``consent.revoked`` is audited. The user can only ever name her own grants: the subject is
the session's, never a form field. Then it redirects back here (303, POST/redirect/GET).

Server-rendered, without JavaScript; :func:`auth_server.pages.render` sets the headers that keep
it from being framed or cached.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from aiohttp import web

from auth_server import i18n, paths, platform, resources
from auth_server.appkeys import REGISTRY
from auth_server.clients import Client, plausible_client_id
from auth_server.endpoints.consent import provenance
from auth_server.pages import current_session, render, see_other
from auth_server.registry import Registry
from auth_server.stores.consents import AppAccess
from auth_server.stores.logout_deliveries import Delivery
from auth_server.stores.sessions import Session
from shared.error_middleware import html_page
from shared.errors import InvalidRequest
from shared.http import client_ip, read_form


@dataclass(frozen=True, slots=True)
class AppRow:
    """One app as the page shows it."""

    client_id: str
    name: str
    logo_uri: str | None
    client_uri: str | None
    provenance: str | None
    scopes: list[tuple[str, str]]  # (scope, its description)
    apis: tuple[str, ...]  # where (RFC 8707 resources, by name); none: the general audience only
    since: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


@html_page
async def account_page(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    session = await current_session(request)
    if session is None or session.user_id is None:
        return see_other(f"{paths.LOGIN}?{urlencode({'return_to': paths.ACCOUNT})}")
    apps = await _apps(registry, session.user_id)
    return render(
        "account.html",
        username=session.username,
        csrf=session.csrf,
        apps=apps,
        revoked=await _revoked_name(registry, request.query.get("revoked", ""), apps),
        when=when,
    )


@html_page
async def revoke_app(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    form = await read_form(request)
    session = await current_session(request)
    if session is None or session.user_id is None or not session.csrf_matches(form.get("csrf_token", "")):
        raise InvalidRequest("The form expired or did not come from this site; open your account page again.")
    client_id = form.get("revoke", "")
    user_id = uuid.UUID(session.user_id)
    apps = await registry.consents.apps(user_id, family_lifetime=_lifetime(registry))
    # a client ID metadata document's URL too: an app she allowed stays revocable if the operator
    # has turned those off since (only her own apps are looked at)
    if not plausible_client_id(client_id, urls=True) or all(app.client_id != client_id for app in apps):
        raise InvalidRequest("No such app can act for you: there is nothing to revoke.")
    forgotten = await registry.consents.revoke(user_id, client_id)
    families = await platform.revoke_grants(
        registry, "consent revoked by the user", subject=session.user_id, client_id=client_id
    )
    notified = await _backchannel_logout(registry, session, client_id)
    await registry.audit.record(
        "consent.revoked",
        client_id=client_id,
        subject=session.user_id,
        ip=client_ip(request),
        via="account",
        consent_revoked=forgotten,
        refresh_token_families_revoked=families,
        backchannel_logout=notified,
    )
    return see_other(f"{paths.ACCOUNT}?{urlencode({'revoked': client_id})}")


async def _backchannel_logout(registry: Registry, session: Session, client_id: str) -> bool:
    """Queue a logout token for the app if it registered a ``backchannel_logout_uri``
    (Back-Channel Logout 1.0 §2.5); whether one was queued.

    The token names the ``sub`` the app sees. Without ``sid`` it ends every session of hers at
    the app (§2.4), which is what taking its access back means; the current session's ``sid`` is
    added only for an app that requires one (``backchannel_logout_session_required``, §2.2) and got
    an ID token in this session."""
    client = await registry.clients.get(client_id)
    if client is None or client.backchannel_logout_uri is None or session.user_id is None:
        return False
    sid = None
    if client.backchannel_logout_session_required and session.sid is not None:
        sid = session.sid if client_id in await registry.sessions.clients(session.sid) else None
    sub = await registry.subjects.for_client(client, session.user_id)
    await registry.logout_deliveries.enqueue(
        Delivery(client_id=client_id, sub=sub, sid=sid, user_id=session.user_id)
    )
    return True


async def _apps(registry: Registry, user_id: str) -> list[AppRow]:
    """The user's apps, described for the page."""
    scopes = registry.settings.scopes
    site = registry.settings.site_name
    rows = []
    for app in await registry.consents.apps(uuid.UUID(user_id), family_lifetime=_lifetime(registry)):
        client = await registry.clients.get(app.client_id)
        apis = await resources.names(
            registry, [a for a in app.apis if a != registry.settings.access_token_audience]
        )
        rows.append(_row(app, client, scopes, site, apis))
    return rows


def _row(
    app: AppAccess, client: Client | None, scopes: Mapping[str, str], site: str, apis: tuple[str, ...]
) -> AppRow:
    described = [(s, i18n.localized(scopes.get(s, s))) for s in app.scope]
    return AppRow(
        client_id=app.client_id,
        name=app.client_id if client is None else client.client_name,
        logo_uri=None if client is None else client.logo_uri,
        client_uri=None if client is None else client.client_uri,
        provenance=None if client is None else provenance(client, site),
        scopes=described,
        apis=apis,
        since=app.since,
        last_used_at=app.last_used_at,
        expires_at=app.expires_at,
    )


async def _revoked_name(registry: Registry, client_id: str, apps: list[AppRow]) -> str | None:
    """The name of the app just revoked (the notice after the redirect), if it indeed has no access
    any more: a crafted link cannot make the page claim what did not happen."""
    if (
        not client_id
        or not plausible_client_id(client_id, urls=True)
        or any(a.client_id == client_id for a in apps)
    ):
        return None
    client = await registry.clients.get(client_id)
    # an approved app's name is public (its consent page shows it); a pending one's is not
    return None if client is None or not client.active else client.client_name


def _lifetime(registry: Registry) -> timedelta:
    return timedelta(seconds=registry.settings.refresh_family_lifetime)


def when(moment: datetime) -> str:
    """A moment as people read it, in the page's language: ``3 May 2025, 14:05 UTC``."""
    return i18n.when(moment)
