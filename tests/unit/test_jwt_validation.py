"""shared.jwt_validation: local validation of RFC 9068 access tokens, the JWKS key source, the aiohttp layer.

Every test here would fail if the check it names were removed. Tokens are signed in-test with fresh
EC P-256 / RSA keys; the issuer of the JWKSKeySource tests is a small aiohttp app served in-process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jwt
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pytest_aiohttp.plugin import AiohttpClient, AiohttpServer

from shared import jwt_validation
from shared.error_middleware import error_middleware
from shared.errors import InvalidToken
from shared.jwt_validation import (
    VALIDATOR,
    JWKSKeySource,
    KeySource,
    TokenValidator,
    claims,
    require_scope,
)

ISSUER = "https://auth.example.test"
AUDIENCE = "https://auth.example.test/api"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


# --- keys and tokens -------------------------------------------------------------------------


@cache
def ec_key(name: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: PrivateKey, kid: str, alg: str) -> dict[str, Any]:
    """The public half as a JWKS entry, as an issuer publishes it."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        entry = dict(ECAlgorithm.to_jwk(key.public_key(), as_dict=True))
    else:
        entry = dict(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))
    entry.update(kid=kid, alg=alg, use="sig")
    return entry


def pyjwk(key: PrivateKey, kid: str, alg: str) -> jwt.PyJWK:
    return jwt.PyJWK(public_jwk(key, kid, alg))


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def token_claims(drop: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-42",
        "aud": AUDIENCE,
        "exp": now + 600,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "client_id": "photo-app",
        "scope": "openid photos:read",
    }
    payload.update(overrides)
    for name in drop:
        del payload[name]
    return payload


def sign(
    key: PrivateKey | bytes,
    payload: Mapping[str, Any] | None = None,
    *,
    alg: str = "ES256",
    kid: str | None = "ec1",
    typ: str | None = "at+jwt",
    extra_headers: Mapping[str, Any] | None = None,
) -> str:
    headers: dict[str, Any] = {"typ": typ}  # PyJWT drops a falsy typ
    if kid is not None:
        headers["kid"] = kid
    headers.update(extra_headers or {})
    return jwt.encode(dict(payload or token_claims()), key, algorithm=alg, headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def hand_made(header: Mapping[str, Any], payload: Mapping[str, Any], hmac_secret: bytes | None) -> str:
    """A token built by hand: unsigned (``hmac_secret`` None) or HS256 with the given secret."""
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}"
    if hmac_secret is None:
        return signing_input + "."
    mac = hmac.new(hmac_secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


class DictKeySource(KeySource):
    """An in-memory key source that records every lookup."""

    def __init__(self, keys: Mapping[str, jwt.PyJWK]) -> None:
        self.keys = dict(keys)
        self.lookups: list[str] = []

    async def key(self, kid: str) -> jwt.PyJWK | None:
        self.lookups.append(kid)
        return self.keys.get(kid)


@pytest.fixture
def source() -> DictKeySource:
    return DictKeySource(
        {
            "ec1": pyjwk(ec_key("ec1"), "ec1", "ES256"),
            "rsa1": pyjwk(rsa_key("rsa1"), "rsa1", "RS256"),
        }
    )


@pytest.fixture
def validator(source: DictKeySource) -> TokenValidator:
    return TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=source)


async def refused(validator: TokenValidator, token: str) -> str:
    """The description of the InvalidToken that validating ``token`` raises."""
    with pytest.raises(InvalidToken) as caught:
        await validator.validate(token)
    return caught.value.description


# --- good tokens -----------------------------------------------------------------------------


async def test_a_good_es256_token_validates(validator: TokenValidator) -> None:
    payload = token_claims()
    assert await validator.validate(sign(ec_key("ec1"), payload, alg="ES256", kid="ec1")) == payload


async def test_a_good_rs256_token_validates(validator: TokenValidator) -> None:
    payload = token_claims()
    assert await validator.validate(sign(rsa_key("rsa1"), payload, alg="RS256", kid="rsa1")) == payload


