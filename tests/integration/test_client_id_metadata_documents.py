"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): an https URL as
``client_id`` names the JSON document that describes the client.

The documents are served by a local aiohttp server on 127.0.0.1. A development issuer
(http://localhost) may fetch from loopback, over plain http, as it may fetch a ``jwks_uri``; an
issuer that is not a local development one never connects there. Nothing is stored in PostgreSQL
before a signed-in user allows the client.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from auth_server.client_documents import MAX_DOCUMENT_BYTES
from auth_server.crypto import hash_password
from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.support.dpop import DPoPKey
from tests.support.flow import Pkce, hidden, obtain_code, query_of, sign_in
from tests.support.servers import PASSWORD, AppFactory, registry_of

OPEN_SCOPES = "openid profile offline_access photos:read"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Served:
    body: bytes
    headers: dict[str, str]
    status: int = 200


@dataclass
class DocumentHost:
    """Client ID metadata documents on a real loopback port; each path counts its fetches."""

    origin: str = ""  # http://127.0.0.1:PORT
    port: int = 0
    documents: dict[str, Served] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def url(self, path: str = "/client.json") -> str:
        return f"{self.origin}{path}"

    @property
    def callback(self) -> str:
        return f"{self.origin}/callback"

    def serve(
        self,
        path: str = "/client.json",
        *,
        client_id: str | None = None,
        cache_control: str | None = "max-age=300",
        content_type: str = "application/json",
        raw: bytes | None = None,
        **metadata: Any,
    ) -> str:
        """Serve a document at ``path`` whose ``client_id`` is its URL (unless given); its URL."""
        url = self.url(path)
        document = {
            "client_id": url if client_id is None else client_id,
            "client_name": "Photo Agent",
            "redirect_uris": [self.callback],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "scope": "openid profile offline_access photos:read",
            **metadata,
        }
        headers = {"Content-Type": content_type}
        if cache_control is not None:
            headers["Cache-Control"] = cache_control
        self.documents[path] = Served(json.dumps(document).encode() if raw is None else raw, headers)
        return url

    def fetches(self, path: str = "/client.json") -> int:
        return self.hits.get(path, 0)


@pytest.fixture
async def host() -> AsyncIterator[DocumentHost]:
    state = DocumentHost()

    async def serve(request: web.Request) -> web.Response:
        state.hits[request.path] = state.hits.get(request.path, 0) + 1
        served = state.documents.get(request.path)
        if served is None:
            return web.Response(status=404)
        return web.Response(body=served.body, status=served.status, headers=served.headers)

    app = web.Application()
    app.router.add_get("/{name:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        state.port = runner.addresses[0][1]
        state.origin = f"http://127.0.0.1:{state.port}"
        yield state
    finally:
        await runner.cleanup()


@dataclass
class Listener:
    """A TCP port on 127.0.0.1 that counts the connections made to it (and closes each)."""

    port: int = 0
    connections: int = 0


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    state = Listener()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        writer.close()

    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def http(app_with: AppFactory) -> TestClient:
    """An authorization server with client ID metadata documents on (a development issuer)."""
    return await app_with(client_id_metadata_documents="on", open_scopes=OPEN_SCOPES)


@pytest.fixture
def registry(http: TestClient) -> Registry:
    return registry_of(http)


@pytest.fixture
async def user(registry: Registry) -> User:
    return await registry.users.create(f"user-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))


def params(
    client_id: str, redirect_uri: str, pkce: Pkce, scope: str = "openid photos:read"
) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": "state-123",
        "nonce": "nonce-123",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }


async def authorize(http: TestClient, query: dict[str, str], user: User | None = None) -> ClientResponse:
    """GET /authorize (signing ``user`` in first when the login page is where it leads)."""
    response = await http.get(f"/oauth2/authorize?{urlencode(query)}", allow_redirects=False)
    if user is not None and response.status == 302 and response.headers["Location"].startswith("/login"):
        return_to = query_of(response.headers["Location"])["return_to"]
        assert await sign_in(http, user.username, PASSWORD, return_to) == 303
        response = await http.get(return_to, allow_redirects=False)
    return response


async def refused(response: ClientResponse, error: str, words: str) -> None:
    """An error page (never a redirect: the redirect URI is not verified) with ``error`` and ``words``."""
    page = await response.text()
    assert response.status == 400, (response.status, page)
    assert "Location" not in response.headers
    assert error in page, page
    assert words in page, page


async def redeem(
    http: TestClient, client_id: str, code: str, redirect_uri: str, pkce: Pkce
) -> dict[str, Any]:
    response = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": pkce.verifier,
        },
    )
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


