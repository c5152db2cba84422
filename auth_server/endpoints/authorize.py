"""Authorization endpoint (RFC 6749 §3.1, §4.1.1-4.1.2, §4.2; RFC 7636 §4.3; RFC 9207; RFC 9700 §2.1, §4.1).

The steps, in order: the rate limit → the checks (``authorization/checks.py``: client → redirect
URI → response mode → parameters → response type → PKCE → state → scope) → a signed-in user, else
the login page → a remembered consent answers at once, else the consent page (``/consent`` decides).

Until the checks have verified the client's exact redirect URI, every error is shown as a page
and nothing redirects (no open redirector). After that, errors go back to the client with
``error``, ``error_description``, ``state`` and ``iss`` (``authorization/response_modes.py``).
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from auth_server import paths
from auth_server.appkeys import REGISTRY
from auth_server.authorization import checks
from auth_server.authorization.answer import answer
from auth_server.authorization.request import ResourceOwner
from auth_server.authorization.response_modes import REDIRECT_HEADERS
from auth_server.pages import current_session, render
from auth_server.rate_limits import limit, per_address
from auth_server.registry import UNAVAILABLE_ERRORS
from shared.error_middleware import html_page
from shared.errors import OAuthError, TemporarilyUnavailable
from shared.observability import METRICS


@html_page
async def authorize(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    await limit(registry, per_address("authorize", request, registry.settings.rate_authorize_per_ip))
    checking = checks.Checking(registry, request)
    try:
        authz = await checks.run(checking)
        client, redirection = checking.client, checking.redirection
        assert client is not None and redirection is not None
        session = await current_session(request)
        owner = ResourceOwner.of(session)
        if session is None or owner is None:
            return web.Response(
                status=302,
                headers={
                    "Location": f"{paths.LOGIN}?{urlencode({'return_to': request.path_qs})}",
                    **REDIRECT_HEADERS,
                },
            )
        if client.remembers_consent(authz.response_type) and set(
            authz.scope
        ) <= await registry.consents.granted(uuid.UUID(owner.subject), client.client_id):
            return redirection.response(await answer(registry, request.app[METRICS], authz, owner))
        request_id = await registry.authorization_requests.put(authz, owner.subject)
        return render(
            "consent.html",
            client_name=client.client_name,
            username=session.username,
            scopes=[(s, registry.settings.scopes.get(s, s)) for s in authz.scope],
            redirect_host=urlsplit(redirection.redirect_uri).netloc or redirection.redirect_uri,
            csrf=session.csrf,
            request_id=request_id,
            form_to=redirection.redirect_uri,  # the consent form's answer redirects there (CSP)
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