async def test_an_audience_list_naming_this_server_is_accepted(validator: TokenValidator) -> None:
    payload = token_claims(aud=["https://other.example.test", AUDIENCE])
    assert await validator.validate(sign(ec_key("ec1"), payload)) == payload


# --- signatures and algorithms ---------------------------------------------------------------


async def test_a_forged_signature_is_refused(validator: TokenValidator) -> None:
    # another key, claiming to be the issuer's key "ec1"
    assert "signature" in await refused(validator, sign(ec_key("attacker"), kid="ec1"))


async def test_a_tampered_payload_is_refused(validator: TokenValidator) -> None:
    good = sign(ec_key("ec1"))
    header, _, signature = good.split(".")
    elevated = {**segment(good, 1), "scope": "openid photos:read photos:write admin", "sub": "admin"}
    assert "signature" in await refused(validator, f"{header}.{b64url_json(elevated)}.{signature}")


async def test_an_unsigned_alg_none_token_is_refused(validator: TokenValidator) -> None:
    token = hand_made({"alg": "none", "typ": "at+jwt", "kid": "ec1"}, token_claims(), None)
    await refused(validator, token)


@pytest.mark.parametrize("kid", ["ec1", "rsa1"])
async def test_hs256_with_the_public_key_as_secret_is_refused(validator: TokenValidator, kid: str) -> None:
    """Algorithm confusion: the attacker knows the public key and uses its PEM bytes as an HMAC secret."""
    private = ec_key("ec1") if kid == "ec1" else rsa_key("rsa1")
    token = hand_made({"alg": "HS256", "typ": "at+jwt", "kid": kid}, token_claims(), public_pem(private))
    assert "algorithm" in await refused(validator, token)


async def test_an_algorithm_outside_the_configured_list_is_refused(source: DictKeySource) -> None:
    only_es256 = TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=source, algorithms=("ES256",))
    token = sign(rsa_key("rsa1"), alg="RS256", kid="rsa1")  # a genuine signature by a published key
    assert "algorithm" in await refused(only_es256, token)
    assert await only_es256.validate(sign(ec_key("ec1"))) is not None


async def test_an_alg_of_another_key_type_than_the_kid_names_is_refused(validator: TokenValidator) -> None:
    # signed RS256 by an RSA key but naming the EC key "ec1"
    token = sign(rsa_key("attacker"), alg="RS256", kid="ec1")
    assert "algorithm" in await refused(validator, token)


async def test_a_header_alg_other_than_the_keys_alg_is_refused() -> None:
    """The key is published for RS256; the same RSA key used with PS256 must not be accepted."""
    keys = DictKeySource({"rsa1": pyjwk(rsa_key("rsa1"), "rsa1", "RS256")})
    validator = TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=keys, algorithms=("RS256", "PS256"))
    token = sign(rsa_key("rsa1"), alg="PS256", kid="rsa1")
    assert "does not match its key" in await refused(validator, token)
    assert await validator.validate(sign(rsa_key("rsa1"), alg="RS256", kid="rsa1")) is not None


@pytest.mark.parametrize("algorithms", [("ES256", "none"), ("HS256",), ("RS256", "HS384"), ("HS512",)])
def test_the_validator_refuses_none_and_hmac_algorithms(
    source: DictKeySource, algorithms: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError, match="must never be accepted"):
        TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=source, algorithms=algorithms)


@pytest.mark.parametrize(
    "token",
    ["", "not-a-jwt", "a.b.c", "a.b", b64url_json({"alg": "ES256"}) + ".e30"],
    ids=["empty", "one-segment", "garbage", "two-segments", "no-signature"],
)
async def test_malformed_tokens_are_refused(validator: TokenValidator, token: str) -> None:
    await refused(validator, token)


# --- claims ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iss",
    ["https://evil.example.test", "https://auth.example", ISSUER + "/", ISSUER + ".evil.test", ""],
)
async def test_a_wrong_issuer_is_refused(validator: TokenValidator, iss: str) -> None:
    assert "issuer" in await refused(validator, sign(ec_key("ec1"), token_claims(iss=iss)))


