"""The FAPI 2.0 Security Profile for one client (``tessera_profile: "fapi2"``, ``tessera client
create|update --profile fapi2``; rules in ``auth_server/profiles.py``), with real PostgreSQL and
Redis: a confidential ``private_key_jwt`` client whose every authorization request is pushed (RFC
9126), with PKCE S256, whose tokens are all DPoP-bound (RFC 9449), whose codes live 60 s at most,
and whose refresh tokens do not rotate."""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from redis.asyncio import Redis

from auth_server import cli, paths
from auth_server.clients import Client
from auth_server.crypto import hash_password, hexdigest
from auth_server.registration import ClientMetadata, RegistrationError, register
from auth_server.registry import Registry
from auth_server.stores.users import User
from shared.cli import CommandError
from shared.redis import Keys
from tests.integration.test_dynamic_registration import REGISTER, bearer, initial_token
from tests.integration.test_private_key_jwt import JWT_BEARER, Key, claims, new_key
from tests.support.dpop import DPoPKey
from tests.support.flow import REDIRECT_URI, Pkce, authorize_params, basic, obtain_code, query_of
from tests.support.servers import PASSWORD, TEST_KEK, AppFactory, ClientFactory, registry_of
from tests.support.services import Services

ISSUER = "http://localhost:8000"  # the issuer of the test servers (tests.support.servers)
PAR_URL = ISSUER + paths.PUSHED_AUTHORIZATION_REQUEST
TOKEN_URL = ISSUER + paths.TOKEN


# --- a FAPI 2.0 client, as it would talk to Tessera ----------------------------------------------


async def fapi_client(
    registry: Registry, *, key: Key | None = None, grant_types: tuple[str, ...] = (), **metadata: Any
) -> tuple[Client, Key]:
    """A client registered under the profile, with an ES256 key of its own (``private_key_jwt``),
    for the code grant and refresh tokens unless ``grant_types`` says otherwise."""
    key = key or new_key("ES256")
    grant_types = grant_types or ("authorization_code", "refresh_token")
    metadata.setdefault("jwks", {"keys": [key.jwk]})
    client, secret, _ = await register(
        registry,
        ClientMetadata(
            client_name="Alder Bank App",
            redirect_uris=[REDIRECT_URI] if "authorization_code" in grant_types else [],
            grant_types=grant_types,
            scope=["photos:read"],
            token_endpoint_auth_method="private_key_jwt",
            tessera_profile="fapi2",
            **metadata,
        ),
    )
    assert secret is None
    return client, key


def authenticated(client: Client, key: Key, **form: str) -> dict[str, str]:
    """``form`` with a fresh client assertion (aud: the issuer, as a string)."""
    assertion = key.sign(claims(client.client_id))
    return {**form, "client_assertion_type": JWT_BEARER, "client_assertion": assertion}


def proof(dpop: DPoPKey | None, url: str) -> dict[str, str]:
    return {} if dpop is None else {"DPoP": dpop.proof("POST", url)}


async def push(
    http: TestClient, client: Client, key: Key, params: dict[str, str], dpop: DPoPKey | None = None
) -> ClientResponse:
    """A pushed authorization request, the client authenticated with ``private_key_jwt``."""
    return await http.post(
        paths.PUSHED_AUTHORIZATION_REQUEST,
        data=authenticated(client, key, **params),
        headers=proof(dpop, PAR_URL),
    )


async def refused(response: ClientResponse, error: str, words: str = "") -> dict[str, Any]:
    body: dict[str, Any] = await response.json()
    assert (response.status, body["error"]) == ({"invalid_client": 401}.get(error, 400), error), body
    assert words in body.get("error_description", ""), body
    assert "access_token" not in body
    return body


async def code_for(
    http: TestClient, client: Client, key: Key, user: User, dpop: DPoPKey | None = None
) -> tuple[dict[str, str], Pkce]:
    """Push the request (with a DPoP proof: the code is then bound to its key), then sign in and
    allow it as the user would: the redirect's query, and the PKCE pair."""
    pkce = Pkce.new()
    pushed = await push(http, client, key, authorize_params(client.client_id, pkce=pkce), dpop)
    assert pushed.status == 201, await pushed.text()
    request_uri = (await pushed.json())["request_uri"]
    redirect = await obtain_code(
        http, {"client_id": client.client_id, "request_uri": request_uri}, user.username, PASSWORD
    )
    return redirect, pkce


