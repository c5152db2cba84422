"""private_key_jwt client authentication (RFC 7523 §2.2, §3; OpenID Connect Core §9).

A client proves itself with a short-lived JWT signed by a key it registered (inline JWKS or a
``jwks_uri``): ``iss`` = ``sub`` = its client_id, an ``aud`` naming this server, ``exp`` soon, a
``jti`` used once, and an asymmetric algorithm only. Every failure is ``invalid_client`` (401).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

import auth_server.client_keys
from auth_server import registration
from auth_server.app import create_app
from auth_server.clients import Client
from auth_server.registration import RegistrationError, validate_registration
from auth_server.registry import Registry
from tests.support.flow import basic
from tests.support.servers import make_settings
from tests.support.services import Services

ISSUER = "http://localhost:8000"
TOKEN_URL = f"{ISSUER}/oauth2/token"
REVOKE_URL = f"{ISSUER}/oauth2/revoke"
INTROSPECT_URL = f"{ISSUER}/oauth2/introspect"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SCOPE = "warehouse:stats"
KNOWN_SCOPES = {"photos:read", "photos:write", "warehouse:stats"}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class _Drop:
    """Marks a claim to leave out of an assertion."""


DROP = _Drop()


# ---------------------------------------------------------------------------------------------
# keys, assertions, clients
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    alg: str
    kid: str
    private: PrivateKey
    jwk: dict[str, Any]  # the public JWK, as registered

    def sign(self, claims: dict[str, Any], *, kid: str | _Drop | None = None) -> str:
        header_kid = self.kid if kid is None else kid
        headers = {} if isinstance(header_kid, _Drop) else {"kid": header_kid}
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=headers)

    def private_jwk(self) -> dict[str, Any]:
        """The private JWK (with ``d``): what must never be registered or used."""
        private = self.private
        if isinstance(private, ec.EllipticCurvePrivateKey):
            jwk = ECAlgorithm.to_jwk(private, as_dict=True)
        elif isinstance(private, rsa.RSAPrivateKey):
            jwk = RSAAlgorithm.to_jwk(private, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(private, as_dict=True)
        jwk.update(kid=self.kid, alg=self.alg)
        assert "d" in jwk
        return jwk

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def new_key(alg: str = "ES256", kid: str | None = None) -> Key:
    kid = kid or f"key-{secrets.token_hex(4)}"
    private: PrivateKey
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif alg in ("RS256", "PS256"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
        jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        raise AssertionError(f"no key type for {alg}")
    jwk.update(kid=kid, alg=alg, use="sig")
    assert "d" not in jwk
    return Key(alg, kid, private, jwk)


def claims(
    client_id: str, *, aud: str | list[str] | _Drop = ISSUER, lifetime: int = 300, **changes: Any
) -> dict[str, Any]:
    """A valid assertion's claims for ``client_id``; ``changes`` override them (``DROP`` removes one)."""
    now = int(time.time())
    valid: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(16),
    }
    return {name: value for name, value in {**valid, **changes}.items() if not isinstance(value, _Drop)}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], sign: bytes | None = None) -> str:
    """A JWT built by hand: with ``sign`` an HMAC-SHA256 key, else with an empty signature."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = b"" if sign is None else hmac.new(sign, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


async def register(
    registry: Registry,
    *,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    allow_introspection: bool = False,
    name: str = "Partner",
) -> Client:
    """A private_key_jwt client, registered as the CLI and admin API register one."""
    metadata = registration.ClientMetadata(
        client_name=name,
        redirect_uris=[],
        grant_types=["client_credentials"],
        scope=[SCOPE],
        token_endpoint_auth_method="private_key_jwt",
        jwks=jwks,
        jwks_uri=jwks_uri,
        allow_introspection=allow_introspection,
    )
    client, secret, _ = await registration.register(registry, metadata)
    assert secret is None
    return client


async def partner(registry: Registry, alg: str = "ES256", **options: Any) -> tuple[Client, Key]:
    key = new_key(alg)
    return await register(registry, jwks={"keys": [key.jwk]}, **options), key


def assertion_form(assertion: str, **extra: str) -> dict[str, str]:
    return {"client_assertion_type": JWT_BEARER, "client_assertion": assertion, **extra}


async def client_credentials(
    http: TestClient, assertion: str | None, *, headers: dict[str, str] | None = None, **extra: str
) -> ClientResponse:
    data = {"grant_type": "client_credentials", "scope": SCOPE, **extra}
    if assertion is not None:
        data.update(assertion_form(assertion))
    return await http.post("/oauth2/token", data=data, headers=headers or {})


async def assert_invalid_client(response: ClientResponse) -> None:
    body = await response.json()
    assert (response.status, body["error"]) == (401, "invalid_client"), body
    assert response.headers["Cache-Control"] == "no-store"
    assert "access_token" not in body


async def authenticates(http: TestClient, registry: Registry, client: Client, key: Key) -> None:
    """A fresh, valid assertion signed with ``key`` gets ``client`` a token."""
    response = await client_credentials(http, key.sign(claims(client.client_id)))
    await assert_token_for(response, registry, client)


async def assert_token_for(response: ClientResponse, registry: Registry, client: Client) -> dict[str, Any]:
    body = await response.json()
    assert response.status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["scope"] == SCOPE
    assert "refresh_token" not in body  # RFC 6749 §4.4.3
    token_claims = await registry.access_tokens.verify(body["access_token"], audience=None)
    assert token_claims is not None
    assert token_claims["sub"] == client.client_id
    assert token_claims["client_id"] == client.client_id
    return token_claims


# ---------------------------------------------------------------------------------------------
# it works, with every allowed algorithm
# ---------------------------------------------------------------------------------------------


async def test_es256_inline_jwks_client_credentials(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry, "ES256")
    response = await client_credentials(http, key.sign(claims(client.client_id)))
    await assert_token_for(response, registry, client)


@pytest.mark.parametrize("alg", ["RS256", "PS256", "EdDSA"])
async def test_other_allowed_algorithms(http: TestClient, registry: Registry, alg: str) -> None:
    client, key = await partner(registry, alg)
    response = await client_credentials(http, key.sign(claims(client.client_id)))
    await assert_token_for(response, registry, client)


async def test_client_id_in_the_body_matching_sub_is_fine(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id)), client_id=client.client_id)
    await assert_token_for(response, registry, client)


async def test_kid_may_be_left_out_when_the_jwks_has_one_key(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id), kid=DROP))
    await assert_token_for(response, registry, client)


# ---------------------------------------------------------------------------------------------
# audience
# ---------------------------------------------------------------------------------------------


async def test_issuer_is_a_valid_audience(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id, aud=ISSUER)))
    await assert_token_for(response, registry, client)


@pytest.mark.parametrize(
    "aud", [["https://someone-else.example", TOKEN_URL], [ISSUER, "https://someone-else.example"], [ISSUER]]
)
async def test_an_audience_array_is_refused(http: TestClient, registry: Registry, aud: list[str]) -> None:
    """The audience-injection fix of the RFC 7523 update: the issuer alone, as a single string."""
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id, aud=aud)))
    await assert_invalid_client(response)


@pytest.fixture
async def compat_http(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    database_url: str,
    backing: Services,
    redis_prefix: str,
) -> TestClient:
    """The server with TESSERA_ASSERTION_AUDIENCE_COMPAT=on: the endpoint called is an audience too."""
    settings = make_settings(database_url, backing.redis_url, redis_prefix, assertion_audience_compat="on")
    return await aiohttp_client(create_app(settings))


async def test_token_endpoint_audience_only_with_the_compatibility_switch(
    http: TestClient, compat_http: TestClient, registry: Registry
) -> None:
    client, key = await partner(registry)
    await assert_invalid_client(
        await client_credentials(http, key.sign(claims(client.client_id, aud=TOKEN_URL)))
    )
    response = await client_credentials(compat_http, key.sign(claims(client.client_id, aud=TOKEN_URL)))
    await assert_token_for(response, registry, client)


async def test_revocation_endpoint_audience_at_the_revocation_endpoint(
    compat_http: TestClient, registry: Registry
) -> None:
    http = compat_http
    client, key = await partner(registry)
    issued = await client_credentials(http, key.sign(claims(client.client_id)))
    access_token = (await issued.json())["access_token"]
    token_claims = await registry.access_tokens.verify(access_token, audience=None)
    assert token_claims is not None

    form = assertion_form(key.sign(claims(client.client_id, aud=REVOKE_URL)), token=access_token)
    response = await http.post("/oauth2/revoke", data=form)
    assert response.status == 200, await response.text()
    assert await registry.revoked_tokens.is_revoked(token_claims["jti"])


async def test_revocation_audience_is_refused_at_the_token_endpoint(
    compat_http: TestClient, registry: Registry
) -> None:
    http = compat_http
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id, aud=REVOKE_URL)))
    await assert_invalid_client(response)


async def test_introspection_endpoint_audience_at_the_introspection_endpoint(
    compat_http: TestClient, registry: Registry
) -> None:
    http = compat_http
    client, key = await partner(registry, allow_introspection=True)
    issued = await client_credentials(http, key.sign(claims(client.client_id)))
    access_token = (await issued.json())["access_token"]

    form = assertion_form(key.sign(claims(client.client_id, aud=INTROSPECT_URL)), token=access_token)
    response = await http.post("/oauth2/introspect", data=form)
    body = await response.json()
    assert response.status == 200, body
    assert body["active"] is True
    assert body["client_id"] == body["sub"] == client.client_id

    # an audience of another endpoint does not do at the introspection endpoint
    form = assertion_form(key.sign(claims(client.client_id, aud=REVOKE_URL)), token=access_token)
    await assert_invalid_client(await http.post("/oauth2/introspect", data=form))


@pytest.mark.parametrize(
    "aud",
    [
        "https://other-server.example/oauth2/token",
        "http://localhost:8000/oauth2/token/",
        "http://localhost:8000/oauth2/token",
        "http://localhost:8000/",
        "https://localhost:8000/oauth2/token",
        "http://localhost:8000/oauth2/introspect",
        "",
        ["https://other-server.example", "https://third.example"],
    ],
)
async def test_foreign_audience_is_invalid_client(
    http: TestClient, registry: Registry, aud: str | list[str]
) -> None:
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id, aud=aud)))
    await assert_invalid_client(response)


async def test_missing_audience_is_invalid_client(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id, aud=DROP)))
    await assert_invalid_client(response)


# ---------------------------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------------------------


async def test_an_assertion_is_single_use(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    assertion = key.sign(claims(client.client_id))
    await assert_token_for(await client_credentials(http, assertion), registry, client)
    await assert_invalid_client(await client_credentials(http, assertion))


async def test_the_jti_is_single_use_even_in_a_new_assertion(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    jti = secrets.token_urlsafe(16)
    first = key.sign(claims(client.client_id, jti=jti))
    await assert_token_for(await client_credentials(http, first), registry, client)
    # re-signed with another exp and aud, and sent to another endpoint: the jti is what counts
    second = key.sign(claims(client.client_id, jti=jti, aud=REVOKE_URL, lifetime=200))
    response = await http.post("/oauth2/revoke", data=assertion_form(second, token="whatever"))
    await assert_invalid_client(response)


async def test_concurrent_replays_let_one_through(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    assertion = key.sign(claims(client.client_id))
    responses = await asyncio.gather(*(client_credentials(http, assertion) for _ in range(10)))
    assert sorted(r.status for r in responses) == [200] + [401] * 9


# ---------------------------------------------------------------------------------------------
# iss, sub and client_id
# ---------------------------------------------------------------------------------------------


async def test_iss_must_be_the_client(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id, iss="someone-else")))
    await assert_invalid_client(response)


async def test_missing_iss_is_invalid_client(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id, iss=DROP)))
    await assert_invalid_client(response)


async def test_missing_sub_is_invalid_client(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id, sub=DROP)))
    await assert_invalid_client(response)


async def test_sub_naming_another_client_is_invalid_client(http: TestClient, registry: Registry) -> None:
    """Two clients sharing a key: A's assertion claiming to be B (iss A, sub B) must not pass as B."""
    key = new_key()
    a = await register(registry, jwks={"keys": [key.jwk]}, name="A")
    b = await register(registry, jwks={"keys": [key.jwk]}, name="B")
    sanity = await client_credentials(http, key.sign(claims(b.client_id)))
    await assert_token_for(sanity, registry, b)  # the shared key does verify for B

    response = await client_credentials(http, key.sign(claims(a.client_id, sub=b.client_id)))
    await assert_invalid_client(response)
    response = await client_credentials(http, key.sign(claims(b.client_id, sub=a.client_id)))
    await assert_invalid_client(response)


