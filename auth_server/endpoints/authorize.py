"""Authorization endpoint (RFC 6749 §3.1, §4.1.1-4.1.2, §4.2; RFC 7636 §4.3; RFC 9207; RFC 9700 §2.1, §4.1).

The steps, in order: the rate limit → the checks (``authorization/checks.py``) → a signed-in user
recently enough (OpenID Connect Core §3.1.2.3: ``prompt=login``, ``max_age``, the user an
``id_token_hint`` names), else the login page → a remembered consent answers at once (unless
``prompt=consent``), else the consent page (``/consent`` decides). A request that demands
two-step sign-in (``acr_values``, or the client's ``default_acr_values``) of a user signed in with one
step is sent to the second step first (``/login/two-step``). With ``prompt=none`` nothing is
shown: what would need a page is answered ``login_required`` or ``consent_required`` (§3.1.2.6).

A pushed request (RFC 9126 §4: ``request_uri`` from the PAR endpoint) is taken, once, by the first
check; the parameters it names are the request. If the user must sign in first, it is pushed again
under a new ``request_uri`` for the login page to return to (:func:`_pushed_again`).

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

from auth_server import i18n, paths, resources, scopes
from auth_server.appkeys import REGISTRY
from auth_server.authorization import checks
from auth_server.authorization.answer import answer
from auth_server.authorization.request import AuthorizationRequest, ResourceOwner
from auth_server.authorization.response_modes import REDIRECT_HEADERS
from auth_server.clients import Client
from auth_server.endpoints.consent import consent_page
from auth_server.oidc.acr import MULTIPLE_FACTORS, demands_mfa
from auth_server.pages import current_session
from auth_server.rate_limits import limit, per_address
from auth_server.registry import UNAVAILABLE_ERRORS, Registry
from shared.error_middleware import html_page
from shared.errors import OAuthError, TemporarilyUnavailable
from shared.http import client_ip, read_form_pairs
from shared.observability import METRICS


@html_page
async def authorize(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    await limit(registry, per_address("authorize", request, registry.settings.rate_authorize_per_ip))
    query: MultiMapping[str] = request.query
    if request.method == "POST":  # OpenID Connect Core §3.1.2.1: the parameters as a form
        query = MultiDict(await read_form_pairs(request))  # each named once, checks say (resource may repeat)
    checking = checks.Checking(registry, query, client_ip=client_ip(request))
    try:
        authz = await checks.run(checking)
        # the pages' language: the ui_locales the browser shows first (the language switch sets
        # it), else a pushed request's (OpenID Connect Core §3.1.2.1; auth_server/i18n.py)
        i18n.hint(query.get("ui_locales") or checking.params.get("ui_locales"))
        client, redirection = checking.client, checking.redirection
        assert client is not None and redirection is not None
        session = await current_session(request)
        owner = ResourceOwner.of(session)
        if session is None or owner is None or await _must_sign_in(registry, checking, owner):
            if "none" in checking.prompt:
                raise LoginRequired("The user is not signed in (prompt=none).")
            fresh = owner is not None or _asks_fresh_sign_in(checking)
            resumed = _marked(checking.query if checking.pushed else query, fresh=fresh)
            if checking.pushed:
                resumed = await _pushed_again(registry, checking, resumed)
            return _to_login(resumed, reauthenticate=owner is not None)
        if demands_mfa(checking.acr_values) and MULTIPLE_FACTORS not in owner.amr:
            # signed in with one step, and the request (or its client) demands two (issue 18)
            if "none" in checking.prompt:
                raise LoginRequired("The request demands two-step sign-in (prompt=none).")
            # as they are: a sign-in forced by this request (its SIGNED_IN_AFTER) stays satisfied
            resumed = list((checking.query if checking.pushed else query).items())
            if checking.pushed:
                resumed = await _pushed_again(registry, checking, resumed)
            return _to_second_step(resumed)
        authz = replace(authz, scope=await scopes.for_user(registry, owner.subject, authz.scope))
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
            apis=await resources.names(registry, authz.resources),
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
    default = registry.settings.access_token_audience
    # every scope asked, for every API asked (the default audience when none is named): a consent
    # to read photos at one API allows nothing at another (RFC 8707)
    if consent is None or not consent.allows(
        resources.consented(authz.resources, default), authz.scope, default
    ):
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
# anyway: the client checks the ID token's auth_time (Core §3.1.2.1, §3.1.3.7). A pushed request
# (RFC 9126) keeps it among its parameters, in Redis, where the browser can neither add nor strip it.
SIGNED_IN_AFTER = "tessera_signed_in_after"


def _asks_fresh_sign_in(checking: checks.Checking) -> bool:
    """Whether the request asks more of a sign-in than that someone be signed in."""
    return bool(
        checking.prompt & {"login", "select_account"}
        or checking.max_age is not None
        or checking.hinted_subject is not None
    )


def _marked(parameters: MultiMapping[str], *, fresh: bool) -> list[tuple[str, str]]:
    """The request's parameters, to resume it after the sign-in: marked with when the sign-in was
    asked for if it must be a fresh one (:data:`SIGNED_IN_AFTER`)."""
    resumed = [(name, value) for name, value in parameters.items() if name != SIGNED_IN_AFTER]
    if fresh:
        resumed.append((SIGNED_IN_AFTER, str(int(time.time()))))
    return resumed


# Seconds after the client pushed it that a pushed request waits, pushed again, while its user signs
# in (its first request_uri is spent: RFC 9126 §4, one use). Counted from the first push, not from
# each visit: whoever holds a request_uri may visit /authorize with it again and again, and the
# request still ends then (it is the upper end of RFC 9126 §2.2's "between 5 and 600 seconds"; the
# first request_uri lives TESSERA_PAR_TTL, below it). The login form stays good longer
# (login_csrf.MAX_AGE); a sign-in that takes more than this starts again at the client.
SIGN_IN_WAIT = 600


async def _pushed_again(
    registry: Registry, checking: checks.Checking, parameters: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The query that resumes a pushed request (RFC 9126) after the sign-in: its parameters, as
    :func:`_marked` left them, pushed again under a new ``request_uri`` (one use, for this client,
    until :data:`SIGN_IN_WAIT` seconds after the client first pushed them), so that they never pass
    through the browser. The verified redirect
    URI and ``login_hint`` go along for the login page alone (the form's CSP must allow the redirect
    URI, the username is filled in): ``/authorize`` reads the pushed parameters only."""
    client, redirection = checking.client, checking.redirection
    assert client is not None and redirection is not None
    request_uri = await registry.pushed_requests.push_again(client.client_id, parameters, within=SIGN_IN_WAIT)
    resumed = [("client_id", client.client_id), ("request_uri", request_uri)]
    resumed.append(("redirect_uri", redirection.redirect_uri))
    for shown in ("login_hint", "ui_locales"):  # the username to fill in; the pages' language
        if shown in checking.params:
            resumed.append((shown, checking.params[shown]))
    return resumed


def _to_login(resumed: list[tuple[str, str]], *, reauthenticate: bool) -> web.Response:
    """The login page, to come back here once signed in, with the ``resumed`` parameters
    (``reauthenticate``: someone is signed in, and must sign in again)."""
    return_to = f"{paths.AUTHORIZE}?{urlencode(resumed)}"
    login = {"return_to": return_to, **({"reauthenticate": "1"} if reauthenticate else {})}
    return web.Response(
        status=302, headers={"Location": f"{paths.LOGIN}?{urlencode(login)}", **REDIRECT_HEADERS}
    )


def _to_second_step(resumed: list[tuple[str, str]]) -> web.Response:
    """The second step's page (a step-up: the request demands two-step sign-in, issue 18), to come
    back here once it is done, with the ``resumed`` parameters."""
    return_to = f"{paths.AUTHORIZE}?{urlencode(resumed)}"
    return web.Response(
        status=302,
        headers={"Location": f"{paths.TWO_STEP}?{urlencode({'return_to': return_to})}", **REDIRECT_HEADERS},
    )