# --- the flow ----------------------------------------------------------------------------------


async def test_a_document_client_runs_the_code_flow_with_pkce(
    http: TestClient, registry: Registry, host: DocumentHost, user: User
) -> None:
    client_id = host.serve()
    doc = await (await http.get("/.well-known/oauth-authorization-server")).json()
    assert doc["client_id_metadata_document_supported"] is True

    pkce = Pkce.new()
    query = params(client_id, host.callback, pkce, scope="openid offline_access photos:read")
    code = (await obtain_code(http, query, user.username, PASSWORD))["code"]
    tokens = await redeem(http, client_id, code, host.callback, pkce)
    assert tokens["token_type"] == "Bearer" and tokens["id_token"] and tokens["refresh_token"]
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == client_id and claims["scope"] == "openid offline_access photos:read"
    assert jwt.decode(tokens["id_token"], options={"verify_signature": False})["aud"] == client_id

    # stored once the user allowed it: public, PKCE required, marked as described by its document
    stored = await registry.clients.load(client_id)
    assert stored is not None and stored.client_name == "Photo Agent"
    assert stored.registered_via == "metadata_document" and stored.status == "approved"
    assert stored.token_endpoint_auth_method == "none" and stored.require_pkce and stored.secret_hash is None
    assert not stored.allow_introspection and not stored.first_party
    # a public client's refresh token works without a secret (RFC 6749 §6)
    refreshed = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client_id,
        },
    )
    assert refreshed.status == 200, await refreshed.text()

    # a public client is asked again, even though the user consented before
    again = await authorize(http, params(client_id, host.callback, Pkce.new()))
    assert again.status == 200 and 'name="consent" value="allow"' in await again.text()
    assert host.fetches() == 1  # the document was cached (max-age=300) all along


async def test_the_consent_page_shows_the_documents_host_and_not_its_logo(
    http: TestClient, host: DocumentHost, user: User
) -> None:
    client_id = host.serve(
        client_name="Totally Official Bank (app at bank.example)",
        logo_uri=f"{host.origin}/logo.png",
        client_uri="https://bank.example/",  # another site's address: never shown
    )
    response = await authorize(http, params(client_id, host.callback, Pkce.new()), user)
    page = await response.text()
    assert response.status == 200, page
    # the heading names the host, which is certain; the name it gives itself comes after, as a claim
    heading = re.search(r"<h1>(.*?)</h1>", page, re.S)
    assert heading is not None
    assert (
        f'An app at <strong id="client-host" class="document-host">127.0.0.1:{host.port}</strong>'
        in heading[1]
    )
    assert "Totally Official Bank" not in heading[1]
    assert (
        'It calls itself <strong id="client-name">Totally Official Bank (app at bank.example)</strong>'
        in page
    )
    assert re.search(r'id="provenance">Not reviewed by .*: the app describes itself, at 127\.0\.0\.1', page)
    assert "nobody here checked that" in page
    assert "logo.png" not in page  # a self-asserted logo, from the app's own server: not shown
    assert "bank.example/" not in page.replace("(app at bank.example)", "")


async def test_nothing_is_stored_before_the_user_allows_the_client(
    http: TestClient, registry: Registry, host: DocumentHost, user: User
) -> None:
    client_id = host.serve()
    response = await authorize(http, params(client_id, host.callback, Pkce.new()), user)
    page = await response.text()
    assert response.status == 200, page
    assert await registry.clients.load(client_id) is None
    denied = await http.post(
        "/consent",
        data={
            "csrf_token": hidden(page, "csrf_token"),
            "request_id": hidden(page, "request_id"),
            "consent": "deny",
        },
        allow_redirects=False,
    )
    assert denied.status == 303 and query_of(denied.headers["Location"])["error"] == "access_denied"
    assert await registry.clients.load(client_id) is None
    assert await registry.consents.granted(user.user_id, client_id) == set()
    # nor by a stranger who never signs in: the login page is all it gets
    http.session.cookie_jar.clear()
    stranger = await http.get(
        f"/oauth2/authorize?{urlencode(params(host.serve('/other.json'), host.callback, Pkce.new()))}",
        allow_redirects=False,
    )
    assert stranger.status == 302 and stranger.headers["Location"].startswith("/login")
    assert await registry.clients.load(host.url("/other.json")) is None