async def test_sub_of_an_unknown_client_is_invalid_client(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id, sub="no-such-client")))
    await assert_invalid_client(response)


async def test_client_id_param_differing_from_sub_is_invalid_client(
    http: TestClient, registry: Registry
) -> None:
    client, key = await partner(registry)
    other, _ = await partner(registry, name="Other")
    assertion = key.sign(claims(client.client_id))
    await assert_invalid_client(await client_credentials(http, assertion, client_id=other.client_id))
    # the assertion was never accepted, so it was not spent either
    await assert_token_for(await client_credentials(http, assertion), registry, client)


# ---------------------------------------------------------------------------------------------
# lifetime and jti
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["exp", "jti"])
async def test_missing_exp_or_jti_is_invalid_client(http: TestClient, registry: Registry, claim: str) -> None:
    client, key = await partner(registry)
    changes: dict[str, Any] = {claim: DROP}
    response = await client_credentials(http, key.sign(claims(client.client_id, **changes)))
    await assert_invalid_client(response)


async def test_non_string_jti_is_invalid_client(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id, jti=12345)))
    await assert_invalid_client(response)


async def test_expired_assertion_is_invalid_client(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id, lifetime=-120)))
    await assert_invalid_client(response)


async def test_assertion_living_longer_than_600_seconds_is_invalid_client(
    http: TestClient, registry: Registry
) -> None:
    client, key = await partner(registry)
    for lifetime in (660, 3600, 10 * 365 * 86400):
        response = await client_credentials(http, key.sign(claims(client.client_id, lifetime=lifetime)))
        await assert_invalid_client(response)


