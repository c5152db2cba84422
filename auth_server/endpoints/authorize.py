"""Authorization endpoint (RFC 6749 §3.1, §4.1.1-4.1.2, §4.2; RFC 7636 §4.3; RFC 9207; RFC 9700 §2.1, §4.1).

The steps, in order: the rate limit → the checks (``authorization/checks.py``) → a signed-in user
recently enough (OpenID Connect Core §3.1.2.3: ``prompt=login``, ``max_age``, the user an
``id_token_hint`` names), else the login page → a remembered consent answers at once (unless
``prompt=consent``), else the consent page (``/consent`` decides). With ``prompt=none`` nothing is
shown: what would need a page is answered ``login_required`` or ``consent_required`` (§3.1.2.6).

Until the checks have verified the client's exact redirect URI, every error is shown as a page
and nothing redirects (no open redirector). After that, errors go back to the client with
``error``, ``error_description``, ``state`` and ``iss`` (``authorization/response_modes.py``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDict, MultiMapping

from auth_server import paths, platform
from auth_server.appkeys import REGISTRY
from auth_server.authorization import checks
from auth_server.authorization.answer import answer
from auth_server.authorization.request import AuthorizationRequest, ResourceOwner
from auth_server.authorization.response_modes import REDIRECT_HEADERS
from auth_server.clients import Client
from auth_server.endpoints.consent import consent_page
from auth_server.pages import current_session
from auth_server.rate_limits import limit, per_address
from auth_server.registry import UNAVAILABLE_ERRORS, Registry
from shared.error_middleware import html_page
from shared.errors import OAuthError, TemporarilyUnavailable
from shared.http import read_form
from shared.observability import METRICS


@html_page
async def authorize(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    await limit(registry, per_address("authorize", request, registry.settings.rate_authorize_per_ip))
    query: MultiMapping[str] = request.query
    if request.method == "POST":  # OpenID Connect Core §3.1.2.1: the parameters as a form
        query = MultiDict(await read_form(request))
    checking = checks.Checking(registry, query)
    try:
        authz = await checks.run(checking)
        client, redirection = checking.client, checking.redirection
        assert client is not None and redirection is not None
        session = await current_session(request)
        owner = ResourceOwner.of(session)
        if session is None or owner is None or await _must_sign_in(registry, checking, owner):
            if "none" in checking.prompt:
                raise LoginRequired("The user is not signed in (prompt=none).")
            return _to_login(query, reauthenticate=owner is not None, forced=_asks_fresh_sign_in(checking))
        authz = replace(authz, scope=await platform.scope_for_user(registry, owner.subject, authz.scope))
        remembered = await _remembered(registry, client, authz, owner)
        if remembered is not None:
            return redirection.response(await answer(registry, request.app[METRICS], remembered, owner))
        if "none" in checking.prompt:
            raise ConsentRequired("The user has not consented to this request (prompt=none).")
        request_id = await registry.authorization_requests.put(authz, owner.subject)
        return consent_page(
            client=client,
            session=session,
            authz=authz,
            scopes=dict(registry.settings.scopes),
            site_name=registry.settings.site_name,
            redirect_uri=redirection.redirect_uri,
            request_id=request_id,
        )
    except OAuthError as error:
        if checking.redirection is None:
            raise  # the redirect URI is not verified: the error middleware shows a page
        return checking.redirection.error(error)
    except UNAVAILABLE_ERRORS:
        if checking.redirection is None:
            raise
        return checking.redirection.error(
            TemporarilyUnavailable("The authorization server is temporarily unavailable.")
        )


class LoginRequired(OAuthError):
    error = "login_required"


class ConsentRequired(OAuthError):
    error = "consent_required"


async def _remembered(
    registry: Registry, client: Client, authz: AuthorizationRequest, owner: ResourceOwner
) -> AuthorizationRequest | None:
    """The request as a live consent the user gave before answers it without asking again (bound
    to when that consent ends, issue 15); None when she must be asked."""
    if authz.ask_consent or not client.remembers_consent(authz.response_type):
        return None
    consent = await registry.consents.remembered(uuid.UUID(owner.subject), client.client_id)
    if consent is None or not set(authz.scope) <= consent.scope:
        return None
    ends = None if consent.expires_at is None else int(consent.expires_at.timestamp())
    return replace(authz, grant_ends_at=ends)


async def _must_sign_in(registry: Registry, checking: checks.Checking, owner: ResourceOwner) -> bool:
    """Whether the signed-in user must sign in (again) first: ``prompt=login`` or
    ``select_account``, a sign-in older than ``max_age`` (or the client's ``default_max_age``),
    or an ``id_token_hint`` naming someone else (Core §3.1.2.1) — unless the user signed in after
    this request sent them to the login page (:data:`SIGNED_IN_AFTER`)."""
    asked_at = checking.params.get(SIGNED_IN_AFTER, "")
    if asked_at.isascii() and asked_at.isdigit() and owner.auth_time >= int(asked_at):
        return False
    if checking.prompt & {"login", "select_account"}:
        return True
    if checking.max_age is not None and time.time() - owner.auth_time > checking.max_age:
        return True
    if checking.hinted_subject is not None:
        client = checking.client
        assert client is not None
        return await registry.subjects.for_client(client, owner.subject) != checking.hinted_subject
    return False


# The request resumed after a forced sign-in carries when it was forced: a sign-in since then
# satisfies prompt=login, max_age (even 0) and the hint, once, instead of asking again forever.
# It can only relax what the request itself asks, which whoever holds the browser could strip
# anyway: the client checks the ID token's auth_time (Core §3.1.2.1, §3.1.3.7).
SIGNED_IN_AFTER = "tessera_signed_in_after"


def _asks_fresh_sign_in(checking: checks.Checking) -> bool:
    """Whether the request asks more of a sign-in than that someone be signed in."""
    return bool(
        checking.prompt & {"login", "select_account"}
        or checking.max_age is not None
        or checking.hinted_subject is not None
    )


def _to_login(query: MultiMapping[str], *, reauthenticate: bool, forced: bool) -> web.Response:
    """The login page, to come back here once signed in: to this very request, marked with when
    the sign-in was asked for if it must be a fresh one (``reauthenticate``: someone is signed in)."""
    resumed = [(name, value) for name, value in query.items() if name != SIGNED_IN_AFTER]
    if reauthenticate or forced:
        resumed.append((SIGNED_IN_AFTER, str(int(time.time()))))
    return_to = f"{paths.AUTHORIZE}?{urlencode(resumed)}"
    login = {"return_to": return_to, **({"reauthenticate": "1"} if reauthenticate else {})}
    return web.Response(
        status=302, headers={"Location": f"{paths.LOGIN}?{urlencode(login)}", **REDIRECT_HEADERS}
    )
