"""RFC 8414: the metadata document lets a client configure itself."""

from __future__ import annotations

from aiohttp.test_utils import TestClient


async def test_metadata_lists_every_endpoint_and_capability(http: TestClient) -> None:
    response = await http.get("/.well-known/oauth-authorization-server")
    assert response.status == 200
    doc = await response.json()
    assert doc["issuer"] == "http://localhost:8000"
    assert doc["authorization_endpoint"] == "http://localhost:8000/oauth2/authorize"
    assert doc["token_endpoint"] == "http://localhost:8000/oauth2/token"
    assert doc["jwks_uri"] == "http://localhost:8000/oauth2/jwks"
    assert doc["response_types_supported"] == ["code"]
    assert set(doc["grant_types_supported"]) == {"authorization_code", "refresh_token"}
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert "photos:read" in doc["scopes_supported"]