async def test_assertion_just_within_600_seconds_is_fine(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id, lifetime=580)))
    await assert_token_for(response, registry, client)


async def test_not_yet_valid_assertion_is_invalid_client(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    response = await client_credentials(
        http, key.sign(claims(client.client_id, nbf=int(time.time()) + 300, lifetime=500))
    )
    await assert_invalid_client(response)


# ---------------------------------------------------------------------------------------------
# algorithm confusion and wrong keys
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
async def test_hs256_keyed_with_the_public_key_is_invalid_client(
    http: TestClient, registry: Registry, alg: str
) -> None:
    """The classic confusion: HMAC with the (public) registered key as the secret."""
    client, key = await partner(registry, alg)
    payload = claims(client.client_id)
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    for secret in (key.public_pem(), json.dumps(key.jwk).encode()):
        response = await client_credentials(http, hand_made(header, payload, sign=secret))
        await assert_invalid_client(response)


async def test_hs256_with_any_secret_is_invalid_client(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    secret = secrets.token_bytes(64)
    assertion = jwt.encode(claims(client.client_id), secret, algorithm="HS256", headers={"kid": key.kid})
    await assert_invalid_client(await client_credentials(http, assertion))


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_unsigned_assertion_is_invalid_client(http: TestClient, registry: Registry, alg: str) -> None:
    client, key = await partner(registry)
    payload = claims(client.client_id)
    for header in ({"alg": alg}, {"alg": alg, "kid": key.kid}):
        assertion = hand_made(header, payload)
        assert assertion.endswith(".")
        await assert_invalid_client(await client_credentials(http, assertion))
        await assert_invalid_client(await client_credentials(http, assertion.removesuffix(".")))


async def test_a_key_not_in_the_jwks_is_invalid_client(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    impostor = new_key("ES256", kid=key.kid)  # same kid, different key
    await assert_invalid_client(await client_credentials(http, impostor.sign(claims(client.client_id))))
    await assert_invalid_client(
        await client_credentials(http, impostor.sign(claims(client.client_id), kid=DROP))
    )


async def test_an_unknown_kid_is_invalid_client(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    response = await client_credentials(http, key.sign(claims(client.client_id), kid="not-registered"))
    await assert_invalid_client(response)


async def test_a_tampered_payload_is_invalid_client(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    header, _, signature = key.sign(claims(client.client_id)).split(".")
    forged = b64url(json.dumps(claims(client.client_id, lifetime=500)).encode())
    await assert_invalid_client(await client_credentials(http, f"{header}.{forged}.{signature}"))


async def test_an_algorithm_other_than_the_keys_registered_alg_is_invalid_client(
    http: TestClient, registry: Registry
) -> None:
    """An RSA key registered for RS256 does not verify PS256 assertions (its JWK says ``alg``)."""
    client, key = await partner(registry, "RS256")
    other = Key("PS256", key.kid, key.private, key.jwk)
    await assert_invalid_client(await client_credentials(http, other.sign(claims(client.client_id))))


@pytest.mark.parametrize("assertion", ["", "not-a-jwt", "a.b.c", "e30.e30.", "....."])
async def test_malformed_assertion_is_invalid_client(http: TestClient, assertion: str) -> None:
    await assert_invalid_client(await client_credentials(http, assertion))


async def test_wrong_assertion_type_is_invalid_client(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
        "client_assertion": key.sign(claims(client.client_id)),
    }
    await assert_invalid_client(await http.post("/oauth2/token", data=data))


# ---------------------------------------------------------------------------------------------
# the registered method, and no other
# ---------------------------------------------------------------------------------------------


async def test_private_key_jwt_client_cannot_use_a_secret(http: TestClient, registry: Registry) -> None:
    client, _ = await partner(registry)
    # client_secret_post
    response = await client_credentials(http, None, client_id=client.client_id, client_secret="guess")
    await assert_invalid_client(response)
    # client_secret_basic
    response = await client_credentials(http, None, headers=basic(client.client_id, "guess"))
    await assert_invalid_client(response)
    # an empty secret, and no secret at all (method "none")
    response = await client_credentials(http, None, headers=basic(client.client_id, ""))
    await assert_invalid_client(response)
    response = await client_credentials(http, None, client_id=client.client_id)
    await assert_invalid_client(response)


async def test_basic_alongside_an_assertion_is_refused(http: TestClient, registry: Registry) -> None:
    """RFC 6749 §2.3: one authentication method per request; Tessera answers invalid_request."""
    client, key = await partner(registry)
    assertion = key.sign(claims(client.client_id))
    response = await client_credentials(http, assertion, headers=basic(client.client_id, "x"))
    body = await response.json()
    assert (response.status, body["error"]) == (400, "invalid_request")
    assert "access_token" not in body


async def test_secret_client_cannot_use_an_assertion(http: TestClient, registry: Registry) -> None:
    key = new_key()
    client, secret = await registry.clients.create(
        name="Secret partner",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scope=[SCOPE],
        auth_method="client_secret_basic",
    )
    assert secret is not None
    await assert_invalid_client(await client_credentials(http, key.sign(claims(client.client_id))))
    # the client itself is fine with its secret
    await assert_token_for(
        await client_credentials(http, None, headers=basic(client.client_id, secret)), registry, client
    )


# ---------------------------------------------------------------------------------------------
# jwks_uri
# ---------------------------------------------------------------------------------------------


@dataclass
class JwksServer:
    """A client's JWKS on a real port; ``keys`` may be changed (rotated) while it runs."""

    url: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200  # anything else: the JWKS host is having an outage
    hits: int = 0
    redirect_hits: int = 0


@pytest.fixture
async def jwks_server() -> AsyncIterator[JwksServer]:
    state = JwksServer()

    async def serve(request: web.Request) -> web.Response:
        state.hits += 1
        if state.status != 200:
            return web.Response(status=state.status)
        return web.json_response({"keys": state.keys})

    async def moved(request: web.Request) -> web.Response:
        state.redirect_hits += 1
        raise web.HTTPFound("/jwks.json")

    app = web.Application()
    app.router.add_get("/jwks.json", serve)
    app.router.add_get("/moved.json", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]  # the bound port, from the site's server sockets
        state.url = f"http://127.0.0.1:{port}/jwks.json"
        yield state
    finally:
        await runner.cleanup()


class FakeClock:
    """Stands in for ``time`` in :mod:`auth_server.client_keys`, so the 30 s limit can be passed."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(auth_server.client_keys, "time", fake)
    return fake


async def test_jwks_uri_authentication_and_key_rotation(
    http: TestClient, registry: Registry, jwks_server: JwksServer, clock: FakeClock
) -> None:
    old = new_key("ES256")
    jwks_server.keys = [old.jwk]
    client = await register(registry, jwks_uri=jwks_server.url)

    await authenticates(http, registry, client, old)
    assert jwks_server.hits == 1
    # cached: a second assertion needs no fetch
    await authenticates(http, registry, client, old)
    assert jwks_server.hits == 1

    # the client rotates: its JWKS now holds only a new key, with a new kid
    new = new_key("EdDSA")
    jwks_server.keys = [new.jwk]
    # within 30 s of the last fetch, an unknown kid does not make Tessera fetch again
    await assert_invalid_client(await client_credentials(http, new.sign(claims(client.client_id))))
    assert jwks_server.hits == 1

    clock.offset += 31  # past the refetch interval, still within the 5-minute cache
    # an unknown kid triggers one refetch, which finds the new key
    await authenticates(http, registry, client, new)
    assert jwks_server.hits == 2
    await authenticates(http, registry, client, new)
    assert jwks_server.hits == 2
    # and the retired key is gone
    await assert_invalid_client(await client_credentials(http, old.sign(claims(client.client_id))))


async def test_jwks_uri_cache_expires(
    http: TestClient, registry: Registry, jwks_server: JwksServer, clock: FakeClock
) -> None:
    key = new_key("RS256")
    jwks_server.keys = [key.jwk]
    client = await register(registry, jwks_uri=jwks_server.url)
    await authenticates(http, registry, client, key)
    assert jwks_server.hits == 1

    # the client drops the key from its JWKS; once the cache is stale, Tessera stops accepting it
    jwks_server.keys = []
    clock.offset += 301
    await assert_invalid_client(await client_credentials(http, key.sign(claims(client.client_id))))
    assert jwks_server.hits == 2


async def test_unknown_kid_flood_is_rate_limited(
    http: TestClient, registry: Registry, jwks_server: JwksServer, clock: FakeClock
) -> None:
    key = new_key("ES256")
    jwks_server.keys = [key.jwk]
    client = await register(registry, jwks_uri=jwks_server.url)

    def flood() -> list[str]:
        return [key.sign(claims(client.client_id), kid=secrets.token_hex(8)) for _ in range(20)]

    responses = await asyncio.gather(*(client_credentials(http, a) for a in flood()))
    for response in responses:
        await assert_invalid_client(response)
    assert 1 <= jwks_server.hits <= 2

    # sequentially too, and after a successful authentication
    await authenticates(http, registry, client, key)
    for assertion in flood():
        await assert_invalid_client(await client_credentials(http, assertion))
    assert 1 <= jwks_server.hits <= 2

    # past the interval, a fresh flood buys at most one more fetch
    before = jwks_server.hits
    clock.offset += 31
    responses = await asyncio.gather(*(client_credentials(http, a) for a in flood()))
    for response in responses:
        await assert_invalid_client(response)
    assert jwks_server.hits - before <= 1


async def test_private_key_served_at_jwks_uri_is_not_used(
    http: TestClient, registry: Registry, jwks_server: JwksServer
) -> None:
    key = new_key("ES256")
    jwks_server.keys = [key.private_jwk()]
    client = await register(registry, jwks_uri=jwks_server.url)
    await assert_invalid_client(await client_credentials(http, key.sign(claims(client.client_id))))
    assert jwks_server.hits >= 1


async def test_jwks_uri_redirect_is_not_followed(
    http: TestClient, registry: Registry, jwks_server: JwksServer
) -> None:
    key = new_key("ES256")
    jwks_server.keys = [key.jwk]
    moved = jwks_server.url.replace("/jwks.json", "/moved.json")
    client = await register(registry, jwks_uri=moved)
    await assert_invalid_client(await client_credentials(http, key.sign(claims(client.client_id))))
    assert jwks_server.redirect_hits == 1
    assert jwks_server.hits == 0


async def test_jwks_delivered_in_pieces_is_read_whole(http: TestClient, registry: Registry) -> None:
    key = new_key("RS256")
    body = json.dumps({"keys": [key.jwk]}).encode()

    async def serve(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[:100])
        await asyncio.sleep(0.05)  # the rest arrives a moment later, as over any real network
        await response.write(body[100:])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/jwks.json", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        client = await register(registry, jwks_uri=f"http://127.0.0.1:{runner.addresses[0][1]}/jwks.json")
        await authenticates(http, registry, client, key)
    finally:
        await runner.cleanup()


async def test_failed_refetch_keeps_the_last_good_keys(
    http: TestClient, registry: Registry, jwks_server: JwksServer, clock: FakeClock
) -> None:
    key = new_key("ES256")
    jwks_server.keys = [key.jwk]
    client = await register(registry, jwks_uri=jwks_server.url)
    await authenticates(http, registry, client, key)

    jwks_server.status = 503  # a brief outage at the client's JWKS host
    clock.offset += 31
    # anyone, holding no key at all, can make Tessera refetch now: the signature is never checked
    forged = hand_made({"alg": "ES256", "kid": "made-up"}, claims(client.client_id))
    await assert_invalid_client(await client_credentials(http, forged))
    assert jwks_server.hits == 2
    jwks_server.status = 200  # the outage is over

    await authenticates(http, registry, client, key)


async def test_unreachable_jwks_uri_is_invalid_client(http: TestClient, registry: Registry) -> None:
    key = new_key("ES256")
    client = await register(registry, jwks_uri="http://127.0.0.1:9/jwks.json")
    await assert_invalid_client(await client_credentials(http, key.sign(claims(client.client_id))))


# ---------------------------------------------------------------------------------------------
# registration rules
# ---------------------------------------------------------------------------------------------


def _validate(**changes: Any) -> None:
    rules: dict[str, Any] = {
        "name": "Partner",
        "redirect_uris": [],
        "grant_types": ["client_credentials"],
        "scope": [SCOPE],
        "auth_method": "private_key_jwt",
        "known_scopes": KNOWN_SCOPES,
    }
    validate_registration(**{**rules, **changes})


def test_registration_accepts_public_jwks_and_good_jwks_uris() -> None:
    keys = [new_key(alg).jwk for alg in ("ES256", "RS256", "PS256", "EdDSA")]
    _validate(jwks={"keys": keys})
    _validate(jwks_uri="https://partner.example/.well-known/jwks.json")
    for host in ("127.0.0.1", "localhost", "[::1]"):
        _validate(jwks_uri=f"http://{host}:8080/jwks.json")


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_registration_refuses_a_private_key_in_the_jwks(alg: str) -> None:
    key = new_key(alg)
    private_jwk = key.private_jwk()
    with pytest.raises(RegistrationError, match="public keys only"):
        _validate(jwks={"keys": [private_jwk]})
    # one private key among public ones is just as bad
    with pytest.raises(RegistrationError, match="public keys only"):
        _validate(jwks={"keys": [new_key().jwk, {**key.jwk, "d": private_jwk["d"]}]})


def test_registration_refuses_a_symmetric_key() -> None:
    oct_key = {"kty": "oct", "k": b64url(secrets.token_bytes(32)), "kid": "hmac", "alg": "HS256"}
    with pytest.raises(RegistrationError):
        _validate(jwks={"keys": [oct_key]})
    with pytest.raises(RegistrationError):
        _validate(jwks={"keys": [new_key().jwk, oct_key]})
    # a "k" smuggled into an asymmetric key is refused too
    with pytest.raises(RegistrationError):
        _validate(jwks={"keys": [{**new_key().jwk, "k": oct_key["k"]}]})


@pytest.mark.parametrize(
    "jwks", [{}, {"keys": []}, {"keys": "x"}, {"keys": ["x"]}, {"keys": [{"kty": "XYZ"}]}]
)
def test_registration_refuses_a_malformed_jwks(jwks: dict[str, Any]) -> None:
    with pytest.raises(RegistrationError):
        _validate(jwks=jwks)


@pytest.mark.parametrize(
    "uri",
    [
        "http://partner.example/jwks.json",
        "http://10.0.0.5/jwks.json",
        "http://127.0.0.1.nip.io/jwks.json",
        "ftp://partner.example/jwks.json",
        "file:///etc/jwks.json",
        "https:///jwks.json",
        "jwks.json",
    ],
)
def test_registration_refuses_a_bad_jwks_uri(uri: str) -> None:
    with pytest.raises(RegistrationError, match="jwks_uri"):
        _validate(jwks_uri=uri)


def test_registration_needs_exactly_one_of_jwks_and_jwks_uri() -> None:
    with pytest.raises(RegistrationError, match="exactly one"):
        _validate()
    with pytest.raises(RegistrationError, match="exactly one"):
        _validate(jwks={"keys": [new_key().jwk]}, jwks_uri="https://partner.example/jwks.json")


def test_registration_refuses_keys_for_a_secret_client() -> None:
    with pytest.raises(RegistrationError, match="private_key_jwt"):
        _validate(auth_method="client_secret_basic", jwks={"keys": [new_key().jwk]})
    with pytest.raises(RegistrationError, match="private_key_jwt"):
        _validate(auth_method="client_secret_post", jwks_uri="https://partner.example/jwks.json")


# ---------------------------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------------------------


async def test_metadata_advertises_private_key_jwt(http: TestClient) -> None:
    response = await http.get("/.well-known/oauth-authorization-server")
    assert response.status == 200
    document = await response.json()
    for endpoint in ("token", "revocation", "introspection"):
        assert "private_key_jwt" in document[f"{endpoint}_endpoint_auth_methods_supported"]
        algs = document[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]
        assert set(algs) == {"RS256", "PS256", "ES256", "EdDSA"}