@pytest.mark.parametrize("aud", ["https://other.example.test/api", ISSUER, [ISSUER, "x"], []])
async def test_a_wrong_audience_is_refused(validator: TokenValidator, aud: str | list[str]) -> None:
    await refused(validator, sign(ec_key("ec1"), token_claims(aud=aud)))


async def test_a_token_expired_beyond_the_leeway_is_refused(validator: TokenValidator) -> None:
    now = int(time.time())
    token = sign(ec_key("ec1"), token_claims(exp=now - 31, iat=now - 600))  # leeway is 30 s
    assert "expired" in await refused(validator, token)


async def test_a_token_just_expired_within_the_leeway_is_accepted(validator: TokenValidator) -> None:
    now = int(time.time())
    payload = token_claims(exp=now - 10, iat=now - 600)
    assert await validator.validate(sign(ec_key("ec1"), payload)) == payload


async def test_a_token_not_valid_before_a_future_time_is_refused(validator: TokenValidator) -> None:
    token = sign(ec_key("ec1"), token_claims(nbf=int(time.time()) + 120))
    assert "not valid yet" in await refused(validator, token)


async def test_a_token_issued_in_the_future_is_refused(validator: TokenValidator) -> None:
    now = int(time.time())
    await refused(validator, sign(ec_key("ec1"), token_claims(iat=now + 300, exp=now + 900)))


@pytest.mark.parametrize("claim", ["exp", "jti", "client_id", "iss", "sub", "aud", "iat"])
async def test_a_token_lacking_a_required_claim_is_refused(validator: TokenValidator, claim: str) -> None:
    description = await refused(validator, sign(ec_key("ec1"), token_claims(drop=(claim,))))
    assert claim in description


# --- header ----------------------------------------------------------------------------------


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "application/jwt", "at+jwt2", "JOSE"])
async def test_a_typ_other_than_at_jwt_is_refused(validator: TokenValidator, typ: str | None) -> None:
    token = sign(ec_key("ec1"), typ=typ)
    assert segment(token, 0).get("typ") == typ
    assert "typ" in await refused(validator, token)


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt"])
async def test_typ_at_jwt_is_accepted(validator: TokenValidator, typ: str) -> None:
    assert await validator.validate(sign(ec_key("ec1"), typ=typ)) is not None


async def test_a_token_without_kid_is_refused(validator: TokenValidator, source: DictKeySource) -> None:
    assert "kid" in await refused(validator, sign(ec_key("ec1"), kid=None))
    assert source.lookups == []


async def test_a_token_with_an_unknown_kid_is_refused(
    validator: TokenValidator, source: DictKeySource
) -> None:
    assert "unknown key" in await refused(validator, sign(ec_key("ec1"), kid="ec-unknown"))
    assert source.lookups == ["ec-unknown"]


async def test_jku_and_x5u_headers_are_ignored(
    validator: TokenValidator, source: DictKeySource, aiohttp_server: AiohttpServer
) -> None:
    """Keys come from the configured source only, never from a URL the token names."""
    attacker = ec_key("attacker")
    hits: list[str] = []

    async def attacker_jwks(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"keys": [public_jwk(attacker, "ec1", "ES256")]})

    app = web.Application()
    app.router.add_get("/{tail:.*}", attacker_jwks)
    server = await aiohttp_server(app)
    elsewhere = {"jku": str(server.make_url("/jwks.json")), "x5u": str(server.make_url("/cert.pem"))}

    # the issuer's own token, carrying the headers: still validated against the configured source
    payload = token_claims()
    assert await validator.validate(sign(ec_key("ec1"), payload, extra_headers=elsewhere)) == payload
    assert source.lookups == ["ec1"]

    # signed by the key the jku advertises, under the issuer's kid or its own: refused
    await refused(validator, sign(attacker, kid="ec1", extra_headers=elsewhere))
    assert "unknown key" in await refused(validator, sign(attacker, kid="attacker", extra_headers=elsewhere))
    assert hits == []


# --- the verified-token cache ----------------------------------------------------------------


