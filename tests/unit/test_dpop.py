"""shared.dpop (RFC 9449) on its own: thumbprints (RFC 7638), URL normalisation (§4.3), the replay
stores (§11.1), stateless nonces (§8, §9), and a resource server that asks for its nonce."""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from pytest_aiohttp.plugin import AiohttpClient

from shared.dpop import (
    HmacNonces,
    InvalidDPoPProof,
    MemoryReplayStore,
    ProofVerifier,
    UseDPoPNonce,
    is_thumbprint,
    normalize_url,
    thumbprint,
    token_hash,
)
from shared.error_middleware import error_middleware
from shared.errors import InvalidToken, TemporarilyUnavailable
from shared.jwt_validation import PUBLIC_ORIGIN, VALIDATOR, TokenValidator, require_scope
from tests.support.dpop import DPoPKey, unsigned
from tests.unit.test_jwt_validation import AUDIENCE, ISSUER, DictKeySource, ec_key, pyjwk, sign, token_claims

URL = "https://api.example.test/photos"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_thumbprint_of_rfc_7638s_example() -> None:
    """RFC 7638 §3.1: the example RSA key and its thumbprint."""
    key = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
        "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY3"
        "68QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2N"
        "cRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert is_thumbprint(thumbprint(key))
    for bad in (
        "",
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9X",
        "NzbLsXh8uDCcd+6MNwXF4W/7noWXFZAfHkxZsRGC9Xs",
    ):
        assert not is_thumbprint(bad)
    with pytest.raises(ValueError):
        thumbprint({"kty": "oct", "k": "c2VjcmV0"})


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://api.example.test/photos", URL),
        ("HTTPS://API.Example.TEST/photos", URL),
        ("https://api.example.test:443/photos", URL),
        ("https://api.example.test/photos?x=1#top", URL),
        ("https://api.example.test/%70hotos", URL),
        ("https://api.example.test", "https://api.example.test/"),
        ("http://localhost:80/a%2fb", "http://localhost/a%2Fb"),
        ("http://localhost:8000/token", "http://localhost:8000/token"),
        ("ftp://api.example.test/photos", None),
        ("https://user:pw@api.example.test/photos", None),
        ("https://api.example.test:99999/photos", None),
        ("not a url", None),
    ],
)
def test_urls_are_compared_normalised(url: str, normalized: str | None) -> None:
    assert normalize_url(url) == normalized


async def test_the_memory_store_remembers_until_the_time_is_up_and_never_forgets_early() -> None:
    clock = Clock()
    store = MemoryReplayStore(max_entries=2, clock=clock)
    assert await store.first_use("a", 10)
    assert not await store.first_use("a", 10)
    assert await store.first_use("b", 10)
    with pytest.raises(TemporarilyUnavailable):  # full of live entries: refuse, never evict one
        await store.first_use("c", 10)
    assert not await store.first_use("a", 10)
    clock.now += 11
    assert await store.first_use("c", 10)  # the expired ones made room
    assert await store.first_use("a", 10)  # and may be seen again
    assert len(store) == 2


async def test_nonces_rotate_and_every_replica_accepts_them() -> None:
    clock = Clock()
    one = HmacNonces(b"k" * 32, 300, clock=clock)
    two = HmacNonces(b"k" * 32, 300, clock=clock)
    nonce = await one.current()
    assert await two.valid(nonce)
    clock.now += 300
    assert await two.valid(nonce) and await two.current() != nonce  # the previous step's: still good
    clock.now += 300
    assert not await two.valid(nonce)  # two steps on: stale
    clock.now -= 900
    assert await one.valid(await HmacNonces(b"k" * 32, 300, clock=Clock(clock.now + 300)).current())
    assert not await HmacNonces(b"x" * 32, 300, clock=clock).valid(await one.current())
    with pytest.raises(ValueError):
        HmacNonces(b"short")


async def test_a_verifier_with_nonces_asks_for_one() -> None:
    clock = Clock(time.time())
    nonces = HmacNonces(b"n" * 32, 60, clock=clock)
    verifier = ProofVerifier(nonces=nonces)
    key = DPoPKey()
    with pytest.raises(UseDPoPNonce) as asked:
        await verifier.verify(key.proof("GET", URL), method="GET", url=URL)
    assert asked.value.headers()["DPoP-Nonce"] == await nonces.current()
    proof = await verifier.verify(key.proof("GET", URL, nonce=asked.value.nonce), method="GET", url=URL)
    assert proof.jkt == key.jkt


