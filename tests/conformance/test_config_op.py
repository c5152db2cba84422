"""The OpenID Foundation's Config OP plan (``oidcc-config-certification-test-plan``): its one
module, ``oidcc-discovery-endpoint-verification``, split into a test per check it makes (each named
after the suite's condition), plus the ID-token and userinfo signing modules of the Dynamic plan
(``oidcc-idtoken-rs256``, ``oidcc-userinfo-rs256``), which check the keys discovery points to.

The issuer checks run against a server on a real port, whose issuer is the URL it is reached at
(Discovery §4.3: the issuer in the document MUST be the one the configuration was fetched for).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
from aiohttp.test_utils import TestClient

from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.conformance.support import (
    DISCOVERY,
    ISSUER,
    RFC8414,
    code_flow,
    jwks,
    openid_client,
    userinfo,
    verify_id_token,
)
from tests.support.servers import LiveServer

# Discovery 1.0 §3: REQUIRED (and the RECOMMENDED ones Tessera has)
REQUIRED = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "response_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
)
RECOMMENDED = ("userinfo_endpoint", "scopes_supported", "claims_supported")
ENDPOINTS = (
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
    "end_session_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
)


async def _document(http: TestClient) -> dict[str, Any]:
    response = await http.get(DISCOVERY)
    assert response.status == 200
    assert response.content_type == "application/json"
    document: dict[str, Any] = await response.json()
    return document


async def test_oidcc_discovery_endpoint_verification(live_server: LiveServer) -> None:
    """OP-Discovery-Config: fetched at {issuer}/.well-known/openid-configuration (Discovery §4),
    the issuer is exactly that issuer (§4.3, CheckDiscEndpointIssuer), the RFC 8414 document says
    the same, and every endpoint is on the issuer's origin."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{live_server.url}{DISCOVERY}") as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            document: dict[str, Any] = await response.json()
        async with session.get(f"{live_server.url}{RFC8414}") as response:
            oauth: dict[str, Any] = await response.json()
        assert document["issuer"] == live_server.url
        assert oauth == document  # one document, at both well-known paths
        for name in REQUIRED + RECOMMENDED:
            assert name in document, name
        origin = urlsplit(live_server.url)
        for name in ENDPOINTS:
            parts = urlsplit(document[name])
            # CheckDiscEndpointAllEndpointsAreHttps: the issuer's scheme (https in production)
            assert (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc), name
        # each endpoint answers at the advertised URL (not 404)
        async with session.get(document["jwks_uri"]) as response:
            assert response.status == 200
        async with session.get(document["userinfo_endpoint"]) as response:
            assert response.status == 401
        async with session.post(document["token_endpoint"], data={}) as response:
            assert response.status in (400, 401)
        async with session.get(document["authorization_endpoint"], allow_redirects=False) as response:
            assert response.status == 400
        async with session.get(document["end_session_endpoint"], allow_redirects=False) as response:
            assert response.status != 404


async def test_oidcc_discovery_issuer_matches_id_tokens(
    http: TestClient, registry: Registry, member: User
) -> None:
    """ "Discovered issuer matches ID Token iss value" (Discovery §4.3, Core §3.1.3.7)."""
    document = await _document(http)
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member)
    assert login.id_token["iss"] == document["issuer"] == ISSUER


async def test_oidcc_discovery_scopes_supported_contains_openid(http: TestClient) -> None:
    """CheckDiscEndpointScopesSupportedContainsOpenId; plus the OpenID scopes Tessera serves and the
    configured API scopes."""
    scopes = set((await _document(http))["scopes_supported"])
    assert {"openid", "profile", "email", "offline_access"} <= scopes
    assert {"photos:read", "photos:write"} <= scopes


async def test_oidcc_discovery_response_types_supported(http: TestClient) -> None:
    """OIDCCCheckDiscEndpointResponseTypesSupported: code, id_token and id_token token (Discovery §3:
    a dynamic OP MUST support all three), and what is served and only that."""
    document = await _document(http)
    response_types = document["response_types_supported"]
    assert {"code", "id_token", "id_token token"} <= set(response_types)
    assert set(response_types) <= {"code", "token", "id_token", "id_token token", "code id_token"}
    assert {"query", "fragment", "form_post"} == set(document["response_modes_supported"])


async def test_oidcc_discovery_subject_types_supported(http: TestClient) -> None:
    """OIDCCCheckDiscEndpointSubjectTypesSupported: only public and pairwise."""
    assert set((await _document(http))["subject_types_supported"]) == {"public", "pairwise"}


async def test_oidcc_discovery_id_token_signing_alg_values_supported(http: TestClient) -> None:
    """OIDCCCheckDiscEndpointIdTokenSigningAlgValuesSupported: RS256 MUST be there (Discovery §3);
    ES256 too; never none."""
    document = await _document(http)
    algs = document["id_token_signing_alg_values_supported"]
    assert "RS256" in algs and "ES256" in algs and "none" not in algs
    assert "none" not in document["userinfo_signing_alg_values_supported"]