async def test_a_verified_token_is_cached(validator: TokenValidator, source: DictKeySource) -> None:
    token = sign(ec_key("ec1"))
    first = await validator.validate(token)
    assert await validator.validate(token) == first
    assert source.lookups == ["ec1"]
    await validator.validate(sign(ec_key("ec1")))  # another token is verified on its own
    assert source.lookups == ["ec1", "ec1"]


async def test_a_refused_token_is_not_cached(validator: TokenValidator, source: DictKeySource) -> None:
    token = sign(ec_key("attacker"), kid="ec1")
    await refused(validator, token)
    await refused(validator, token)
    assert source.lookups == ["ec1", "ec1"]


async def test_an_expired_cached_token_is_not_served_from_the_cache(source: DictKeySource) -> None:
    validator = TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=source, leeway=0)
    exp = int(time.time()) + 1
    token = sign(ec_key("ec1"), token_claims(exp=exp))
    assert (await validator.validate(token))["exp"] == exp
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.05)
    assert "expired" in await refused(validator, token)
    assert source.lookups == ["ec1", "ec1"]


# --- JWKSKeySource against an in-process issuer ----------------------------------------------


class Clock:
    """Stands in for the ``time`` module inside shared.jwt_validation, so tests can move time on."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.monotonic_shift = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset + self.monotonic_shift

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(jwt_validation, "time", fake)
    return fake


UNSET: Any = object()


@dataclass
class FakeIssuer:
    """An authorization server's RFC 8414 metadata and JWKS, with switches to make it misbehave."""

    keys: list[dict[str, Any]]
    url: str = ""
    server: TestServer | None = None
    metadata_issuer: str | None = None  # None: the server's own URL
    jwks_status: int = 200
    jwks_body: Any = UNSET  # raw JSON to serve instead of {"keys": keys}
    metadata_body: Any = UNSET  # raw JSON to serve instead of the metadata
    metadata_hits: int = 0
    jwks_hits: int = 0
    kids_served: list[list[str]] = field(default_factory=list)

    async def metadata(self, request: web.Request) -> web.Response:
        self.metadata_hits += 1
        if self.metadata_body is not UNSET:
            return web.json_response(self.metadata_body)
        issuer = self.url if self.metadata_issuer is None else self.metadata_issuer
        return web.json_response({"issuer": issuer, "jwks_uri": f"{self.url}/jwks"})

    async def jwks(self, request: web.Request) -> web.Response:
        self.jwks_hits += 1
        if self.jwks_status != 200:
            return web.json_response({"error": "server_error"}, status=self.jwks_status)
        if self.jwks_body is not UNSET:
            return web.json_response(self.jwks_body)
        self.kids_served.append([k["kid"] for k in self.keys if isinstance(k, dict)])
        return web.json_response({"keys": self.keys})


@pytest.fixture
async def issuer(aiohttp_server: AiohttpServer) -> FakeIssuer:
    fake = FakeIssuer(keys=[public_jwk(ec_key("ec1"), "ec1", "ES256")])
    app = web.Application()
    app.router.add_get("/.well-known/oauth-authorization-server", fake.metadata)
    app.router.add_get("/jwks", fake.jwks)
    fake.server = await aiohttp_server(app)
    fake.url = f"http://{fake.server.host}:{fake.server.port}"
    return fake


@pytest.fixture
async def jwks(issuer: FakeIssuer, clock: Clock) -> AsyncIterator[JWKSKeySource]:
    keys = JWKSKeySource(issuer.url, min_refetch_interval=10.0, timeout=2.0)
    yield keys
    await keys.close()


def validator_for(issuer: FakeIssuer, keys: KeySource) -> TokenValidator:
    return TokenValidator(issuer=issuer.url, audience=AUDIENCE, keys=keys)


def issued(issuer: FakeIssuer, key: PrivateKey, kid: str, alg: str = "ES256") -> str:
    return sign(key, token_claims(iss=issuer.url), alg=alg, kid=kid)