async def test_the_row_is_refreshed_when_a_later_fetch_finds_the_document_changed(
    http: TestClient, registry: Registry, host: DocumentHost, user: User
) -> None:
    client_id = host.serve(cache_control="no-store")
    await obtain_code(http, params(client_id, host.callback, Pkce.new()), user.username, PASSWORD)
    assert (stored := await registry.clients.load(client_id)) is not None
    assert stored.client_name == "Photo Agent"
    host.serve(cache_control="no-store", client_name="Photo Agent 2")
    response = await authorize(http, params(client_id, host.callback, Pkce.new()))
    assert response.status == 200  # the consent page again (a public client)
    assert (stored := await registry.clients.load(client_id)) is not None
    assert stored.client_name == "Photo Agent 2" and stored.registered_via == "metadata_document"
    assert host.fetches() >= 3  # no-store: fetched for /authorize, /consent, and /authorize again


async def test_a_suspended_document_client_stays_suspended_whatever_its_document_says(
    http: TestClient, registry: Registry, host: DocumentHost, user: User
) -> None:
    client_id = host.serve(cache_control="no-store")
    await obtain_code(http, params(client_id, host.callback, Pkce.new()), user.username, PASSWORD)
    await registry.clients.review(client_id, "suspended", note="phishing")
    host.serve(cache_control="no-store", client_name="Renamed")
    response = await authorize(http, params(client_id, host.callback, Pkce.new()))
    await refused(response, "unauthorized_client", "suspended")


async def test_private_key_jwt_document_client_authenticates_with_its_documents_keys(
    http: TestClient, registry: Registry, host: DocumentHost, user: User
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1", "alg": "ES256", "use": "sig"}
    client_id = host.serve(token_endpoint_auth_method="private_key_jwt", jwks={"keys": [jwk]})
    pkce = Pkce.new()
    code = (await obtain_code(http, params(client_id, host.callback, pkce), user.username, PASSWORD))["code"]
    stored = await registry.clients.load(client_id)
    assert (
        stored is not None and stored.token_endpoint_auth_method == "private_key_jwt" and not stored.is_public
    )

    def assertion() -> str:
        now = int(time.time())
        claims = {"iss": client_id, "sub": client_id, "aud": "http://localhost:8000", "iat": now}
        claims |= {"exp": now + 120, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})

    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": host.callback}
    # without client authentication, as if it were public: refused
    bare = await http.post(
        "/oauth2/token", data={**form, "client_id": client_id, "code_verifier": pkce.verifier}
    )
    assert bare.status == 401 and (await bare.json())["error"] == "invalid_client"
    response = await http.post(
        "/oauth2/token",
        data={
            **form,
            "code_verifier": pkce.verifier,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion(),
        },
    )
    assert response.status == 200, await response.text()
    # a confidential client the user allowed before is not asked again (as any confidential client)
    again = await authorize(http, params(client_id, host.callback, Pkce.new()))
    assert again.status == 302 and "code" in query_of(again.headers["Location"]), await again.text()


async def test_a_document_may_require_dpop_and_a_later_one_cannot_take_it_back(
    http: TestClient, registry: Registry, host: DocumentHost, user: User
) -> None:
    """``dpop_bound_access_tokens`` (RFC 9449 §5.2) only tightens what the client gets: a document
    may ask for it, and a later document that leaves it out does not turn it off (an operator may)."""
    client_id = host.serve(cache_control="no-store", dpop_bound_access_tokens=True)
    pkce = Pkce.new()
    code = (await obtain_code(http, params(client_id, host.callback, pkce), user.username, PASSWORD))["code"]
    stored = await registry.clients.load(client_id)
    assert stored is not None and stored.dpop_bound_access_tokens
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": host.callback,
        "client_id": client_id,
        "code_verifier": pkce.verifier,
    }
    bare = await http.post("/oauth2/token", data=form)
    assert (bare.status, (await bare.json())["error"]) == (400, "invalid_dpop_proof")
    proof = DPoPKey().proof("POST", "http://localhost:8000/oauth2/token")
    bound = await http.post("/oauth2/token", data=form, headers={"DPoP": proof})
    assert bound.status == 200, await bound.text()
    assert (await bound.json())["token_type"] == "DPoP"

    host.serve(cache_control="no-store", client_name="Photo Agent 2")  # no dpop_bound_access_tokens now
    response = await authorize(http, params(client_id, host.callback, Pkce.new()))
    assert response.status == 200, await response.text()  # the consent page (a public client)
    stored = await registry.clients.load(client_id)
    assert stored is not None and stored.client_name == "Photo Agent 2"  # the row follows the document...
    assert stored.dpop_bound_access_tokens  # ...but never loosens