async def test_oidcc_discovery_claims_parameter_supported(http: TestClient) -> None:
    """CheckDiscEndpointClaimsParameterSupported, OP-Discovery-claims_supported."""
    document = await _document(http)
    assert document["claims_parameter_supported"] is True
    claims = set(document["claims_supported"])
    assert {
        "sub",
        "iss",
        "auth_time",
        "acr",
        "name",
        "nickname",
        "picture",
        "email",
        "email_verified",
    } <= claims
    assert {"address", "phone_number"}.isdisjoint(claims)  # only what is served


async def test_oidcc_discovery_other_metadata(http: TestClient) -> None:
    """What else the issue lists: prompt values, grant types, logout support, no request objects."""
    document = await _document(http)
    assert {"none", "login", "consent"} <= set(document["prompt_values_supported"])
    assert {"authorization_code", "refresh_token", "implicit"} <= set(document["grant_types_supported"])
    assert {"client_secret_basic", "client_secret_post"} <= set(
        document["token_endpoint_auth_methods_supported"]
    )
    assert document["backchannel_logout_supported"] is True
    assert document["backchannel_logout_session_supported"] is True
    assert document["request_parameter_supported"] is False
    assert document["request_uri_parameter_supported"] is False
    assert document["code_challenge_methods_supported"] == ["S256"]


async def test_oidcc_discovery_jwks(http: TestClient) -> None:
    """OP-Discovery-jwks_uri, OP-Discovery-JWKs (CheckJwksUri, ValidateServerJWKs): the JWK Set at
    jwks_uri holds public signing keys only, each with a unique kid: an RS256 (RSA) key for ID
    tokens and an ES256 (P-256) key."""
    keys = (await jwks(http))["keys"]
    kids = [key["kid"] for key in keys]
    assert len(kids) == len(set(kids))
    private = {"d", "p", "q", "dp", "dq", "qi", "k"}
    for key in keys:
        assert not private & set(key), key["kid"]
        assert key.get("use", "sig") == "sig"
        jwt.PyJWK(key)  # each parses as a key for its algorithm
    by_alg = {key["alg"]: key for key in keys}
    assert by_alg["RS256"]["kty"] == "RSA"
    assert (by_alg["ES256"]["kty"], by_alg["ES256"]["crv"]) == ("EC", "P-256")


async def test_oidcc_idtoken_rs256(http: TestClient, registry: Registry, member: User) -> None:
    """oidcc-idtoken-rs256: a client registered for RS256 gets RS256 ID tokens, verified with the
    published RSA key."""
    client, secret = await openid_client(registry, id_token_signed_response_alg="RS256")
    login = await code_flow(http, client, secret, member)
    assert jwt.get_unverified_header(login.tokens["id_token"])["alg"] == "RS256"


async def test_oidcc_idtoken_es256(http: TestClient, registry: Registry, member: User) -> None:
    """A client registered for ES256 gets ES256 ID tokens, verified with the published EC key."""
    client, secret = await openid_client(registry, id_token_signed_response_alg="ES256")
    login = await code_flow(http, client, secret, member)
    header = jwt.get_unverified_header(login.tokens["id_token"])
    assert header["alg"] == "ES256"
    published = {key["kid"]: key for key in (await jwks(http))["keys"]}
    assert published[header["kid"]]["kty"] == "EC"


async def test_oidcc_userinfo_rs256(http: TestClient, registry: Registry, member: User) -> None:
    """oidcc-userinfo-rs256: userinfo_signed_response_alg=RS256 → application/jwt, signed by a
    published key, with iss and aud (Core §5.3.2) and the same sub as the ID token."""
    client, secret = await openid_client(registry, userinfo_signed_response_alg="RS256")
    login = await code_flow(http, client, secret, member, scope="openid profile")
    response = await userinfo(http, login.tokens["access_token"])
    assert response.status == 200
    assert response.content_type == "application/jwt"
    signed = await response.text()
    header = jwt.get_unverified_header(signed)
    assert header["alg"] == "RS256"
    key = jwt.PyJWKSet.from_dict(await jwks(http))[header["kid"]]
    claims = jwt.decode(signed, key, algorithms=["RS256"], audience=client.client_id, issuer=ISSUER)
    assert claims["sub"] == login.id_token["sub"]
    assert claims["nickname"] == "小美"


async def test_id_token_verifies_only_with_its_own_algorithm(
    http: TestClient, registry: Registry, member: User
) -> None:
    """The published RS256 key does not verify an ES256 ID token (alg/kid are bound)."""
    client, secret = await openid_client(registry, id_token_signed_response_alg="ES256")
    login = await code_flow(http, client, secret, member)
    rsa = next(key for key in (await jwks(http))["keys"] if key["alg"] == "RS256")
    try:
        jwt.decode(login.tokens["id_token"], jwt.PyJWK(rsa), algorithms=["RS256"], audience=client.client_id)
    except jwt.InvalidTokenError:
        pass
    else:
        raise AssertionError("an ES256 ID token verified with the RS256 key")
    await verify_id_token(http, login.tokens["id_token"], client, nonce=login.nonce)
