"""Pushed authorization request endpoint (RFC 9126 §2), read as its steps.

authenticate the client as the token endpoint does, within this endpoint's rate limits (§2) → the
authorization request is the form without the client's credentials (§2.1) → the key of a DPoP proof
sent along is the request's ``dpop_jkt`` (RFC 9449 §10.1) → the checks ``/authorize`` runs
(``authorization/checks.py`` ``CHECKS``; a ``request_uri`` among the parameters is refused, §2.1)
→ what is kept is the authorization request's parameters alone (:data:`AUTHORIZATION_PARAMETERS`,
those ``/authorize`` acts on; any other is dropped, as ``/authorize`` ignores it), at most
:data:`MAX_KEPT_BYTES` of them (else ``invalid_request``) → kept in Redis under a new
``request_uri``, good once, for this client alone, for ``TESSERA_PAR_TTL`` seconds
(``stores/pushed_requests.py``) → 201 with ``request_uri`` and ``expires_in`` (§2.2), no-store.

A public client authenticates with its ``client_id`` alone, which anyone may send: what a stranger
can park in Redis is bounded by :data:`MAX_KEPT_BYTES` a push and ``TESSERA_RATE_PAR_PER_IP``
pushes a minute per address (a public client's own budget is per address too).

Every error is JSON, as the token endpoint's (§2.3), never a redirect: what ``/authorize`` would show
as a page (an unknown redirect URI, say) is ``invalid_request``, what it would send back to the
client is the same error code here. The redirect URI must be one the client registered, matched
exactly as at ``/authorize``: §2.4 lets a server accept unregistered ones from confidential clients,
and Tessera does not (README, "Pushed authorization requests").
"""

from __future__ import annotations

import orjson
from aiohttp import web
from multidict import MultiDict

from auth_server import paths
from auth_server.appkeys import REGISTRY
from auth_server.authorization import checks
from auth_server.dpop import code_binding
from auth_server.rate_limits import authenticated_client
from shared.errors import NO_STORE, InvalidRequest
from shared.http import client_ip, read_form_pairs, single_valued

# The parameters of an authorization request that /authorize acts on (authorization/checks.py reads
# them, the login page login_hint, the pages' language ui_locales): the ones a push keeps. The client's
# credentials (RFC 9126 §2.1) are not among them; request, request_uri and registration are refused
# by the checks. A check that reads a new parameter adds it here (tests/integration/test_par.py).
AUTHORIZATION_PARAMETERS = frozenset(
    {
        "client_id",
        "response_type",
        "redirect_uri",
        "response_mode",
        "state",
        "scope",
        "resource",  # RFC 8707, repeatable
        "code_challenge",
        "code_challenge_method",
        "dpop_jkt",  # RFC 9449 §10
        # OpenID Connect Core §3.1.2.1, §5.5
        "nonce",
        "prompt",
        "max_age",
        "claims",
        "acr_values",
        "display",
        "id_token_hint",
        "login_hint",
        "ui_locales",
    }
)
# The most a pushed request's kept parameters may come to (names and values, UTF-8): a request as
# large as a browser would carry in a URL, not TESSERA_MAX_BODY_BYTES of whatever a stranger sends.
MAX_KEPT_BYTES = 8192
# RFC 9126 §2.1: relied upon only to authenticate the client, not part of the authorization request
CLIENT_CREDENTIALS = frozenset({"client_secret", "client_assertion", "client_assertion_type"})


async def pushed_authorization_request(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    settings = registry.settings
    url = settings.endpoint(paths.PUSHED_AUTHORIZATION_REQUEST)
    pairs = await read_form_pairs(request)
    form = single_valued(pairs, repeatable=checks.REPEATABLE)
    client = await authenticated_client(
        request,
        registry,
        form,
        name="par",
        endpoint=url,
        per_ip=settings.rate_par_per_ip,
        per_client=settings.rate_par_per_client,
    )
    # the checks see what was sent (a request_uri or request object among it is refused, §2.1);
    # what is kept is the authorization request's own parameters
    parameters = [(name, value) for name, value in pairs if name not in CLIENT_CREDENTIALS]
    proof = await registry.dpop.proof(request, url=url)  # None without a DPoP header
    if proof is not None:  # its key binds the code; a dpop_jkt sent as well must be that key's
        code_binding(form.get("dpop_jkt"), proof)  # invalid_request if they differ
        parameters = [(name, value) for name, value in parameters if name != "dpop_jkt"]
        parameters.append(("dpop_jkt", proof.jkt))
    kept = [(name, value) for name, value in parameters if name in AUTHORIZATION_PARAMETERS]
    size = sum(len(name.encode()) + len(value.encode()) for name, value in kept)
    if size > MAX_KEPT_BYTES:
        raise InvalidRequest(
            f"The pushed authorization request is too large: its parameters come to {size} bytes,"
            f" and at most {MAX_KEPT_BYTES} are kept."
        )
    # client_id is required (§2.1), and client authentication saw to it that it names this client
    pushing = checks.Checking(
        registry, MultiDict(parameters), at_par_endpoint=True, client_ip=client_ip(request)
    )
    await checks.run(pushing)
    request_uri = await registry.pushed_requests.push(client.client_id, kept)
    body = {"request_uri": request_uri, "expires_in": registry.pushed_requests.ttl}
    headers = {**NO_STORE, **await registry.dpop.response_headers(proof)}
    return web.Response(status=201, body=orjson.dumps(body), content_type="application/json", headers=headers)