async def test_jwks_discovery_through_the_issuer_metadata(issuer: FakeIssuer, jwks: JWKSKeySource) -> None:
    validator = validator_for(issuer, jwks)
    assert (await validator.validate(issued(issuer, ec_key("ec1"), "ec1")))["iss"] == issuer.url
    assert jwks.jwks_uri == f"{issuer.url}/jwks"
    assert (issuer.metadata_hits, issuer.jwks_hits, jwks.fetches) == (1, 1, 1)
    # known keys are served from the cache
    await validator.validate(issued(issuer, ec_key("ec1"), "ec1"))
    assert (issuer.metadata_hits, issuer.jwks_hits) == (1, 1)


async def test_a_key_rotated_in_is_picked_up_by_exactly_one_refetch(
    issuer: FakeIssuer, jwks: JWKSKeySource, clock: Clock
) -> None:
    validator = validator_for(issuer, jwks)
    await validator.validate(issued(issuer, ec_key("ec1"), "ec1"))
    assert issuer.jwks_hits == 1

    # the issuer rotates: ec2 in, ec1 out
    issuer.keys = [public_jwk(ec_key("ec2"), "ec2", "ES256"), public_jwk(rsa_key("rsa2"), "rsa2", "RS256")]
    clock.advance(11)
    assert (await validator.validate(issued(issuer, ec_key("ec2"), "ec2")))["iss"] == issuer.url
    assert issuer.jwks_hits == 2
    assert await validator.validate(issued(issuer, rsa_key("rsa2"), "rsa2", alg="RS256")) is not None
    assert issuer.jwks_hits == 2
    assert jwks.fetches == 2
    # the key rotated out is gone with the refetch (a new token, so the verified-token cache has no say)
    assert "unknown key" in await refused(validator, issued(issuer, ec_key("ec1"), "ec1"))
    assert issuer.jwks_hits == 2
    assert issuer.metadata_hits == 1  # the jwks_uri, once discovered, is kept


async def test_a_flood_of_unknown_kids_causes_at_most_one_fetch(
    issuer: FakeIssuer, jwks: JWKSKeySource, clock: Clock
) -> None:
    validator = validator_for(issuer, jwks)
    await validator.validate(issued(issuer, ec_key("ec1"), "ec1"))
    assert issuer.jwks_hits == 1

    forged = [issued(issuer, ec_key("attacker"), f"forged-{i}") for i in range(20)]
    # right after a fetch: no refetch at all
    for token in forged:
        await refused(validator, token)
    assert issuer.jwks_hits == 1

    # once min_refetch_interval has passed: 20 concurrent unknown kids, then 20 more, cost one fetch
    clock.advance(11)
    results = await asyncio.gather(*(validator.validate(t) for t in forged), return_exceptions=True)
    assert all(isinstance(r, InvalidToken) for r in results)
    for token in forged:
        await refused(validator, token)
    assert issuer.jwks_hits == 2
    # nor does a refresh asked for directly (the background task) in the same window
    await asyncio.gather(*(jwks.refresh() for _ in range(5)))
    assert issuer.jwks_hits == 2
    assert jwks.fetches == 2
    assert await validator.validate(issued(issuer, ec_key("ec1"), "ec1")) is not None


@pytest.mark.parametrize("outage", ["jwks-500", "server-stopped"])
async def test_cached_keys_keep_working_while_the_issuer_is_down(
    issuer: FakeIssuer, jwks: JWKSKeySource, clock: Clock, outage: str
) -> None:
    validator = validator_for(issuer, jwks)
    await validator.validate(issued(issuer, ec_key("ec1"), "ec1"))
    assert jwks.fetches == 1

    if outage == "jwks-500":
        issuer.jwks_status = 500
    else:
        assert issuer.server is not None
        await issuer.server.close()
    clock.advance(11)

    # an unknown kid triggers a refetch, which fails: refused, no error escapes
    assert "unknown key" in await refused(validator, issued(issuer, ec_key("ec2"), "ec2"))
    if outage == "jwks-500":
        assert issuer.jwks_hits == 2
    clock.advance(11)
    await jwks.refresh()  # a background refresh fails quietly too
    assert jwks.fetches == 1

    # new tokens (not in the verified-token cache) signed by the cached key still validate
    for _ in range(2):
        assert await validator.validate(issued(issuer, ec_key("ec1"), "ec1")) is not None
    assert await validator_for(issuer, jwks).validate(issued(issuer, ec_key("ec1"), "ec1")) is not None