async def test_the_key_and_the_token_must_match() -> None:
    verifier = ProofVerifier()
    key = DPoPKey()
    proof = key.proof("GET", URL, access_token="the-token")
    with pytest.raises(InvalidDPoPProof):
        await verifier.verify(proof, method="GET", url=URL, access_token="another-token")
    with pytest.raises(InvalidToken):
        await verifier.verify(proof, method="GET", url=URL, access_token="the-token", bound_to=DPoPKey().jkt)
    found = await verifier.verify(proof, method="GET", url=URL, access_token="the-token", bound_to=key.jkt)
    assert found.claims["ath"] == token_hash("the-token")


def test_only_asymmetric_algorithms_can_be_configured() -> None:
    for algorithms in (("HS256",), ("none",), ()):
        with pytest.raises(ValueError):
            ProofVerifier(algorithms=algorithms)


async def test_a_resource_server_can_ask_for_its_nonce(aiohttp_client: AiohttpClient) -> None:
    """§9: nonces are optional at resource servers; one that wants them answers use_dpop_nonce with
    a 401 DPoP challenge and the nonce."""
    nonces = HmacNonces(b"r" * 32, 60)
    source = DictKeySource({"ec1": pyjwk(ec_key("ec1"), "ec1", "ES256")})
    validator = TokenValidator(
        issuer=ISSUER, audience=AUDIENCE, keys=source, proofs=ProofVerifier(nonces=nonces)
    )

    @require_scope("photos:read")
    async def photos(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[error_middleware()])
    app[VALIDATOR] = validator
    app[PUBLIC_ORIGIN] = "https://api.example.test"  # what clients call it at: what proofs name
    app.router.add_get("/photos", photos)
    client = await aiohttp_client(app)
    key = DPoPKey()
    token = sign(ec_key("ec1"), token_claims(cnf={"jkt": key.jkt}))
    url = URL
    headers = {"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", url, access_token=token)}
    response = await client.get("/photos", headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith('DPoP realm="tessera", error="use_dpop_nonce"')
    nonce = response.headers["DPoP-Nonce"]
    headers["DPoP"] = key.proof("GET", url, access_token=token, nonce=nonce)
    assert (await client.get("/photos", headers=headers)).status == 200


# --- review 17: where htu comes from, and the keys a proof may carry ---------------------------


def _warehouse(origin: str | None) -> web.Application:
    """A resource server with one DPoP-capable route; ``origin``: its configured public origin."""
    source = DictKeySource({"ec1": pyjwk(ec_key("ec1"), "ec1", "ES256")})

    @require_scope("photos:read")
    async def photos(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[error_middleware()])
    app[VALIDATOR] = TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=source)
    if origin is not None:
        app[PUBLIC_ORIGIN] = origin
    app.router.add_get("/photos", photos)
    return app


async def test_without_a_public_origin_dpop_is_refused_and_host_never_names_htu(
    aiohttp_client: AiohttpClient,
) -> None:
    """htu is the public URL the API is configured with, never one made from the Host header: a
    client picks that header, so a proof made for another server (any URL) would pass."""
    client = await aiohttp_client(_warehouse(None))
    key = DPoPKey()
    token = sign(ec_key("ec1"), token_claims(cnf={"jkt": key.jkt}))
    other = "http://partner-api.internal/photos"
    for host, url in (
        ("partner-api.internal", other),  # a proof for another server, with the Host to match
        (None, str(client.make_url("/photos"))),  # even the URL the server is reached at
        ("x:notaport", other),  # a Host that is no host: a refusal, never a 500
    ):
        headers = {"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", url, access_token=token)}
        if host is not None:
            headers["Host"] = host
        response = await client.get("/photos", headers=headers)
        assert response.status == 401, (host, await response.text())
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('DPoP realm="tessera", error="invalid_dpop_proof"'), challenge
        assert "no configured public URL" in challenge
    # bearer tokens are not affected
    plain = sign(ec_key("ec1"), token_claims())
    assert (await client.get("/photos", headers={"Authorization": f"Bearer {plain}"})).status == 200


