"""DPoP (RFC 9449) end to end, with real PostgreSQL and Redis: the token endpoint binds tokens to
the key of the proof it is sent (§5, §6), refresh tokens of public clients are bound to it too,
``dpop_jkt`` binds a code (§10), nonces (§8); the Photo Warehouse accepts a bound token only with a
fresh proof of that key (§7), and refuses it as a bearer token (§7.2); a proof is good once, on
every replica of either server (§11.1)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

from auth_server import paths
from auth_server.app import create_app
from auth_server.clients import Client
from auth_server.crypto import hash_password
from auth_server.endpoints.metadata import document
from auth_server.settings import Settings
from auth_server.stores.users import User
from resource_server.app import create_app as create_resource_app
from resource_server.settings import ResourceSettings
from shared.jwt_validation import PUBLIC_ORIGIN
from tests.support.dpop import DPoPKey, unsigned
from tests.support.flow import REDIRECT_URI, Pkce, authorize_params, basic, obtain_code
from tests.support.servers import PASSWORD, AppFactory, ClientFactory, LiveServer, registry_of
from tests.support.services import Services

Factory = Callable[..., Awaitable[TestClient]]
ISSUER = "http://localhost:8000"  # the issuer of the ``http`` fixture's server (tests.support.servers)
TOKEN_URL = ISSUER + paths.TOKEN
# the warehouse's public URL, as clients call it: not the loopback port the tests reach it at (a gateway)
PUBLIC = "https://photos.example.test/api"
PHOTOS = "https://photos.example.test/api/photos"


def claims_of(token: str) -> dict[str, Any]:
    found: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return found


async def answer(response: aiohttp.ClientResponse) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = await response.json()
    return response.status, body


async def partner(new_client: ClientFactory, **metadata: Any) -> tuple[Client, str]:
    client, secret = await new_client(grant_types=["client_credentials"], scope="warehouse:stats", **metadata)
    assert secret
    return client, secret


async def client_credentials(
    http: TestClient, client: Client, secret: str, proof: str | None, url: str = paths.TOKEN
) -> aiohttp.ClientResponse:
    headers = basic(client.client_id, secret)
    if proof is not None:
        headers["DPoP"] = proof
    return await http.post(url, data={"grant_type": "client_credentials"}, headers=headers)


# --- the token endpoint --------------------------------------------------------------------------


async def test_a_proof_binds_the_access_token_to_its_key(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await partner(new_client)
    key = DPoPKey()
    response = await client_credentials(http, client, secret, key.proof("POST", TOKEN_URL))
    status, body = await answer(response)
    assert status == 200, body
    assert body["token_type"] == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": key.jkt}
    assert response.headers["Cache-Control"] == "no-store"
    assert "DPoP-Nonce" not in response.headers  # nonces are off unless TESSERA_DPOP_NONCE
    # without a proof, the same client gets a bearer token, as before
    status, body = await answer(await client_credentials(http, client, secret, None))
    assert status == 200 and body["token_type"] == "Bearer" and "cnf" not in claims_of(body["access_token"])


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256", "PS256"])
async def test_every_allowed_algorithm_binds(http: TestClient, new_client: ClientFactory, alg: str) -> None:
    client, secret = await partner(new_client)
    key = DPoPKey(alg)
    status, body = await answer(await client_credentials(http, client, secret, key.proof("POST", TOKEN_URL)))
    assert status == 200, body
    assert claims_of(body["access_token"])["cnf"]["jkt"] == key.jkt


async def test_the_thumbprint_is_rfc_7638s(http: TestClient, new_client: ClientFactory) -> None:
    """Computed here independently of shared.dpop: SHA-256 of the required members, sorted, no spaces."""
    key = DPoPKey("EdDSA")
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": key.jwk["x"]}, separators=(",", ":"))
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    client, secret = await partner(new_client)
    _, body = await answer(await client_credentials(http, client, secret, key.proof("POST", TOKEN_URL)))
    assert claims_of(body["access_token"])["cnf"]["jkt"] == expected


def _refused(body: dict[str, Any], words: str) -> None:
    assert body["error"] == "invalid_dpop_proof", body
    assert words in body["error_description"], body


async def test_a_proof_for_another_url_or_method_is_refused(
    http: TestClient, new_client: ClientFactory
) -> None:
    client, secret = await partner(new_client)
    key = DPoPKey()
    for proof, words in (
        (key.proof("POST", ISSUER + paths.INTROSPECT), "another URL"),
        (key.proof("POST", "http://evil.example" + paths.TOKEN), "another URL"),
        (key.proof("POST", "https://localhost:8000" + paths.TOKEN), "another URL"),
        (key.proof("GET", TOKEN_URL), "another HTTP method"),
        (key.proof("post", TOKEN_URL), "another HTTP method"),
        (key.proof("POST", TOKEN_URL, drop=("htu",)), "htm and htu"),
    ):
        status, body = await answer(await client_credentials(http, client, secret, proof))
        assert status == 400
        _refused(body, words)
    # §4.3: the URL is compared normalised, its query and fragment ignored
    for url in (
        "HTTP://LOCALHOST:8000/oauth2/token",
        TOKEN_URL + "?x=1#f",
        "http://localhost:8000/oauth2/%74oken",
    ):
        status, body = await answer(await client_credentials(http, client, secret, key.proof("POST", url)))
        assert status == 200, (url, body)


async def test_bad_algorithms_and_keys_are_refused(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await partner(new_client)
    key = DPoPKey()
    now = int(time.time())
    payload = {"jti": uuid.uuid4().hex, "htm": "POST", "htu": TOKEN_URL, "iat": now}
    public = key.jwk
    hmac_proof = jwt.encode(
        payload,
        "a shared secret of 32 bytes!!!!!",
        algorithm="HS256",
        headers={"typ": "dpop+jwt", "jwk": public},
    )
    octet = {"kty": "oct", "k": "YSBzaGFyZWQgc2VjcmV0IG9mIDMyIGJ5dGVzISEhISE"}
    p384 = ec.generate_private_key(ec.SECP384R1())
    p384_jwk = {k: v for k, v in json.loads(ECAlgorithm.to_jwk(p384)).items() if k != "d"}
    es384 = jwt.encode(payload, p384, algorithm="ES384", headers={"typ": "dpop+jwt", "jwk": p384_jwk})
    with warnings.catch_warnings():  # PyJWT warns before it signs with a short key: that is the point
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        small_rsa = DPoPKey("RS256", rsa_bits=1024).proof("POST", TOKEN_URL)
    cases = (
        (unsigned({"typ": "dpop+jwt", "alg": "none", "jwk": public}, payload), "alg must be one of"),
        (hmac_proof, "alg must be one of"),
        (
            unsigned({"typ": "dpop+jwt", "alg": "HS256", "jwk": octet}, payload, b"x" * 32),
            "alg must be one of",
        ),
        (es384, "alg must be one of"),
        (key.proof("POST", TOKEN_URL, header={"jwk": key.private_jwk}), "private key material"),
        (DPoPKey("RS256").proof("POST", TOKEN_URL, header={"jwk": key.jwk}), "RSA key"),
        (small_rsa, "at least 2048 bits"),
        (key.proof("POST", TOKEN_URL, header={"jwk": DPoPKey().jwk}), "signature does not verify"),
        (key.proof("POST", TOKEN_URL, header={"typ": "JWT"}), "typ must be dpop+jwt"),
        (key.proof("POST", TOKEN_URL, header={"crit": ["exp"]}), "critical"),
        (key.proof("POST", TOKEN_URL, header={"jwk": None}), "no jwk"),
        (key.proof("POST", TOKEN_URL, drop=("jti",)), "jti"),
        (key.proof("POST", TOKEN_URL, jti="j" * 257), "jti"),
        ("not.a.jwt", "well-formed"),
        ("a.b", "well-formed"),
    )
    for proof, words in cases:
        status, body = await answer(await client_credentials(http, client, secret, proof))
        assert status == 400, (words, body)
        _refused(body, words)


async def test_iat_must_be_within_the_window(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await partner(new_client)
    key = DPoPKey()
    window = registry_of(http).settings.dpop_proof_window
    now = time.time()
    for iat, words in ((now - window - 5, "too old"), (now + window + 5, "from the future")):
        status, body = await answer(
            await client_credentials(http, client, secret, key.proof("POST", TOKEN_URL, iat=iat))
        )
        assert status == 400
        _refused(body, words)
    for iat in (now - window + 5, now + window - 5):
        status, body = await answer(
            await client_credentials(http, client, secret, key.proof("POST", TOKEN_URL, iat=iat))
        )
        assert status == 200, body
    for malformed in ("now", float("nan"), True):
        proof = key.proof("POST", TOKEN_URL, claims={"iat": malformed})
        status, body = await answer(await client_credentials(http, client, secret, proof))
        assert status == 400
        _refused(body, "iat")


async def test_two_dpop_headers_are_refused(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await partner(new_client)
    key = DPoPKey()
    headers = [*basic(client.client_id, secret).items()]
    headers += [("DPoP", key.proof("POST", TOKEN_URL)), ("DPoP", key.proof("POST", TOKEN_URL))]
    status, body = await answer(
        await http.post(paths.TOKEN, data={"grant_type": "client_credentials"}, headers=headers)
    )
    assert status == 400
    _refused(body, "one DPoP header")


async def test_a_client_registered_for_dpop_must_send_a_proof(
    http: TestClient, new_client: ClientFactory
) -> None:
    client, secret = await partner(new_client, dpop_bound_access_tokens=True)
    assert client.dpop_bound_access_tokens and client.registration()["dpop_bound_access_tokens"] is True
    status, body = await answer(await client_credentials(http, client, secret, None))
    assert status == 400
    _refused(body, "dpop_bound_access_tokens")
    status, body = await answer(
        await client_credentials(http, client, secret, DPoPKey().proof("POST", TOKEN_URL))
    )
    assert status == 200 and body["token_type"] == "DPoP"


async def test_a_client_registers_dpop_bound_access_tokens_through_rfc_7591(
    app_with: AppFactory, new_client: ClientFactory
) -> None:
    http = await app_with(registration="open-native")
    response = await http.post(
        paths.REGISTRATION,
        json={
            "client_name": "TV app",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none",
            "dpop_bound_access_tokens": True,
        },
    )
    status, body = await answer(response)
    assert status == 201, body
    assert body["dpop_bound_access_tokens"] is True
    stored = await registry_of(http).clients.load(body["client_id"])
    assert stored is not None and stored.dpop_bound_access_tokens


async def test_a_replayed_proof_is_refused_on_another_replica(
    aiohttp_client: Factory, settings: Settings, new_client: ClientFactory
) -> None:
    one, two = await aiohttp_client(create_app(settings)), await aiohttp_client(create_app(settings))
    client, secret = await partner(new_client)
    proof = DPoPKey().proof("POST", TOKEN_URL)
    status, body = await answer(await client_credentials(one, client, secret, proof))
    assert status == 200, body
    for replica in (two, one):
        status, body = await answer(await client_credentials(replica, client, secret, proof))
        assert status == 400
        _refused(body, "already used")


# --- refresh tokens ------------------------------------------------------------------------------


async def _code_tokens(
    http: TestClient, client: Client, user: User, key: DPoPKey | None, *, secret: str | None = None
) -> dict[str, Any]:
    pkce = Pkce.new()
    code = (await obtain_code(http, authorize_params(client.client_id, pkce=pkce), user.username, PASSWORD))[
        "code"
    ]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    form["code_verifier"] = pkce.verifier
    headers = {} if key is None else {"DPoP": key.proof("POST", TOKEN_URL)}
    if secret is None:
        form["client_id"] = client.client_id
    else:
        headers.update(basic(client.client_id, secret))
    status, body = await answer(await http.post(paths.TOKEN, data=form, headers=headers))
    assert status == 200, body
    return body


async def _refresh(
    http: TestClient, client: Client, token: str, key: DPoPKey | None, *, secret: str | None = None
) -> tuple[int, dict[str, Any]]:
    form = {"grant_type": "refresh_token", "refresh_token": token}
    headers = {} if key is None else {"DPoP": key.proof("POST", TOKEN_URL)}
    if secret is None:
        form["client_id"] = client.client_id
    else:
        headers.update(basic(client.client_id, secret))
    return await answer(await http.post(paths.TOKEN, data=form, headers=headers))


async def test_a_public_clients_refresh_tokens_are_bound_to_its_key(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client(public=True)
    key = DPoPKey()
    first = await _code_tokens(http, client, user, key)
    assert first["token_type"] == "DPoP" and claims_of(first["access_token"])["cnf"]["jkt"] == key.jkt
    # a thief with the refresh token but not the key gets nothing, and changes nothing
    for thief in (DPoPKey(), None):
        status, body = await _refresh(http, client, first["refresh_token"], thief)
        assert status == 400 and body["error"] == "invalid_grant", body
        assert "bound to a DPoP key" in body["error_description"]
    status, second = await _refresh(http, client, first["refresh_token"], key)
    assert status == 200, second
    assert second["token_type"] == "DPoP" and claims_of(second["access_token"])["cnf"]["jkt"] == key.jkt
    # the family stays bound: its next token too
    status, body = await _refresh(http, client, second["refresh_token"], DPoPKey())
    assert status == 400 and body["error"] == "invalid_grant"
    family = await registry_of(http).refresh_tokens.describe(second["refresh_token"])
    assert family is not None and family.grant.dpop_jkt == key.jkt


async def test_a_confidential_clients_refresh_tokens_are_bound_to_its_authentication(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    """§5: a confidential client may change keys at a refresh (its refresh tokens need its credentials)."""
    client, secret = await new_client()
    assert secret
    first = await _code_tokens(http, client, user, DPoPKey(), secret=secret)
    other = DPoPKey()
    status, second = await _refresh(http, client, first["refresh_token"], other, secret=secret)
    assert status == 200, second
    assert claims_of(second["access_token"])["cnf"]["jkt"] == other.jkt
    status, third = await _refresh(http, client, second["refresh_token"], None, secret=secret)
    assert status == 200 and third["token_type"] == "Bearer"


# --- dpop_jkt at the authorization endpoint (§10) ------------------------------------------------


async def test_dpop_jkt_binds_the_code_to_the_key(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client(public=True)
    key = DPoPKey()
    pkce = Pkce.new()
    params = {**authorize_params(client.client_id, pkce=pkce), "dpop_jkt": key.jkt}
    code = (await obtain_code(http, params, user.username, PASSWORD))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": pkce.verifier,
        "client_id": client.client_id,
    }
    # without a proof, or with another key: refused, and the code is left unspent
    for headers in ({}, {"DPoP": DPoPKey().proof("POST", TOKEN_URL)}):
        status, body = await answer(await http.post(paths.TOKEN, data=form, headers=headers))
        assert status == 400 and body["error"] == "invalid_grant", body
        assert "dpop_jkt" in body["error_description"]
    status, body = await answer(
        await http.post(paths.TOKEN, data=form, headers={"DPoP": key.proof("POST", TOKEN_URL)})
    )
    assert status == 200, body
    assert claims_of(body["access_token"])["cnf"]["jkt"] == key.jkt


async def test_a_malformed_dpop_jkt_is_refused(http: TestClient, new_client: ClientFactory) -> None:
    client, _ = await new_client(public=True)
    params = {**authorize_params(client.client_id, pkce=Pkce.new()), "dpop_jkt": "not-a-thumbprint"}
    response = await http.get(paths.AUTHORIZE, params=params, allow_redirects=False)
    assert response.status == 302
    redirected = response.headers["Location"]
    assert redirected.startswith(REDIRECT_URI) and "error=invalid_request" in redirected
    assert "dpop_jkt" in redirected


# --- nonces (§8) ---------------------------------------------------------------------------------


async def test_the_nonce_flow(app_with: AppFactory, new_client: ClientFactory) -> None:
    one = await app_with(dpop_nonce="on")
    two = await app_with(dpop_nonce="on")  # another replica: the nonce is no replica's own
    client, secret = await partner(new_client)
    key = DPoPKey()
    response = await client_credentials(one, client, secret, key.proof("POST", TOKEN_URL))
    status, body = await answer(response)
    assert status == 400 and body["error"] == "use_dpop_nonce", body
    nonce = response.headers["DPoP-Nonce"]
    assert response.headers["Cache-Control"] == "no-store"
    response = await client_credentials(two, client, secret, key.proof("POST", TOKEN_URL, nonce=nonce))
    status, body = await answer(response)
    assert status == 200 and body["token_type"] == "DPoP", body
    assert response.headers["DPoP-Nonce"]  # §8.2: the nonce for the next proof
    for bad in ("made-up", nonce[:-1], ""):
        response = await client_credentials(one, client, secret, key.proof("POST", TOKEN_URL, nonce=bad))
        status, body = await answer(response)
        assert status == 400 and body["error"] == "use_dpop_nonce"
        assert response.headers["DPoP-Nonce"] == nonce
    # a bad proof is reported as one, not as a nonce to fetch
    status, body = await answer(await client_credentials(one, client, secret, key.proof("GET", TOKEN_URL)))
    _refused(body, "another HTTP method")


# --- userinfo: this server's own protected resource ----------------------------------------------


async def test_userinfo_takes_a_bound_token_only_with_its_proof(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client(public=True, scope="openid photos:read")
    key = DPoPKey()
    pkce = Pkce.new()
    params = authorize_params(client.client_id, pkce=pkce, scope="openid")
    code = (await obtain_code(http, params, user.username, PASSWORD))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": pkce.verifier,
        "client_id": client.client_id,
    }
    _, tokens = await answer(
        await http.post(paths.TOKEN, data=form, headers={"DPoP": key.proof("POST", TOKEN_URL)})
    )
    token = tokens["access_token"]
    url = ISSUER + paths.USERINFO
    response = await http.get(paths.USERINFO, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401 and "bound to a DPoP key" in (await response.json())["error_description"]
    response = await http.get(
        paths.USERINFO, headers=dpop_auth(token, DPoPKey().proof("GET", url, access_token=token))
    )
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("DPoP ")
    response = await http.get(paths.USERINFO, headers=dpop_auth(token, key.proof("GET", url)))
    assert response.status == 401 and (await response.json())["error"] == "invalid_dpop_proof"
    response = await http.get(
        paths.USERINFO, headers=dpop_auth(token, key.proof("GET", url, access_token=token))
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["sub"] == user.subject


# --- introspection and metadata ------------------------------------------------------------------


async def test_introspection_reports_the_binding(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await partner(new_client)
    api, api_secret = await new_client(
        grant_types=["client_credentials"], scope="photos:read", allow_introspection=True
    )
    assert api_secret
    key = DPoPKey()
    _, body = await answer(await client_credentials(http, client, secret, key.proof("POST", TOKEN_URL)))
    status, found = await answer(
        await http.post(
            paths.INTROSPECT, data={"token": body["access_token"]}, headers=basic(api.client_id, api_secret)
        )
    )
    assert status == 200 and found["active"] is True
    assert found["token_type"] == "DPoP" and found["cnf"] == {"jkt": key.jkt}
    _, bearer = await answer(await client_credentials(http, client, secret, None))
    _, found = await answer(
        await http.post(
            paths.INTROSPECT, data={"token": bearer["access_token"]}, headers=basic(api.client_id, api_secret)
        )
    )
    assert found["token_type"] == "Bearer" and "cnf" not in found


async def test_metadata_lists_the_dpop_algorithms(http: TestClient) -> None:
    body = await (await http.get(paths.METADATA)).json()
    assert body["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA", "RS256", "PS256"]
    assert body == document(registry_of(http).settings)


# --- the Photo Warehouse (§7) --------------------------------------------------------------------


@pytest.fixture
async def warehouses(
    aiohttp_client: Factory, live_server: LiveServer, database_url: str, backing: Services
) -> AsyncIterator[tuple[TestClient, TestClient]]:
    """Two replicas of the warehouse behind a gateway at :data:`PUBLIC`, sharing Redis."""

    def settings() -> ResourceSettings:
        return ResourceSettings(
            issuer=live_server.url,
            database_url=database_url,
            audience=live_server.settings.access_token_audience,
            resource_url=PUBLIC,
            redis_url=backing.redis_url,
        )

    yield (
        await aiohttp_client(create_resource_app(settings())),
        await aiohttp_client(create_resource_app(settings())),
    )


async def _live_token(live: LiveServer, key: DPoPKey | None, scope: str = "photos:read") -> str:
    """A user's token from the live server, bound to ``key`` (the password grant: no browser needed)."""
    user = await live.registry.users.create(f"u-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))
    client, secret = await live.registry.clients.create(
        name="Photo app",
        redirect_uris=[],
        grant_types=["password"],
        scope=scope.split(),
        auth_method="client_secret_basic",
    )
    assert secret
    headers = basic(client.client_id, secret)
    if key is not None:
        headers["DPoP"] = key.proof("POST", live.url + paths.TOKEN)
    form = {"grant_type": "password", "username": user.username, "password": PASSWORD, "scope": scope}
    async with (
        aiohttp.ClientSession() as session,
        session.post(live.url + paths.TOKEN, data=form, headers=headers) as r,
    ):
        body = await r.json()
    assert r.status == 200, body
    assert body["token_type"] == ("Bearer" if key is None else "DPoP")
    token: str = body["access_token"]
    return token


def challenges(response: aiohttp.ClientResponse) -> dict[str, dict[str, str]]:
    """The ``WWW-Authenticate`` challenges by scheme, with their parameters (values unquoted)."""
    found: dict[str, dict[str, str]] = {}
    header = response.headers["WWW-Authenticate"]
    for match in re.finditer(r'(?:^|,\s*)(Bearer|DPoP)\b((?:\s*,?\s*[a-z_]+="(?:[^"\\]|\\.)*")*)', header):
        found[match.group(1)] = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', match.group(2)))
    return found


def dpop_auth(token: str, proof: str) -> dict[str, str]:
    return {"Authorization": f"DPoP {token}", "DPoP": proof}


async def test_a_bound_token_with_its_proof_is_accepted(
    warehouses: tuple[TestClient, TestClient], live_server: LiveServer
) -> None:
    one, _ = warehouses
    key = DPoPKey()
    token = await _live_token(live_server, key)
    response = await one.get(
        "/api/photos", headers=dpop_auth(token, key.proof("GET", PHOTOS, access_token=token))
    )
    assert response.status == 200, await response.text()
    # each request its own proof; the token is cached, the proof never is
    response = await one.get(
        "/api/photos", headers=dpop_auth(token, key.proof("GET", PHOTOS, access_token=token))
    )
    assert response.status == 200


async def test_a_bound_token_used_as_bearer_is_refused(
    warehouses: tuple[TestClient, TestClient], live_server: LiveServer
) -> None:
    one, _ = warehouses
    key = DPoPKey()
    token = await _live_token(live_server, key)
    for headers in (
        {"Authorization": f"Bearer {token}"},
        {"Authorization": f"Bearer {token}", "DPoP": key.proof("GET", PHOTOS, access_token=token)},
    ):
        response = await one.get("/api/photos", headers=headers)
        assert response.status == 401
        found = challenges(response)
        assert found["Bearer"]["error"] == "invalid_token"
        assert "bound to a DPoP key" in found["Bearer"]["error_description"]
        assert found["Bearer"]["resource_metadata"].startswith("https://photos.example.test/")
        assert found["DPoP"] == {"algs": "ES256 EdDSA RS256 PS256"}  # §7.2: how to do it instead


async def test_a_401_offers_both_schemes(warehouses: tuple[TestClient, TestClient]) -> None:
    response = await warehouses[0].get("/api/photos")
    assert response.status == 401
    found = challenges(response)
    # no token at all: no error code in either challenge (RFC 6750 §3.1), the scope needed named
    assert "error" not in found["Bearer"] and found["Bearer"]["scope"] == "photos:read"
    assert found["DPoP"]["algs"] == "ES256 EdDSA RS256 PS256"


async def test_a_replayed_proof_is_refused_by_another_warehouse_replica(
    warehouses: tuple[TestClient, TestClient], live_server: LiveServer
) -> None:
    one, two = warehouses
    key = DPoPKey()
    token = await _live_token(live_server, key)
    headers = dpop_auth(token, key.proof("GET", PHOTOS, access_token=token))
    assert (await one.get("/api/photos", headers=headers)).status == 200
    for replica in (two, one):
        response = await replica.get("/api/photos", headers=headers)
        assert response.status == 401
        found = challenges(response)["DPoP"]
        assert found["error"] == "invalid_dpop_proof" and "already used" in found["error_description"]
        assert found["algs"] == "ES256 EdDSA RS256 PS256"
        assert (await response.json())["error"] == "invalid_dpop_proof"


async def test_the_warehouse_checks_every_part_of_the_proof(
    warehouses: tuple[TestClient, TestClient], live_server: LiveServer
) -> None:
    one, _ = warehouses
    key = DPoPKey()
    token = await _live_token(live_server, key)
    other_token = await _live_token(live_server, key)
    cases: list[tuple[dict[str, str], str, str]] = [
        (dpop_auth(token, key.proof("GET", PHOTOS, access_token=other_token)), "invalid_dpop_proof", "ath"),
        (dpop_auth(token, key.proof("GET", PHOTOS)), "invalid_dpop_proof", "ath"),
        (dpop_auth(token, key.proof("POST", PHOTOS, access_token=token)), "invalid_dpop_proof", "method"),
        # the URL the warehouse is reached at here is not the one clients call through the gateway
        (
            dpop_auth(token, key.proof("GET", str(one.make_url("/api/photos")), access_token=token)),
            "invalid_dpop_proof",
            "URL",
        ),
        (dpop_auth(token, key.proof("GET", PUBLIC + "/me", access_token=token)), "invalid_dpop_proof", "URL"),
        (
            dpop_auth(token, key.proof("GET", PHOTOS, access_token=token, iat=time.time() - 300)),
            "invalid_dpop_proof",
            "too old",
        ),
        (
            dpop_auth(token, DPoPKey().proof("GET", PHOTOS, access_token=token)),
            "invalid_token",
            "another DPoP key",
        ),
        ({"Authorization": f"DPoP {token}"}, "invalid_dpop_proof", "exactly one DPoP header"),
        (dpop_auth(token, "garbage"), "invalid_dpop_proof", "well-formed"),
    ]
    for headers, error, words in cases:
        response = await one.get("/api/photos", headers=headers)
        assert response.status == 401, (words, await response.text())
        found = challenges(response)
        assert set(found) == {"DPoP"}, found  # the error is in the challenge of the scheme used
        assert found["DPoP"]["error"] == error and words in found["DPoP"]["error_description"], found
    # the query is no part of htu
    response = await one.get(
        "/api/photos?limit=5", headers=dpop_auth(token, key.proof("GET", PHOTOS, access_token=token))
    )
    assert response.status == 200


async def test_a_bearer_token_is_not_accepted_with_the_dpop_scheme(
    warehouses: tuple[TestClient, TestClient], live_server: LiveServer
) -> None:
    one, _ = warehouses
    token = await _live_token(live_server, None)
    assert (await one.get("/api/photos", headers={"Authorization": f"Bearer {token}"})).status == 200
    key = DPoPKey()
    response = await one.get(
        "/api/photos", headers=dpop_auth(token, key.proof("GET", PHOTOS, access_token=token))
    )
    assert response.status == 401
    found = challenges(response)["DPoP"]
    assert found["error"] == "invalid_token" and "not bound to a DPoP key" in found["error_description"]


async def test_a_missing_scope_with_dpop_is_a_dpop_challenge(
    warehouses: tuple[TestClient, TestClient], live_server: LiveServer
) -> None:
    one, _ = warehouses
    key = DPoPKey()
    token = await _live_token(live_server, key, scope="photos:read")
    url = PUBLIC + "/photos/00000000-0000-0000-0000-000000000000"
    response = await one.delete(
        "/api/photos/00000000-0000-0000-0000-000000000000",
        headers=dpop_auth(token, key.proof("DELETE", url, access_token=token)),
    )
    assert response.status == 403
    found = challenges(response)
    assert set(found) == {"DPoP"}
    assert found["DPoP"]["error"] == "insufficient_scope" and found["DPoP"]["scope"] == "photos:write"


async def test_the_warehouse_never_takes_htu_from_the_host_header(
    warehouses: tuple[TestClient, TestClient], live_server: LiveServer
) -> None:
    """htu is the warehouse's configured public URL: a Host header names nothing (a proof for
    another server with the Host to match is refused) and a malformed one is no 500."""
    one, _ = warehouses
    key = DPoPKey()
    token = await _live_token(live_server, key)
    other = "http://partner-api.internal/api/photos"
    headers = {
        **dpop_auth(token, key.proof("GET", other, access_token=token)),
        "Host": "partner-api.internal",
    }
    response = await one.get("/api/photos", headers=headers)
    assert response.status == 401 and "another URL" in challenges(response)["DPoP"]["error_description"]
    headers = {**dpop_auth(token, key.proof("GET", PHOTOS, access_token=token)), "Host": "x:notaport"}
    assert (await one.get("/api/photos", headers=headers)).status == 200


async def test_a_warehouse_with_no_public_url_refuses_dpop(
    live_server: LiveServer, database_url: str, aiohttp_client: Factory
) -> None:
    """Without TESSERA_RESOURCE_URL (and an issuer off localhost) the warehouse has no URL for
    proofs to name: DPoP requests get a clear 401, never an htu made from the Host header."""
    settings = ResourceSettings(
        issuer=live_server.url, database_url=database_url, audience=live_server.settings.access_token_audience
    )
    app = create_resource_app(settings)
    app.pop(PUBLIC_ORIGIN, None)  # what a warehouse publishing no metadata has (an issuer off localhost)
    warehouse = await aiohttp_client(app)
    key = DPoPKey()
    token = await _live_token(live_server, key)
    for host in ("partner-api.internal", "x:notaport"):
        url = f"http://{host}/api/photos"
        headers = {**dpop_auth(token, key.proof("GET", url, access_token=token)), "Host": host}
        response = await warehouse.get("/api/photos", headers=headers)
        assert response.status == 401, await response.text()
        found = challenges(response)["DPoP"]
        assert (
            found["error"] == "invalid_dpop_proof"
            and "no configured public URL" in found["error_description"]
        )