async def redeem(
    http: TestClient, client: Client, key: Key, code: str, pkce: Pkce, dpop: DPoPKey | None
) -> ClientResponse:
    form = authenticated(
        client,
        key,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI,
        code_verifier=pkce.verifier,
    )
    return await http.post(paths.TOKEN, data=form, headers=proof(dpop, TOKEN_URL))


async def refresh(
    http: TestClient, client: Client, key: Key, token: str, dpop: DPoPKey | None
) -> ClientResponse:
    form = authenticated(client, key, grant_type="refresh_token", refresh_token=token)
    return await http.post(paths.TOKEN, data=form, headers=proof(dpop, TOKEN_URL))


@pytest.fixture
async def redis(backing: Services) -> AsyncIterator[Redis]:
    client = Redis.from_url(backing.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def code_ttl(redis: Redis, registry: Registry, code: str) -> int:
    """How many milliseconds Redis still keeps ``code`` (``stores/codes.py`` keeps its SHA-256)."""
    ttl: int = await redis.pttl(Keys(registry.settings.redis_prefix)("code", hexdigest(code)))
    return ttl


async def older(redis: Redis, registry: Registry, code: str, seconds: int) -> None:
    """Age ``code`` by ``seconds`` on Redis's own clock: its remaining lifetime that much shorter
    (an expiry at or below zero deletes it, as the time passing would)."""
    key = Keys(registry.settings.redis_prefix)("code", hexdigest(code))
    await redis.pexpire(key, await redis.pttl(key) - seconds * 1000)


# --- registration ---------------------------------------------------------------------------------


async def test_registration_fills_in_what_the_profile_implies(registry: Registry) -> None:
    client, _ = await fapi_client(registry)
    stored = await registry.clients.load(client.client_id)
    assert stored is not None and stored.tessera_profile == "fapi2"
    assert stored.require_pushed_authorization_requests and stored.dpop_bound_access_tokens
    assert stored.require_pkce and not stored.is_public
    assert stored.response_types == ("code",)  # not "code id_token": no hybrid, no front-channel ID token
    assert stored.id_token_signed_response_alg == "ES256"  # RS256, the default, is not an algorithm of §5.4
    shown = stored.registration()
    assert shown["tessera_profile"] == "fapi2" and shown["response_types"] == ["code"]
    assert (
        shown["require_pushed_authorization_requests"] is True and shown["dpop_bound_access_tokens"] is True
    )


def _short_rsa_jwk() -> dict[str, Any]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
    return {**RSAAlgorithm.to_jwk(private.public_key(), as_dict=True), "kid": "short", "alg": "PS256"}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        (
            {"token_endpoint_auth_method": "none", "jwks": None},
            "confidential and authenticates with private_key_jwt",
        ),
        ({"token_endpoint_auth_method": "client_secret_basic", "jwks": None}, "not a secret"),
        ({"grant_types": ["authorization_code", "password"]}, "password grant"),
        (
            {"grant_types": ["authorization_code", "implicit"], "response_types": ["code", "token"]},
            "implicit grant",
        ),
        ({"require_pkce": False}, "PKCE with S256"),
        ({"userinfo_signed_response_alg": "RS256"}, "userinfo_signed_response_alg"),
        ({"jwks": {"keys": [_short_rsa_jwk()]}}, "at least 2048 bits"),
        ({"tessera_profile": "fapi1"}, "must be one of fapi2"),
    ],
)
async def test_registration_is_refused_what_the_profile_forbids(
    registry: Registry, changes: dict[str, Any], words: str
) -> None:
    key = new_key("ES256")
    metadata: dict[str, Any] = {
        "client_name": "Alder Bank App",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": ["photos:read"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.jwk]},
        "tessera_profile": "fapi2",
        **changes,
    }
    with pytest.raises(RegistrationError, match=words):
        await register(registry, ClientMetadata(**metadata))


