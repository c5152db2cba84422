"""shared.jwt_validation.RevocationList and TokenValidator(revocations=...): issue 11, defect 5.

The list is pulled from a small in-process issuer (RFC 8414 metadata naming its
``tessera_revocation_list_uri``), so every test here exercises the real HTTP client code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp.plugin import AiohttpServer

from shared.errors import InvalidToken
from shared.jwt_validation import RevocationList, TokenValidator
from tests.unit.test_jwt_validation import AUDIENCE, DictKeySource, ec_key, pyjwk, sign, token_claims


@dataclass
class ListingIssuer:
    """Metadata plus a revocation list, with ETags, and switches to make it misbehave."""

    url: str = ""
    revoked: dict[str, int] = field(default_factory=dict)
    status: int = 200
    body: bytes | None = None  # raw body to serve instead of the list
    advertise: bool = True
    issuer_override: str | None = None
    hits: int = 0
    conditional_hits: int = 0

    def document(self) -> bytes:
        return json.dumps(
            {
                "issuer": self.issuer_override or self.url,
                "generated_at": int(time.time()),
                "next_update": int(time.time()) + 1,
                "revoked": [{"jti": jti, "exp": exp} for jti, exp in self.revoked.items()],
            }
        ).encode()

    async def metadata(self, request: web.Request) -> web.Response:
        document: dict[str, Any] = {"issuer": self.url, "jwks_uri": f"{self.url}/jwks"}
        if self.advertise:
            document["tessera_revocation_list_uri"] = f"{self.url}/revoked"
        return web.json_response(document)

    async def listing(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.status != 200:
            return web.json_response({"error": "server_error"}, status=self.status)
        body = self.body if self.body is not None else self.document()
        etag = f'"{hashlib.sha256(json.dumps(sorted(self.revoked)).encode()).hexdigest()[:16]}"'
        if request.headers.get("If-None-Match") == etag:
            self.conditional_hits += 1
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type="application/json", headers={"ETag": etag})


@pytest.fixture
async def issuer(aiohttp_server: AiohttpServer) -> ListingIssuer:
    fake = ListingIssuer()
    app = web.Application()
    app.router.add_get("/.well-known/oauth-authorization-server", fake.metadata)
    app.router.add_get("/revoked", fake.listing)
    server = await aiohttp_server(app)
    fake.url = f"http://{server.host}:{server.port}"
    return fake


@pytest.fixture
async def revocations(issuer: ListingIssuer) -> AsyncIterator[RevocationList]:
    found = RevocationList(issuer.url, refresh_interval=0.05, timeout=2.0)
    yield found
    await found.close()


def _validator(
    issuer: ListingIssuer, revocations: RevocationList | None
) -> tuple[TokenValidator, DictKeySource]:
    keys = DictKeySource({"ec1": pyjwk(ec_key("ec1"), "ec1", "ES256")})
    validator = TokenValidator(issuer=issuer.url, audience=AUDIENCE, keys=keys, revocations=revocations)
    return validator, keys


async def test_a_cached_verified_token_is_refused_once_revoked(
    issuer: ListingIssuer, revocations: RevocationList
) -> None:
    validator, keys = _validator(issuer, revocations)
    claims = token_claims(iss=issuer.url)
    token = sign(ec_key("ec1"), claims)
    assert await revocations.refresh()
    await validator.validate(token)
    await validator.validate(token)
    assert keys.lookups == ["ec1"]  # the second answer came from the verified-token cache
    issuer.revoked[claims["jti"]] = claims["exp"]
    assert await revocations.refresh()
    with pytest.raises(InvalidToken) as caught:
        await validator.validate(token)
    assert caught.value.description == "The access token has been revoked."
    assert keys.lookups == ["ec1"]  # refused on the cached path, without verifying again
    other = sign(ec_key("ec1"), token_claims(iss=issuer.url))
    assert (await validator.validate(other))["sub"] == "user-42"  # only that jti


async def test_a_revoked_token_is_refused_without_the_cache_too(
    issuer: ListingIssuer, revocations: RevocationList
) -> None:
    keys = DictKeySource({"ec1": pyjwk(ec_key("ec1"), "ec1", "ES256")})
    validator = TokenValidator(
        issuer=issuer.url, audience=AUDIENCE, keys=keys, cache_size=0, revocations=revocations
    )
    claims = token_claims(iss=issuer.url)
    issuer.revoked[claims["jti"]] = claims["exp"]
    assert await revocations.refresh()
    with pytest.raises(InvalidToken, match="revoked"):
        await validator.validate(sign(ec_key("ec1"), claims))


async def test_the_background_refresh_picks_up_a_revocation(
    issuer: ListingIssuer, revocations: RevocationList
) -> None:
    validator, _ = _validator(issuer, revocations)
    claims = token_claims(iss=issuer.url)
    token = sign(ec_key("ec1"), claims)
    running = revocations.cleanup_ctx(web.Application())
    await running.__anext__()
    try:
        await validator.validate(token)
        issuer.revoked[claims["jti"]] = claims["exp"]
        for _ in range(500):  # at most 5 s; the refresh runs every 0.05 s
            if revocations.is_revoked(claims["jti"]):
                break
            await asyncio.sleep(0.01)
        with pytest.raises(InvalidToken, match="revoked"):
            await validator.validate(token)
    finally:
        with pytest.raises(StopAsyncIteration):
            await running.__anext__()


async def test_an_unchanged_list_costs_a_304(issuer: ListingIssuer, revocations: RevocationList) -> None:
    issuer.revoked["a"] = int(time.time()) + 600
    assert await revocations.refresh()
    assert revocations.fetches == 1 and revocations.is_revoked("a")
    assert await revocations.refresh()
    assert await revocations.refresh()
    assert (revocations.fetches, issuer.conditional_hits) == (1, 2)
    assert revocations.is_revoked("a")
    issuer.revoked["b"] = int(time.time()) + 600
    assert await revocations.refresh()
    assert revocations.fetches == 2 and revocations.is_revoked("b")


async def test_entries_dropped_from_the_list_are_dropped_here(
    issuer: ListingIssuer, revocations: RevocationList
) -> None:
    issuer.revoked = {"a": int(time.time()) + 600, "b": int(time.time()) + 600}
    assert await revocations.refresh()
    del issuer.revoked["a"]
    assert await revocations.refresh()
    assert not revocations.is_revoked("a") and revocations.is_revoked("b") and revocations.size == 1


async def test_a_failed_fetch_keeps_the_last_list_and_warns(
    issuer: ListingIssuer, revocations: RevocationList, caplog: pytest.LogCaptureFixture
) -> None:
    issuer.revoked["a"] = int(time.time()) + 600
    assert await revocations.refresh()
    issuer.status = 503
    await asyncio.sleep(0.02)
    with caplog.at_level(logging.WARNING, logger="tessera.jwt_validation"):
        assert not await revocations.refresh()
        assert not await revocations.refresh()
    assert revocations.is_revoked("a")  # fail open, with what was known
    assert revocations.failures == 2
    warnings = [r for r in caplog.records if "revocation list" in r.getMessage()]
    assert len(warnings) == 1  # not once per poll
    stale = revocations.age
    assert stale is not None and stale >= 0.02
    issuer.status = 200
    assert await revocations.refresh()
    fresh = revocations.age
    assert fresh is not None and fresh < stale


async def test_age_is_none_until_a_first_good_fetch(
    issuer: ListingIssuer, revocations: RevocationList
) -> None:
    issuer.status = 500
    assert not await revocations.refresh()
    assert revocations.age is None and revocations.size == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"revoked": []}',  # names no issuer
        b'{"issuer": "ISSUER", "revoked": {"a": 1}}',
        b'{"issuer": "ISSUER", "revoked": [{"exp": 1}]}',
        b'{"issuer": "ISSUER", "revoked": [{"jti": 5, "exp": 1}]}',
        b'{"issuer": "ISSUER", "revoked": ["a"]}',
        b'{"issuer": "ISSUER", "revoked": [{"jti": ["a"], "exp": 1}]}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["junk", "array", "no-issuer", "object", "no-jti", "int-jti", "bare", "list-jti", "deep"],
)
async def test_a_malformed_list_is_refused_whole(
    issuer: ListingIssuer, revocations: RevocationList, body: bytes
) -> None:
    issuer.revoked["a"] = int(time.time()) + 600
    assert await revocations.refresh()
    issuer.revoked["b"] = int(time.time()) + 600  # a new ETag, so a body is served
    issuer.body = body.replace(b"ISSUER", issuer.url.encode())
    assert not await revocations.refresh()
    assert revocations.is_revoked("a") and not revocations.is_revoked("b")


async def test_a_list_naming_another_issuer_is_refused(
    issuer: ListingIssuer, revocations: RevocationList
) -> None:
    issuer.issuer_override = "https://evil.example"
    issuer.revoked["a"] = int(time.time()) + 600
    assert not await revocations.refresh()
    assert not revocations.is_revoked("a")


async def test_the_list_is_bounded_in_entries_and_bytes(issuer: ListingIssuer) -> None:
    issuer.revoked = {f"jti-{n}": int(time.time()) + 600 for n in range(3)}
    few = RevocationList(issuer.url, max_entries=2)
    small = RevocationList(issuer.url, url=f"{issuer.url}/revoked", max_bytes=64)
    enough = RevocationList(issuer.url, max_entries=3)
    try:
        assert not await few.refresh() and few.size == 0
        assert not await small.refresh() and small.size == 0
        assert await enough.refresh() and enough.size == 3
    finally:
        for revocations in (few, small, enough):
            await revocations.close()


async def test_an_issuer_without_a_revocation_list_is_a_failed_fetch(
    issuer: ListingIssuer, revocations: RevocationList
) -> None:
    issuer.advertise = False
    assert not await revocations.refresh()
    assert issuer.hits == 0


async def test_an_explicit_url_skips_discovery(issuer: ListingIssuer) -> None:
    issuer.advertise = False
    issuer.revoked["a"] = int(time.time()) + 600
    revocations = RevocationList(issuer.url, url=f"{issuer.url}/revoked")
    try:
        assert await revocations.refresh() and revocations.is_revoked("a")
    finally:
        await revocations.close()


def test_a_revocation_list_needs_the_jti_claim_required() -> None:
    with pytest.raises(ValueError, match="jti"):
        TokenValidator(
            issuer="https://i.example",
            audience=AUDIENCE,
            keys=DictKeySource({}),
            required_claims=("iss", "sub", "aud", "exp"),
            revocations=RevocationList("https://i.example"),
        )


async def test_a_revoked_grant_revokes_every_token_issued_from_it(
    issuer: ListingIssuer, revocations: RevocationList
) -> None:
    issuer.body = json.dumps(
        {
            "issuer": issuer.url,
            "generated_at": int(time.time()),
            "next_update": int(time.time()) + 1,
            "revoked": [{"grant_id": "family-1", "exp": int(time.time()) + 60}, {"jti": "j-1", "exp": 1}],
        }
    ).encode()
    assert await revocations.refresh()
    assert revocations.is_revoked("any-token", "family-1")
    assert revocations.is_revoked("j-1")
    assert not revocations.is_revoked("any-token", "family-2")
    assert not revocations.is_revoked("family-1")  # a grant id is not a jti
    assert revocations.size == 2