async def test_a_document_may_require_par_but_not_ask_for_a_security_profile(
    http: TestClient, registry: Registry, host: DocumentHost
) -> None:
    client_id = host.serve(require_pushed_authorization_requests=True)
    response = await authorize(http, params(client_id, host.callback, Pkce.new()))
    assert response.status == 302 and response.headers["Location"].startswith(host.callback)
    answer = query_of(response.headers["Location"])
    assert answer["error"] == "invalid_request" and "push" in answer["error_description"]
    # FAPI 2.0 holds a registration to rules a later document could break: refused, not ignored
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1", "alg": "ES256"}
    client_id = host.serve(
        "/fapi.json",
        tessera_profile="fapi2",
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [jwk]},
    )
    response = await authorize(http, params(client_id, host.callback, Pkce.new()))
    await refused(response, "invalid_client", "tessera_profile")
    assert await registry.clients.load(client_id) is None


# --- refusals ----------------------------------------------------------------------------------


async def test_a_document_whose_client_id_differs_from_its_url_is_refused(
    http: TestClient, registry: Registry, host: DocumentHost
) -> None:
    url = host.serve(client_id="https://famous-app.example/client.json")
    response = await authorize(http, params(url, host.callback, Pkce.new()))
    await refused(response, "invalid_client", "must have a client_id equal to its URL")
    # the URL must be the document's client_id character for character: no normalisation
    url = host.serve("/exact.json", client_id=host.url("/exact.json").replace("127.0.0.1", "127.000.0.1"))
    await refused(
        await authorize(http, params(url, host.callback, Pkce.new())), "invalid_client", "equal to its URL"
    )
    assert await registry.clients.load(url) is None


async def test_a_redirect_uri_the_document_does_not_list_is_refused(
    http: TestClient, host: DocumentHost
) -> None:
    client_id = host.serve()
    response = await authorize(http, params(client_id, f"{host.origin}/elsewhere", Pkce.new()))
    await refused(response, "invalid_request", "redirect_uri is not registered for this client")


async def test_an_https_redirect_uri_on_another_origin_is_refused(
    http: TestClient, host: DocumentHost
) -> None:
    """The consent page names the document's host: a code never goes to another site."""
    client_id = host.serve(redirect_uris=["https://somewhere-else.example/callback"])
    response = await authorize(http, params(client_id, "https://somewhere-else.example/callback", Pkce.new()))
    await refused(response, "invalid_client", "own origin")


async def test_a_document_with_a_client_secret_is_refused(http: TestClient, host: DocumentHost) -> None:
    client_id = host.serve(client_secret="shared-secret")
    response = await authorize(http, params(client_id, host.callback, Pkce.new()))
    await refused(response, "invalid_client", "must not contain client_secret")
    assert "shared-secret" not in await response.text()
    client_id = host.serve("/basic.json", token_endpoint_auth_method="client_secret_basic")
    response = await authorize(http, params(client_id, host.callback, Pkce.new()))
    await refused(response, "invalid_client", "none or private_key_jwt only")


async def test_operator_only_fields_and_admin_scopes_are_not_granted(
    http: TestClient, host: DocumentHost, user: User
) -> None:
    client_id = host.serve(first_party=True)
    response = await authorize(http, params(client_id, host.callback, Pkce.new()))
    await refused(response, "invalid_client", "first_party")
    # admin scopes are narrowed away, as every scope not open to self-registered clients
    client_id = host.serve("/admin.json", scope="admin:read admin:write photos:read")
    response = await authorize(http, params(client_id, host.callback, Pkce.new(), scope="admin:read"), user)
    assert response.status == 302, await response.text()
    assert query_of(response.headers["Location"])["error"] == "invalid_scope"