async def test_a_client_registering_itself_may_ask_for_the_profile(
    http: TestClient, registry: Registry
) -> None:
    """RFC 7591: the profile only tightens what a client gets, so a client may ask for it; a public
    one is refused it, and an update (RFC 7592) may not drop it."""
    token = await initial_token(registry, auto_approve=True)
    document = {
        "client_name": "Alder Bank App",
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [new_key("ES256").jwk]},
        "scope": "photos:read",
        "tessera_profile": "fapi2",
    }
    response = await http.post(REGISTER, json=document, headers=bearer(token))
    body = await response.json()
    assert response.status == 201, body
    assert body["tessera_profile"] == "fapi2" and body["response_types"] == ["code"]
    assert body["require_pushed_authorization_requests"] is True and body["dpop_bound_access_tokens"] is True

    # the same document again (a read-modify-write client) is fine; leaving the profile out is not
    manage, uri = bearer(body["registration_access_token"]), urlsplit(body["registration_client_uri"]).path
    again = {**document, "client_name": "Alder Bank", "id_token_signed_response_alg": "ES256"}
    updated = await http.put(uri, json=again, headers=manage)
    assert updated.status == 200, await updated.text()
    manage = bearer((await updated.json())["registration_access_token"])
    dropped = {name: value for name, value in again.items() if name != "tessera_profile"}
    dropping = await http.put(uri, json=dropped, headers=manage)
    assert dropping.status == 400 and "tessera_profile" in (await dropping.json())["error_description"]

    public = {**document, "token_endpoint_auth_method": "none", "jwks": None}
    token = await initial_token(registry, auto_approve=True)
    response = await http.post(REGISTER, json=public, headers=bearer(token))
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_client_metadata"


# --- the flow ------------------------------------------------------------------------------------


async def test_par_private_key_jwt_pkce_and_dpop_end_to_end(
    http: TestClient, registry: Registry, user: User, redis: Redis
) -> None:
    client, key = await fapi_client(registry)
    dpop = DPoPKey("ES256")
    redirect, pkce = await code_for(http, client, key, user, dpop)
    assert redirect["iss"] == ISSUER and redirect["state"] == "state-123"  # RFC 9207
    assert set(redirect) == {"code", "state", "iss"}  # nothing else in the front channel
    assert 0 < await code_ttl(redis, registry, redirect["code"]) <= 60_000

    response = await redeem(http, client, key, redirect["code"], pkce, dpop)
    tokens = await response.json()
    assert response.status == 200, tokens
    assert tokens["token_type"] == "DPoP"
    access = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert access["cnf"] == {"jkt": dpop.jkt} and access["client_id"] == client.client_id
    assert jwt.get_unverified_header(tokens["access_token"])["alg"] == "ES256"  # §5.4

    # a refresh: DPoP again, and the new access token bound to the proof's key
    refreshed = await refresh(http, client, key, tokens["refresh_token"], dpop)
    body = await refreshed.json()
    assert refreshed.status == 200, body
    assert body["token_type"] == "DPoP"
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["cnf"] == {"jkt": dpop.jkt}


async def test_authorize_without_par_is_refused(http: TestClient, registry: Registry) -> None:
    client, _ = await fapi_client(registry)
    params = authorize_params(client.client_id, pkce=Pkce.new())
    response = await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
    assert response.status == 302
    answer = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(REDIRECT_URI)
    assert answer["error"] == "invalid_request" and "push" in answer["error_description"]
    assert answer["iss"] == ISSUER and answer["state"] == "state-123"
    assert "code" not in answer


async def test_a_push_must_be_authenticated_name_its_redirect_uri_and_use_pkce_in_the_query(
    http: TestClient, registry: Registry
) -> None:
    client, key = await fapi_client(registry)
    params = authorize_params(client.client_id, pkce=Pkce.new())
    # without client authentication (as if it were public): refused
    bare = await http.post(paths.PUSHED_AUTHORIZATION_REQUEST, data=params)
    await refused(bare, "invalid_client")
    # a client with only one redirect URI may leave it out elsewhere; not under the profile
    without = {name: value for name, value in params.items() if name != "redirect_uri"}
    await refused(await push(http, client, key, without), "invalid_request", "redirect_uri")
    await refused(
        await push(http, client, key, {**params, "response_mode": "fragment"}), "invalid_request", "query"
    )
    await refused(
        await push(http, client, key, {**params, "response_mode": "form_post"}), "invalid_request", "query"
    )
    no_pkce = authorize_params(client.client_id)
    await refused(await push(http, client, key, no_pkce), "invalid_request", "PKCE")
    assert (await push(http, client, key, params)).status == 201


async def test_implicit_and_hybrid_are_refused(http: TestClient, registry: Registry) -> None:
    client, key = await fapi_client(registry)
    for response_type, error in (
        ("token", "unsupported_response_type"),
        ("code id_token", "unauthorized_client"),
    ):
        params = authorize_params(client.client_id, pkce=Pkce.new(), response_type=response_type)
        await refused(
            await push(http, client, key, {**params, "nonce": "n-1", "scope": "photos:read"}), error
        )


