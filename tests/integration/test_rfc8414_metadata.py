"""RFC 8414: the metadata document lets a client configure itself, and says only what is true."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

ISSUER = "http://localhost:8000"


async def test_metadata_lists_every_endpoint_and_capability(http: TestClient) -> None:
    response = await http.get("/.well-known/oauth-authorization-server")
    assert response.status == 200
    doc = await response.json()
    assert doc["issuer"] == ISSUER
    assert doc["authorization_endpoint"] == f"{ISSUER}/oauth2/authorize"
    assert doc["token_endpoint"] == f"{ISSUER}/oauth2/token"
    assert doc["jwks_uri"] == f"{ISSUER}/oauth2/jwks"
    assert doc["revocation_endpoint"] == f"{ISSUER}/oauth2/revoke"
    assert doc["introspection_endpoint"] == f"{ISSUER}/oauth2/introspect"
    assert doc["response_types_supported"] == ["code", "code id_token", "token", "id_token", "id_token token"]
    assert doc["response_modes_supported"] == ["query", "fragment", "form_post"]
    assert set(doc["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "implicit",
        "password",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "urn:ietf:params:oauth:grant-type:device_code",
    }
    assert doc["device_authorization_endpoint"] == f"{ISSUER}/oauth2/device_authorization"
    methods = {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
    assert set(doc["token_endpoint_auth_methods_supported"]) == methods
    assert set(doc["revocation_endpoint_auth_methods_supported"]) == methods
    assert set(doc["introspection_endpoint_auth_methods_supported"]) == methods - {"none"}
    for endpoint in ("token_endpoint", "revocation_endpoint", "introspection_endpoint"):
        algs = doc[f"{endpoint}_auth_signing_alg_values_supported"]
        assert "none" not in algs and not any(a.startswith("HS") for a in algs)
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert "photos:read" in doc["scopes_supported"]


async def test_urls_come_from_the_issuer_never_the_host_header(http: TestClient) -> None:
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}
    doc = await (await http.get("/.well-known/oauth-authorization-server", headers=forged)).json()
    assert all("evil" not in str(value) for value in doc.values())
    assert doc["token_endpoint"] == f"{ISSUER}/oauth2/token"


async def test_every_advertised_endpoint_exists(http: TestClient) -> None:
    doc = await (await http.get("/.well-known/oauth-authorization-server")).json()
    for name in ("token_endpoint", "revocation_endpoint", "introspection_endpoint"):
        path = doc[name].removeprefix(ISSUER)
        response = await http.post(path, data={"token": "x"})
        assert response.status in (400, 401), name  # exists, and asks for client authentication
    assert (await http.get(doc["jwks_uri"].removeprefix(ISSUER))).status == 200