async def test_an_oversized_document_is_refused(
    http: TestClient, registry: Registry, host: DocumentHost
) -> None:
    client_id = host.serve(client_uri=f"{host.origin}/{'x' * MAX_DOCUMENT_BYTES}")
    response = await authorize(http, params(client_id, host.callback, Pkce.new()))
    await refused(response, "invalid_client", f"at most {MAX_DOCUMENT_BYTES} bytes")
    assert host.fetches() == 1
    assert registry.clients.documents.get(client_id) is None  # a failure is never cached


async def test_a_document_not_served_as_json_is_refused(http: TestClient, host: DocumentHost) -> None:
    client_id = host.serve(content_type="text/plain")
    await refused(
        await authorize(http, params(client_id, host.callback, Pkce.new())),
        "invalid_client",
        "application/json",
    )


async def test_a_document_on_a_private_address_is_never_fetched(
    app_with: AppFactory, http: TestClient, host: DocumentHost, listener: Listener
) -> None:
    """An issuer that is not a local development one never connects to an address on this machine,
    named or resolved (a listener counts every TCP connection, TLS or not); a development issuer
    does, which shows the count would see one."""
    production = await app_with(
        issuer="https://auth.example", client_id_metadata_documents="on", open_scopes=OPEN_SCOPES
    )
    for origin in (f"https://127.0.0.1:{listener.port}", f"https://localhost:{listener.port}"):
        client_id = f"{origin}/client.json"
        query = params(client_id, f"{origin}/callback", Pkce.new())
        response = await production.get(f"/oauth2/authorize?{urlencode(query)}", allow_redirects=False)
        await refused(response, "invalid_client", "could not be fetched")
        assert "loopback" not in await response.text()  # no map of this network for strangers
    assert listener.connections == 0
    # plain http is for a development issuer's loopback documents only
    query = params(host.serve(), host.callback, Pkce.new())
    response = await production.get(f"/oauth2/authorize?{urlencode(query)}", allow_redirects=False)
    await refused(response, "invalid_client", "it must use https")
    assert host.fetches() == 0

    # the control: a development issuer may fetch from loopback, so it connects (and fails TLS)
    client_id = f"https://127.0.0.1:{listener.port}/client.json"
    response = await authorize(http, params(client_id, f"https://127.0.0.1:{listener.port}/cb", Pkce.new()))
    await refused(response, "invalid_client", "could not be fetched")
    assert listener.connections >= 1


async def test_the_document_is_cached_as_http_caching_says(http: TestClient, host: DocumentHost) -> None:
    cached = host.serve("/cached.json", cache_control="public, max-age=600")
    for _ in range(3):
        assert (await authorize(http, params(cached, host.callback, Pkce.new()))).status == 302
    assert host.fetches("/cached.json") == 1
    uncached = host.serve("/uncached.json", cache_control="no-store")
    for _ in range(2):
        assert (await authorize(http, params(uncached, host.callback, Pkce.new()))).status == 302
    assert host.fetches("/uncached.json") == 2


async def test_when_the_feature_is_off_a_url_is_an_unknown_client(
    app_with: AppFactory, host: DocumentHost
) -> None:
    http = await app_with()  # off by default
    doc = await (await http.get("/.well-known/oauth-authorization-server")).json()
    assert "client_id_metadata_document_supported" not in doc
    response = await http.get(
        f"/oauth2/authorize?{urlencode(params(host.serve(), host.callback, Pkce.new()))}",
        allow_redirects=False,
    )
    await refused(response, "invalid_request", "Unknown client_id")
    assert host.fetches() == 0


async def test_a_host_not_on_the_allow_list_is_refused(app_with: AppFactory, host: DocumentHost) -> None:
    http = await app_with(
        client_id_metadata_documents="on", client_id_metadata_hosts="agents.example,*.trusted.example"
    )
    response = await http.get(
        f"/oauth2/authorize?{urlencode(params(host.serve(), host.callback, Pkce.new()))}",
        allow_redirects=False,
    )
    await refused(response, "invalid_client", "does not accept client ID metadata documents from 127.0.0.1")
    assert host.fetches() == 0