async def test_a_token_request_without_dpop_is_refused(
    http: TestClient, registry: Registry, user: User
) -> None:
    client, key = await fapi_client(registry)
    redirect, pkce = await code_for(http, client, key, user)  # pushed without a proof: the code is unbound
    await refused(await redeem(http, client, key, redirect["code"], pkce, None), "invalid_dpop_proof")
    # refused before the grant ran: the code is still good, with a proof
    response = await redeem(http, client, key, redirect["code"], pkce, DPoPKey("EdDSA"))
    assert response.status == 200, await response.text()
    assert (await response.json())["token_type"] == "DPoP"


async def test_every_grant_needs_dpop_and_the_algorithms_of_section_5_4(
    http: TestClient, registry: Registry
) -> None:
    """client_credentials too: only sender-constrained tokens (§5.3.2.1), JWTs of PS256, ES256 or
    EdDSA (§5.4) — no RS256 proof, no RS256 assertion, though Tessera takes both from others."""
    rsa_key = new_key("RS256")
    client, key = await fapi_client(registry, grant_types=("client_credentials",))
    form = {"grant_type": "client_credentials", "scope": "photos:read"}
    await refused(await http.post(paths.TOKEN, data=authenticated(client, key, **form)), "invalid_dpop_proof")
    rs256 = DPoPKey("RS256")
    response = await http.post(
        paths.TOKEN, data=authenticated(client, key, **form), headers=proof(rs256, TOKEN_URL)
    )
    await refused(response, "invalid_dpop_proof", "PS256, ES256, EdDSA")
    for alg in ("PS256", "ES256", "EdDSA"):
        response = await http.post(
            paths.TOKEN, data=authenticated(client, key, **form), headers=proof(DPoPKey(alg), TOKEN_URL)
        )
        assert response.status == 200, await response.text()

    both, _ = await fapi_client(
        registry, key=key, grant_types=("client_credentials",), jwks={"keys": [key.jwk, rsa_key.jwk]}
    )
    response = await http.post(
        paths.TOKEN, data=authenticated(both, rsa_key, **form), headers=proof(DPoPKey(), TOKEN_URL)
    )
    await refused(response, "invalid_client")


async def test_only_the_issuer_is_an_assertion_audience_whatever_the_compat_setting(
    app_with: AppFactory,
) -> None:
    http = await app_with(assertion_audience_compat="on")
    registry = registry_of(http)
    client, key = await fapi_client(registry, grant_types=("client_credentials",))
    form = {"grant_type": "client_credentials", "scope": "photos:read"}
    for aud, status in ((TOKEN_URL, 401), (ISSUER, 200)):
        data = {
            **form,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": key.sign(claims(client.client_id, aud=aud)),
        }
        response = await http.post(paths.TOKEN, data=data, headers=proof(DPoPKey(), TOKEN_URL))
        assert response.status == status, await response.text()


async def test_the_profile_holds_whatever_the_settings_it_implies_say(
    http: TestClient, registry: Registry
) -> None:
    """The flows read the profile, not only the settings it turned on: with those turned off behind
    the command's back (the store alone), PAR and DPoP are still required."""
    client, _ = await fapi_client(registry)
    changed = await registry.clients.update(
        client.client_id, require_pushed_authorization_requests=False, dpop_bound_access_tokens=False
    )
    assert changed is not None and not changed.dpop_bound_access_tokens
    assert changed.tessera_profile == "fapi2" and not changed.require_pushed_authorization_requests
    params = authorize_params(client.client_id, pkce=Pkce.new())
    response = await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
    assert query_of(response.headers["Location"])["error"] == "invalid_request"
    partner, partner_key = await fapi_client(registry, grant_types=("client_credentials",))
    await registry.clients.update(partner.client_id, dpop_bound_access_tokens=False)
    form = authenticated(partner, partner_key, grant_type="client_credentials", scope="photos:read")
    await refused(await http.post(paths.TOKEN, data=form), "invalid_dpop_proof")