async def test_with_a_public_origin_the_host_header_changes_nothing(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(_warehouse("https://api.example.test"))
    key = DPoPKey()
    token = sign(ec_key("ec1"), token_claims(cnf={"jkt": key.jkt}))
    for host in ("partner-api.internal", "x:notaport"):
        headers = {"Authorization": f"DPoP {token}", "Host": host}
        headers["DPoP"] = key.proof("GET", f"http://{host}/photos", access_token=token)
        response = await client.get("/photos", headers=headers)
        assert response.status == 401 and "another URL" in response.headers["WWW-Authenticate"]
        headers["DPoP"] = key.proof("GET", URL, access_token=token)
        assert (await client.get("/photos", headers=headers)).status == 200


@pytest.mark.parametrize("url", ["http://x:notaport/photos", "ftp://api.example.test/photos", "*", ""])
async def test_a_request_url_that_does_not_normalise_is_a_refused_proof(url: str) -> None:
    """Whatever URL a server hands the verifier, one it cannot normalise refuses the proof (a 401
    or 400), never a ValueError (a 500)."""
    key = DPoPKey()
    with pytest.raises(InvalidDPoPProof):
        await ProofVerifier().verify(key.proof("GET", url), method="GET", url=url)


def _b64int(value: int) -> str:
    return _b64bytes(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _b64bytes(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims() -> dict[str, Any]:
    return {"jti": secrets.token_hex(8), "htm": "GET", "htu": URL, "iat": int(time.time())}


async def test_rsa_keys_need_exponent_65537_and_at_most_4096_bits() -> None:
    """A huge public exponent makes each verification 8-10 times as costly, a huge modulus more:
    only e = 65537 and 2048-4096 bits are taken."""
    n = rsa.generate_private_key(65537, 2048).public_key().public_numbers().n
    huge_e = n - 2 if n % 2 else n - 3
    too_long = (1 << 4100) | secrets.randbits(4099) | 1  # a 4101-bit odd number: its size is the point
    for jwk, words in (
        ({"kty": "RSA", "n": _b64int(n), "e": _b64int(huge_e)}, "65537"),
        ({"kty": "RSA", "n": _b64int(n), "e": _b64int(3)}, "65537"),
        ({"kty": "RSA", "n": _b64int(too_long), "e": "AQAB"}, "at most 4096 bits"),
    ):
        proof = unsigned({"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}, _claims(), b"\x01" * 256)
        with pytest.raises(InvalidDPoPProof) as refused:
            await ProofVerifier().verify(proof, method="GET", url=URL)
        assert words in refused.value.description, refused.value.description
    for bits in (2048, 4096):
        key = DPoPKey("PS256", rsa_bits=bits)
        assert (await ProofVerifier().verify(key.proof("GET", URL), method="GET", url=URL)).jkt == key.jkt


async def test_claims_are_checked_before_the_signature_and_jti_recorded_after_it() -> None:
    """A proof with claims that cannot pass costs no signature verification; a forged proof (claims
    good, signature bad) never spends its jti."""
    verifier = ProofVerifier()
    key = DPoPKey()
    bad = DPoPKey().proof("POST", "https://elsewhere.example/x")
    _, payload, signature = bad.split(".")
    mixed = ".".join((key.proof("GET", URL).split(".")[0], payload, signature))  # key's header, junk sig
    with pytest.raises(InvalidDPoPProof) as refused:
        await verifier.verify(mixed, method="GET", url=URL)
    assert "another HTTP method" in refused.value.description  # not the signature's refusal
    genuine = key.proof("GET", URL, jti="the-jti")
    head, body, _ = genuine.split(".")
    forged = f"{head}.{body}.{_b64bytes(b'x' * 64)}"
    with pytest.raises(InvalidDPoPProof) as refused:
        await verifier.verify(forged, method="GET", url=URL)
    assert "signature" in refused.value.description
    assert len(verifier.replay) == 0  # type: ignore[arg-type]
    assert (await verifier.verify(genuine, method="GET", url=URL)).jti == "the-jti"
    with pytest.raises(InvalidDPoPProof, match="already used"):
        await verifier.verify(genuine, method="GET", url=URL)


# RFC 8032 §5.1.7 leaves small-order public keys to the verifier: under any of these eight points
# (the identity, the point of order 2, two of order 4, four of order 8; their encodings as listed by
# libsodium's and Monocypher's blocklists, Chalkias et al., "Taming the many EdDSAs", 2020) a
# signature R = identity, S = 0 (or a small-order R) verifies for every message.
SMALL_ORDER_ED25519 = (
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
)


@pytest.mark.parametrize("encoded", SMALL_ORDER_ED25519)
async def test_small_order_ed25519_keys_are_refused(encoded: str) -> None:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64bytes(bytes.fromhex(encoded))}
    identity = bytes.fromhex(SMALL_ORDER_ED25519[0])
    # R = identity, S = 0: under the identity key this verifies for any message
    proof = unsigned({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk}, _claims(), identity + bytes(32))
    with pytest.raises(InvalidDPoPProof) as refused:
        await ProofVerifier().verify(proof, method="GET", url=URL)
    assert "small-order" in refused.value.description, refused.value.description


async def test_a_non_canonical_ed25519_key_is_refused() -> None:
    """y = p + 1, the identity written non-canonically (RFC 8032 §5.1.3 says decoding fails)."""
    raw = ((1 << 255) - 19 + 1).to_bytes(32, "little")
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64bytes(raw)}
    proof = unsigned({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk}, _claims(), bytes([1]) + bytes(63))
    with pytest.raises(InvalidDPoPProof):
        await ProofVerifier().verify(proof, method="GET", url=URL)