async def test_fetches_are_limited_per_host(app_with: AppFactory, host: DocumentHost) -> None:
    http = await app_with(client_id_metadata_documents="on", rate_client_document_per_host="2")
    for n in range(2):
        url = host.serve(f"/agent-{n}.json", cache_control="no-store")
        query = params(url, host.callback, Pkce.new())
        assert (await http.get(f"/oauth2/authorize?{urlencode(query)}", allow_redirects=False)).status == 302
    url = host.serve("/agent-2.json")
    response = await http.get(
        f"/oauth2/authorize?{urlencode(params(url, host.callback, Pkce.new()))}", allow_redirects=False
    )
    assert response.status == 429 and response.headers["Retry-After"]
    assert host.fetches("/agent-2.json") == 0


async def test_a_stranger_cannot_spend_a_hosts_whole_fetch_budget(
    app_with: AppFactory, host: DocumentHost
) -> None:
    """The review's finding: junk URLs on an agent's host, from one address, blocked every agent
    there. The budget is per host and address; all addresses together get ten times it."""
    http = await app_with(
        client_id_metadata_documents="on", rate_client_document_per_host="2", trusted_proxies="127.0.0.1"
    )

    async def ask(url: str, ip: str) -> int:
        query = urlencode(params(url, host.callback, Pkce.new()))
        response = await http.get(
            f"/oauth2/authorize?{query}", headers={"X-Forwarded-For": ip}, allow_redirects=False
        )
        return response.status

    stranger = "203.0.113.66"
    for n in range(3):
        await ask(f"{host.origin}/junk-{n}.json", stranger)
    assert await ask(f"{host.origin}/junk-9.json", stranger) == 429  # the stranger's own budget is spent
    agent = host.serve("/agent.json")
    assert await ask(agent, "198.51.100.7") == 302  # another address: the agent's document is fetched
    assert host.fetches("/agent.json") == 1


@pytest.mark.parametrize(
    ("suffix", "words"),
    [
        ("/client.json#part", "must not contain a fragment"),
        ("/client.json?v=1", "must not contain a query"),
        ("/a/../client.json", "must not contain . or .. path segments"),
        ("/a/%2e%2E/client.json", "must not contain . or .. path segments"),
        ("/", "must have a path"),
        ("", "must have a path"),
    ],
)
async def test_client_id_urls_that_break_the_rules_are_refused_unfetched(
    http: TestClient, host: DocumentHost, suffix: str, words: str
) -> None:
    client_id = f"{host.origin}{suffix}"
    response = await authorize(http, params(client_id, host.callback, Pkce.new()))
    await refused(response, "invalid_client", words)
    assert sum(host.hits.values()) == 0


async def test_client_id_urls_with_user_information_or_too_long_are_refused(http: TestClient) -> None:
    response = await authorize(
        http, params("https://user:pw@agent.example/c.json", "https://agent.example/cb", Pkce.new())
    )
    await refused(response, "invalid_client", "must not contain user information")
    long_id = "https://agent.example/" + "a" * 600
    response = await authorize(http, params(long_id, "https://agent.example/cb", Pkce.new()))
    await refused(response, "invalid_client", "longer than 512 characters")


async def test_the_account_page_shows_the_documents_host_and_revokes_the_app_even_once_turned_off(
    http: TestClient, app_with: AppFactory, registry: Registry, host: DocumentHost, user: User
) -> None:
    client_id = host.serve()
    await obtain_code(http, params(client_id, host.callback, Pkce.new()), user.username, PASSWORD)
    page = await (await http.get("/account")).text()
    assert "Photo Agent" in page and f"the app describes itself, at 127.0.0.1:{host.port}" in page
    # the operator turns client ID metadata documents off: the app she allowed stays revocable
    off = await app_with()
    assert await sign_in(off, user.username, PASSWORD) == 303
    page = await (await off.get("/account")).text()
    revoked = await off.post(
        "/account",
        data={"csrf_token": hidden(page, "csrf_token"), "revoke": client_id},
        allow_redirects=False,
    )
    assert revoked.status == 303, await revoked.text()
    assert await registry.consents.granted(user.user_id, client_id) == set()