async def test_a_code_lives_60_seconds_at_most(
    http: TestClient, registry: Registry, user: User, new_client: ClientFactory, redis: Redis
) -> None:
    """TESSERA_CODE_TTL is 600 s here: other clients' codes live that long, this one's 60 s. Aged
    by 60 s (on Redis's clock), its code is gone; another client's code of the same age still works."""
    assert registry.settings.code_ttl == 600
    client, key = await fapi_client(registry)
    dpop = DPoPKey()
    redirect, pkce = await code_for(http, client, key, user, dpop)
    assert 55_000 < await code_ttl(redis, registry, redirect["code"]) <= 60_000
    await older(redis, registry, redirect["code"], 60)
    await refused(await redeem(http, client, key, redirect["code"], pkce, dpop), "invalid_grant", "expired")

    other, secret = await new_client(require_pkce=True)
    assert secret is not None
    other_pkce = Pkce.new()
    answer = await obtain_code(
        http, authorize_params(other.client_id, pkce=other_pkce), user.username, PASSWORD
    )
    assert await code_ttl(redis, registry, answer["code"]) > 590_000
    await older(redis, registry, answer["code"], 60)
    form = {
        "grant_type": "authorization_code",
        "code": answer["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": other_pkce.verifier,
    }
    response = await http.post(paths.TOKEN, data=form, headers=basic(other.client_id, secret))
    assert response.status == 200, await response.text()


async def test_a_fapi_clients_refresh_token_does_not_rotate(app_with: AppFactory) -> None:
    """FAPI 2.0 §5.3.2.1 item 9: no rotation (its refresh tokens are bound to its private_key_jwt
    authentication and DPoP key): the same token answers again and again, and each new access token
    is revoked with the family. Another client's tokens still rotate (here with a grace period)."""
    http = await app_with(refresh_grace_period=30)
    registry = registry_of(http)
    user = await registry.users.create(f"user-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))

    other, secret, _ = await register(
        registry,
        ClientMetadata(
            client_name="Photo Printer",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            scope=["photos:read"],
        ),
    )
    assert secret is not None
    pkce = Pkce.new()
    answer = await obtain_code(http, authorize_params(other.client_id, pkce=pkce), user.username, PASSWORD)
    form = {"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": REDIRECT_URI}
    issued = await http.post(
        paths.TOKEN, data={**form, "code_verifier": pkce.verifier}, headers=basic(other.client_id, secret)
    )
    first = (await issued.json())["refresh_token"]
    for _ in range(2):  # the first rotation, then its retry within the grace period
        again = await http.post(
            paths.TOKEN,
            data={"grant_type": "refresh_token", "refresh_token": first},
            headers=basic(other.client_id, secret),
        )
        assert again.status == 200, await again.text()

    assert (await again.json())["refresh_token"] != first  # it rotated

    client, key = await fapi_client(registry)
    dpop = DPoPKey()
    redirect, pkce = await code_for(http, client, key, user, dpop)
    tokens = await (await redeem(http, client, key, redirect["code"], pkce, dpop)).json()
    accesses = []
    for _ in range(3):
        refreshed = await refresh(http, client, key, tokens["refresh_token"], dpop)
        body = await refreshed.json()
        assert refreshed.status == 200, body
        assert body["refresh_token"] == tokens["refresh_token"]  # the same token, still good
        accesses.append(body["access_token"])
    # revoking the refresh token revokes the family, and every access token issued from it
    revoked = await http.post(paths.REVOKE, data=authenticated(client, key, token=tokens["refresh_token"]))
    assert revoked.status == 200, await revoked.text()
    await refused(await refresh(http, client, key, tokens["refresh_token"], dpop), "invalid_grant")
    for access in accesses:
        claims = await registry.access_tokens.verify(access, audience=None)
        assert claims is not None
        assert await registry.revoked_tokens.is_revoked(claims["jti"], claims.get("grant_id"))


# --- the operator's command ----------------------------------------------------------------------


@pytest.fixture
def tessera_env(
    monkeypatch: pytest.MonkeyPatch, registry: Registry, database_url: str, backing: Services
) -> None:
    """The environment ``tessera`` reads: this test run's database, Redis and prefix."""
    for name, value in {
        "TESSERA_ISSUER": ISSUER,
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_REDIS_URL": backing.redis_url,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_REDIS_PREFIX": registry.settings.redis_prefix,
    }.items():
        monkeypatch.setenv(name, value)


async def tessera(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    """Run a ``tessera`` command in this process (as ``shared.cli`` would); what it printed, as JSON."""
    args: argparse.Namespace = cli.parser().parse_args(argv)
    capsys.readouterr()
    await args.run(args)
    printed: dict[str, Any] = json.loads(capsys.readouterr().out)
    return printed


@pytest.mark.usefixtures("tessera_env")
async def test_tessera_client_create_and_update_with_the_profile(
    registry: Registry, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [new_key("ES256").jwk]}))
    created = await tessera(
        capsys,
        *("client", "create", "--name", "Alder Bank App", "--redirect-uri", REDIRECT_URI),
        *("--scope", "photos:read", "--jwks-file", str(jwks), "--profile", "fapi2", "--json"),
    )
    assert (
        created["tessera_profile"] == "fapi2" and created["token_endpoint_auth_method"] == "private_key_jwt"
    )
    assert (
        created["require_pushed_authorization_requests"] is True
        and created["dpop_bound_access_tokens"] is True
    )
    assert created["response_types"] == ["code"] and "client_secret" not in created
    client_id = created["client_id"]
    with pytest.raises(CommandError, match="requires dpop_bound_access_tokens"):
        await tessera(capsys, "client", "update", client_id, "--dpop-bound-access-tokens", "no")
    with pytest.raises(CommandError, match="requires require_pkce"):
        await tessera(capsys, "client", "update", client_id, "--pkce", "optional")
    out = await tessera(capsys, "client", "update", client_id, "--profile", "none")
    assert "tessera_profile" not in out and out["dpop_bound_access_tokens"] is True  # what it turned on stays
    out = await tessera(
        capsys, "client", "update", client_id, "--dpop-bound-access-tokens", "no", "--require-par", "no"
    )
    assert "dpop_bound_access_tokens" not in out and "require_pushed_authorization_requests" not in out
    out = await tessera(capsys, "client", "update", client_id, "--profile", "fapi2")
    assert out["tessera_profile"] == "fapi2" and out["dpop_bound_access_tokens"] is True
    assert out["require_pushed_authorization_requests"] is True

    # a client registered with a secret cannot be put under it; its other settings stay as they were
    secret_client = await tessera(
        capsys,
        "client",
        "create",
        "--name",
        "Printer",
        "--redirect-uri",
        REDIRECT_URI,
        "--scope",
        "photos:read",
        "--json",
    )
    with pytest.raises(CommandError, match="confidential and authenticates with private_key_jwt"):
        await tessera(capsys, "client", "update", secret_client["client_id"], "--profile", "fapi2")
    stored = await registry.clients.load(secret_client["client_id"])
    assert stored is not None and stored.tessera_profile is None and not stored.dpop_bound_access_tokens
    with pytest.raises(CommandError, match="PKCE"):
        await tessera(
            capsys,
            *("client", "create", "--name", "Bank", "--redirect-uri", REDIRECT_URI, "--scope", "photos:read"),
            *("--jwks-file", str(jwks), "--profile", "fapi2", "--pkce-optional"),
        )


@pytest.mark.usefixtures("tessera_env")
async def test_tessera_client_dpop_bound_access_tokens(
    http: TestClient, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--dpop-bound-access-tokens`` (RFC 9449 §5.2) at create, ``yes|no`` at update."""
    created = await tessera(
        capsys,
        *("client", "create", "--name", "Partner", "--grant-type", "client_credentials"),
        *("--scope", "photos:read", "--dpop-bound-access-tokens", "--json"),
    )
    assert created["dpop_bound_access_tokens"] is True
    client_id, secret = created["client_id"], created["client_secret"]
    form = {"grant_type": "client_credentials", "scope": "photos:read"}
    await refused(
        await http.post(paths.TOKEN, data=form, headers=basic(client_id, secret)), "invalid_dpop_proof"
    )
    out = await tessera(capsys, "client", "update", client_id, "--dpop-bound-access-tokens", "no")
    assert "dpop_bound_access_tokens" not in out
    # every replica hears of the change on Redis; this one is told at once, not raced
    registry.clients.evict(client_id)
    response = await http.post(paths.TOKEN, data=form, headers=basic(client_id, secret))
    assert response.status == 200 and (await response.json())["token_type"] == "Bearer"
    out = await tessera(capsys, "client", "update", client_id, "--dpop-bound-access-tokens", "yes")
    assert out["dpop_bound_access_tokens"] is True
    registry.clients.evict(client_id)
    await refused(
        await http.post(paths.TOKEN, data=form, headers=basic(client_id, secret)), "invalid_dpop_proof"
    )