async def test_metadata_naming_another_issuer_is_refused(issuer: FakeIssuer, jwks: JWKSKeySource) -> None:
    issuer.metadata_issuer = "https://evil.example.test"
    validator = validator_for(issuer, jwks)
    assert "unknown key" in await refused(validator, issued(issuer, ec_key("ec1"), "ec1"))
    assert await jwks.key("ec1") is None
    assert (issuer.metadata_hits, issuer.jwks_hits, jwks.fetches) == (1, 0, 0)
    assert jwks.jwks_uri is None


async def test_private_symmetric_and_non_signing_keys_in_the_jwks_are_skipped(
    issuer: FakeIssuer, jwks: JWKSKeySource
) -> None:
    private = dict(ECAlgorithm.to_jwk(ec_key("priv"), as_dict=True), kid="priv", alg="ES256")
    issuer.keys = [
        public_jwk(ec_key("ec1"), "ec1", "ES256"),
        private,
        {"kty": "oct", "k": b64url(b"0" * 32), "kid": "oct", "alg": "HS256"},
        {"kty": "oct", "k": b64url(b"0" * 32), "kid": "oct-no-alg"},
        {**public_jwk(ec_key("enc"), "enc", "ES256"), "use": "enc"},
        {**public_jwk(ec_key("none"), "none", "ES256"), "alg": "none"},
        {"kty": "EC", "kid": "broken"},
    ]
    assert await jwks.key("ec1") is not None
    for kid in ("priv", "oct", "oct-no-alg", "enc", "none", "broken"):
        assert await jwks.key(kid) is None, kid


async def test_a_fresh_key_source_fetches_on_first_use_even_soon_after_boot(
    issuer: FakeIssuer, clock: Clock
) -> None:
    """time.monotonic() counts from boot; on a host (VM, container) up for 5 s a fresh source must fetch."""
    clock.monotonic_shift = 5.0 - time.monotonic()
    keys = JWKSKeySource(issuer.url)  # default min_refetch_interval of 10 s, no background refresh
    try:
        assert await keys.key("ec1") is not None
        assert issuer.jwks_hits == 1
    finally:
        await keys.close()


NOT_KEY_SETS: dict[str, Any] = {
    "null": None,
    "list": [],
    "string": "maintenance",
    "keys-not-a-list": {"keys": "abc"},
    "no-keys": {"error": "temporarily_unavailable"},
}


@pytest.mark.parametrize("body", NOT_KEY_SETS.values(), ids=NOT_KEY_SETS.keys())
async def test_a_jwks_that_is_not_a_key_set_is_a_failed_fetch(
    issuer: FakeIssuer, jwks: JWKSKeySource, clock: Clock, body: Any
) -> None:
    validator = validator_for(issuer, jwks)
    await validator.validate(issued(issuer, ec_key("ec1"), "ec1"))
    issuer.jwks_body = body
    clock.advance(11)
    await jwks.refresh()  # must fail quietly, like a 500
    assert issuer.jwks_hits == 2
    assert await jwks.key("ec1") is not None, "the cached key was dropped"
    assert jwks.fetches == 1
    clock.advance(11)
    assert "unknown key" in await refused(validator, issued(issuer, ec_key("ec2"), "ec2"))
    assert await validator.validate(issued(issuer, ec_key("ec1"), "ec1")) is not None


async def test_an_empty_key_set_drops_the_cached_keys(
    issuer: FakeIssuer, jwks: JWKSKeySource, clock: Clock
) -> None:
    """Unlike a failed fetch, an issuer that publishes no keys any more is believed."""
    assert await jwks.key("ec1") is not None
    issuer.keys = []
    clock.advance(11)
    await jwks.refresh()
    assert await jwks.key("ec1") is None
    assert jwks.fetches == 2


