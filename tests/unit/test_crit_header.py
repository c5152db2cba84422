"""Issue 11, defect 10: a JWS ``crit`` header (RFC 7515 §4.1.11) is refused wherever Tessera reads a JWT.

``crit`` lists extensions the recipient MUST understand, or else reject the token. Tessera
understands none, so any ``crit`` is refused: by the resource servers' TokenValidator, by the
authorization server's own verification of its access tokens (introspection), and in a
private_key_jwt client assertion. PyJWT before 2.12 ignored ``crit`` altogether (CVE-2026-32597),
and later versions still accept ``crit: ["b64"]``, an extension Tessera does not use; the checks
here do not rely on the installed PyJWT.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient

from auth_server.registry import Registry
from shared.errors import InvalidToken
from shared.jwt_validation import TokenValidator
from tests.integration.test_private_key_jwt import (
    ISSUER,
    assert_invalid_client,
    assert_token_for,
    client_credentials,
    partner,
)
from tests.integration.test_private_key_jwt import claims as assertion_claims
from tests.support.flow import basic
from tests.unit.test_jwt_validation import (
    AUDIENCE,
    DictKeySource,
    b64url,
    b64url_json,
    ec_key,
    pyjwk,
    segment,
    sign,
    token_claims,
)
from tests.unit.test_jwt_validation import ISSUER as RS_ISSUER

# (crit, the extension headers that go with it)
CRITICAL: list[tuple[list[str], dict[str, Any]]] = [
    (["exp"], {"exp": int(time.time()) + 600}),  # a registered claim name is no JWS extension
    (["b64"], {"b64": True}),  # RFC 7797, which PyJWT supports and Tessera does not use
    (["x-tessera-policy"], {"x-tessera-policy": "require-mfa"}),  # unknown
]
IDS = ["exp", "b64", "unknown"]


def jws(header: dict[str, Any], payload: dict[str, Any], key: Any) -> str:
    """A JWS with exactly this header (``jwt.encode`` would drop ``b64: true``), signed with ``key``."""
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}"
    signature = jwt.get_algorithm_by_name(header["alg"]).sign(signing_input.encode(), key)
    return f"{signing_input}.{b64url(signature)}"


# --- the resource servers' validator -----------------------------------------------------------


@pytest.fixture
def validator() -> TokenValidator:
    keys = DictKeySource({"ec1": pyjwk(ec_key("ec1"), "ec1", "ES256")})
    return TokenValidator(issuer=RS_ISSUER, audience=AUDIENCE, keys=keys)


async def test_the_validator_accepts_the_same_token_without_crit(validator: TokenValidator) -> None:
    assert (await validator.validate(sign(ec_key("ec1"))))["sub"] == "user-42"


@pytest.mark.parametrize(("crit", "extensions"), CRITICAL, ids=IDS)
async def test_the_validator_refuses_any_crit_header(
    validator: TokenValidator, crit: list[str], extensions: dict[str, Any]
) -> None:
    header = {"alg": "ES256", "kid": "ec1", "typ": "at+jwt", "crit": crit, **extensions}
    token = jws(header, token_claims(), ec_key("ec1"))
    assert segment(token, 0) == header
    with pytest.raises(InvalidToken):  # PyJWT >= 2.12 itself refuses exp and unknown ones as malformed
        await validator.validate(token)


# --- the authorization server: introspection of its own access tokens ---------------------------


def _access_token(registry: Registry, client_id: str = "some-client", **extra_headers: Any) -> str:
    """An access token signed with the server's active key, exactly as it issues them, plus headers."""
    key = registry.keyring.active(datetime.now(UTC), registry.settings.signing_alg)
    now = int(time.time())
    payload = {
        "iss": registry.settings.issuer,
        "sub": str(uuid.uuid4()),
        "aud": registry.settings.access_token_audience,
        "client_id": client_id,
        "scope": "photos:read",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    return jws({"alg": key.alg, "kid": key.kid, "typ": "at+jwt", **extra_headers}, payload, key.private_key)


async def _introspector(registry: Registry) -> tuple[str, str]:
    """A client that may introspect (and to which the tokens below are issued: introspection answers
    only for tokens of a registered, approved client)."""
    client, secret = await registry.clients.create(
        name="Introspector",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scope=["warehouse:stats"],
        auth_method="client_secret_basic",
        allow_introspection=True,
    )
    assert secret
    return client.client_id, secret


async def _introspect(http: TestClient, introspector: tuple[str, str], token: str) -> dict[str, Any]:
    response = await http.post("/oauth2/introspect", data={"token": token}, headers=basic(*introspector))
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def test_introspection_reports_the_same_token_without_crit_active(
    http: TestClient, registry: Registry
) -> None:
    introspector = await _introspector(registry)
    assert (await _introspect(http, introspector, _access_token(registry, introspector[0])))["active"] is True


@pytest.mark.parametrize(("crit", "extensions"), CRITICAL, ids=IDS)
async def test_introspection_reports_a_token_with_crit_inactive(
    http: TestClient, registry: Registry, crit: list[str], extensions: dict[str, Any]
) -> None:
    introspector = await _introspector(registry)
    token = _access_token(registry, introspector[0], crit=crit, **extensions)
    assert await _introspect(http, introspector, token) == {"active": False}
    assert await registry.access_tokens.verify(token, audience=None) is None


# --- the authorization server: private_key_jwt client assertions --------------------------------


async def test_an_assertion_without_crit_authenticates(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    assertion = jwt.encode(
        assertion_claims(client.client_id, aud=ISSUER),
        key.private,
        algorithm=key.alg,
        headers={"kid": key.kid},
    )
    await assert_token_for(await client_credentials(http, assertion), registry, client)


@pytest.mark.parametrize(("crit", "extensions"), CRITICAL, ids=IDS)
async def test_an_assertion_with_crit_is_refused(
    http: TestClient, registry: Registry, crit: list[str], extensions: dict[str, Any]
) -> None:
    client, key = await partner(registry)
    header = {"alg": key.alg, "typ": "JWT", "kid": key.kid, "crit": crit, **extensions}
    assertion = jws(header, assertion_claims(client.client_id, aud=ISSUER), key.private)
    await assert_invalid_client(await client_credentials(http, assertion))