@pytest.mark.parametrize(
    "junk",
    [1, "k", None, {"kty": "EC", "kid": "x", "alg": ["ES256"]}, {"kty": "EC", "kid": ["x"]}],
    ids=["int", "str", "null", "alg-list", "kid-list"],
)
async def test_a_malformed_jwks_entry_is_skipped(issuer: FakeIssuer, jwks: JWKSKeySource, junk: Any) -> None:
    issuer.keys = [junk, public_jwk(ec_key("ec1"), "ec1", "ES256")]
    assert await jwks.key("ec1") is not None
    assert await jwks.key("x") is None


async def test_metadata_that_is_not_an_object_is_a_failed_fetch(
    issuer: FakeIssuer, jwks: JWKSKeySource
) -> None:
    issuer.metadata_body = []
    assert await jwks.key("ec1") is None
    assert issuer.jwks_hits == 0


class Background:
    """JWKSKeySource.run() as a task, with a way to wait for the issuer to see it."""

    def __init__(self, keys: JWKSKeySource) -> None:
        self.keys = keys
        self.task = asyncio.create_task(keys.run())

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            while not condition():
                assert not self.task.done(), "the background refresh has stopped"
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.keys.close()


@pytest.fixture
async def background(issuer: FakeIssuer, clock: Clock) -> AsyncIterator[Background]:
    running = Background(
        JWKSKeySource(issuer.url, refresh_interval=0.01, min_refetch_interval=0.0, timeout=2.0)
    )
    yield running
    await running.stop()


@pytest.mark.parametrize(
    "failure",
    [
        "jwks-500",
        "jwks-null",
    ],
)
async def test_the_background_refresh_survives_a_failed_fetch(
    issuer: FakeIssuer, background: Background, failure: str
) -> None:
    keys = background.keys
    await background.until(lambda: keys.fetches >= 1)
    if failure == "jwks-500":
        issuer.jwks_status = 500
    else:
        issuer.jwks_body = None
    hits = issuer.jwks_hits
    await background.until(lambda: issuer.jwks_hits >= hits + 2)
    assert await keys.key("ec1") is not None, "the cached key was dropped"
    # the issuer recovers with a rotated key: the background refresh picks it up unaided
    issuer.jwks_status, issuer.jwks_body = 200, UNSET
    issuer.keys = [public_jwk(ec_key("ec2"), "ec2", "ES256")]
    await background.until(lambda: bool(issuer.kids_served) and issuer.kids_served[-1] == ["ec2"])
    await background.until(lambda: "ec2" in keys._keys)


async def test_the_background_refresh_survives_bad_metadata(
    issuer: FakeIssuer, background: Background
) -> None:
    issuer.metadata_body = ["maintenance"]
    await background.until(lambda: issuer.metadata_hits >= 2)
    issuer.metadata_body = UNSET
    await background.until(lambda: "ec1" in background.keys._keys)


# --- aiohttp layer ---------------------------------------------------------------------------


@dataclass
class Api:
    """A protected app under test, and the claims its handler saw."""

    client: TestClient[web.Request, web.Application]
    seen: list[dict[str, Any]]


@pytest.fixture
async def api(aiohttp_client: AiohttpClient, validator: TokenValidator) -> Api:
    seen: list[dict[str, Any]] = []

    @require_scope("photos:read")
    async def photos(request: web.Request) -> web.Response:
        seen.append(claims(request))
        return web.json_response({"sub": claims(request)["sub"]})

    @require_scope("photos:read", "photos:write")
    async def upload(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[error_middleware()])
    app[VALIDATOR] = validator
    app.router.add_get("/photos", photos)
    app.router.add_post("/photos", upload)
    return Api(await aiohttp_client(app), seen)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(response: ClientResponse) -> str:
    return response.headers["WWW-Authenticate"]


async def test_no_token_is_a_401_bearer_challenge(api: Api) -> None:
    response = await api.client.get("/photos")
    assert response.status == 401
    assert challenge(response).startswith('Bearer realm="')
    # RFC 6750 §3.1: no credentials at all, so no error code or description in the challenge
    assert "error" not in challenge(response)
    assert (await response.json())["error"] == "invalid_token"  # the body still says what is missing
    assert api.seen == []


async def test_a_bad_token_is_a_401_invalid_token_with_a_description(api: Api) -> None:
    response = await api.client.get("/photos", headers=bearer(sign(ec_key("attacker"), kid="ec1")))
    assert response.status == 401
    assert challenge(response).startswith("Bearer ")
    assert 'error="invalid_token"' in challenge(response)
    assert 'error_description="' in challenge(response)
    body = await response.json()
    assert body["error"] == "invalid_token"
    assert body["error_description"]
    assert response.headers["Cache-Control"] == "no-store"
    assert api.seen == []


async def test_a_token_without_the_scope_is_a_403_insufficient_scope(api: Api) -> None:
    token = sign(ec_key("ec1"), token_claims(scope="openid photos:write"))
    response = await api.client.get("/photos", headers=bearer(token))
    assert response.status == 403
    assert 'error="insufficient_scope"' in challenge(response)
    assert 'scope="photos:read"' in challenge(response)
    assert (await response.json())["error"] == "insufficient_scope"
    assert api.seen == []

    # every scope a route names is needed
    response = await api.client.post("/photos", headers=bearer(sign(ec_key("ec1"))))
    assert response.status == 403
    assert 'scope="photos:read photos:write"' in challenge(response)


async def test_a_scope_that_merely_contains_the_needed_one_is_not_enough(api: Api) -> None:
    for scope in ("photos:readonly", "photos", "xphotos:read", ""):
        response = await api.client.get(
            "/photos", headers=bearer(sign(ec_key("ec1"), token_claims(scope=scope)))
        )
        assert response.status == 403, scope


async def test_a_good_token_reaches_the_handler_with_its_claims(api: Api) -> None:
    payload = token_claims(sub="alice")
    response = await api.client.get("/photos", headers=bearer(sign(ec_key("ec1"), payload)))
    assert response.status == 200
    assert await response.json() == {"sub": "alice"}
    assert api.seen == [payload]
    # the auth scheme is case-insensitive (RFC 7235 §2.1)
    response = await api.client.get("/photos", headers={"Authorization": f"bearer {sign(ec_key('ec1'))}"})
    assert response.status == 200


async def test_a_token_in_the_query_string_is_refused(api: Api) -> None:
    good = sign(ec_key("ec1"))
    for headers in ({}, bearer(good)):
        response = await api.client.get("/photos", params={"access_token": good}, headers=headers)
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"
    assert api.seen == []


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "Basic {token}",  # a good token under another scheme is still refused
        "Token {token}",
        "MAC {token}",
        "Bearer",
        "Bearer ",
        "Bearer {token} {token}",
        "{token}",
    ],
)
async def test_an_authorization_header_that_is_not_bearer_is_a_401(api: Api, authorization: str) -> None:
    header = authorization.format(token=sign(ec_key("ec1")))
    response = await api.client.get("/photos", headers={"Authorization": header})
    assert response.status == 401
    assert challenge(response).startswith("Bearer ")
    assert api.seen == []


async def test_parsed_headers_are_kept_only_for_tokens_that_verified(source: DictKeySource) -> None:
    """The header segments of verified tokens are kept parsed (every token of a key shares one);
    a token that fails keeps nothing, however many strangers send, and a kept header verifies
    nothing by itself: each token's signature is still checked."""
    validator = TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=source, cache_size=0)
    for i in range(200):  # made-up headers, and a real header on a token with a bad signature
        await refused(validator, sign(ec_key("ec1"), extra_headers={"x": i}, kid="nobody"))
    forged = sign(ec_key("someone else"))
    assert "signature" in await refused(validator, forged)
    assert validator._headers == {}
    good = sign(ec_key("ec1"))
    await validator.validate(good)
    await validator.validate(sign(ec_key("ec1"), token_claims(jti="another")))
    assert list(validator._headers) == [good.partition(".")[0]]
    # the same header on a forged token: its signature decides
    assert "signature" in await refused(validator, forged)
