"""The pure rules of client ID metadata documents (draft-ietf-oauth-client-id-metadata-document):
the Client Identifier URL (§3), the document (§4, §4.1.1), its HTTP cache lifetime (§4.3), the
host allow-list, and the bound on ids a lookup is worth."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from auth_server.client_documents import (
    MAX_CACHE_SECONDS,
    MIN_CACHE_SECONDS,
    OPERATOR_ONLY,
    ClientDocumentRefused,
    cache_lifetime,
    check_client_id_url,
    client_of,
    document_host,
    host_allowed,
)
from auth_server.clients import MAX_URL_CLIENT_ID, plausible_client_id
from auth_server.endpoints.registration import OPERATOR_ONLY as REGISTRATION_OPERATOR_ONLY
from auth_server.settings import Settings

URL = "https://agent.example/oauth/client.json"
PRODUCTION = Settings.from_env(
    {
        "TESSERA_ISSUER": "https://auth.example",
        "TESSERA_KEY_ENCRYPTION_KEY": "q5gFjL0Vd8H0b8bJ5xO3e1iE0P6m0Q2j4cQK0Hk7zYI",
        "TESSERA_DATABASE_URL": "postgresql://db.example/tessera",
        "TESSERA_REDIS_URL": "redis://redis.example/0",
        "TESSERA_CLIENT_ID_METADATA_DOCUMENTS": "on",
        "TESSERA_OPEN_SCOPES": "openid profile photos:read",
    }
)


def document(**changes: Any) -> dict[str, Any]:
    return {
        "client_id": URL,
        "client_name": "Agent",
        "redirect_uris": ["https://agent.example/callback", "http://127.0.0.1/callback"],
        **changes,
    }


@pytest.mark.parametrize(
    "url",
    [
        URL,
        "https://agent.example:8443/client",
        "https://agent.example/a/b/c.json",
        "https://xn--bcher-kva.example/client.json",
        "https://agent.example/.well-known/client",  # a segment starting with a dot is no dot segment
    ],
)
def test_client_identifier_urls(url: str) -> None:
    assert check_client_id_url(url, development=False).hostname is not None
    assert plausible_client_id(url, urls=True)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://agent.example/client.json", "must use https"),
        ("http://127.0.0.1:9000/client.json", "must use https"),  # plain http only in development
        ("https://user@agent.example/client.json", "user information"),
        ("https://agent.example", "must have a path"),
        ("https://agent.example/", "must have a path"),
        ("https://agent.example/./client.json", ". or .."),
        ("https://agent.example/a/../client.json", ". or .."),
        ("https://agent.example/a/%2E%2e/client.json", ". or .."),
        ("https://agent.example/client.json#x", "fragment"),
        ("https://agent.example/client.json#", "fragment"),
        ("https://agent.example/client.json?x=1", "query"),
        ("https://agent.example/client.json?", "query"),
        ("https://agent.example./client.json", "trailing dot"),
        ("https:///client.json", "must name a host"),
        ("https://agent.example:99999/client.json", "not a valid URL"),
        ("https://agent.example/cl ient.json", "printable ASCII"),
        ("https://bücher.example/client.json", "printable ASCII"),
        ("https://agent.example\\@evil.example/client.json", "backslashes"),
        ("https://agent.example/" + "a" * MAX_URL_CLIENT_ID, "longer than"),
    ],
)
def test_urls_that_are_not_client_identifier_urls(url: str, words: str) -> None:
    with pytest.raises(ClientDocumentRefused) as refused:
        check_client_id_url(url, development=False)
    assert refused.value.error == "invalid_client" and refused.value.status == 400
    assert words in refused.value.description
    assert "WWW-Authenticate" not in refused.value.headers()  # a page must not ask for a password


def test_a_development_issuer_accepts_plain_http_on_loopback_only() -> None:
    assert check_client_id_url("http://127.0.0.1:9000/client.json", development=True).port == 9000
    assert check_client_id_url("http://localhost:9000/client.json", development=True)
    with pytest.raises(ClientDocumentRefused, match="must use https"):
        check_client_id_url("http://agent.example/client.json", development=True)


def test_url_ids_are_plausible_only_when_the_feature_is_on_and_within_the_bound() -> None:
    assert plausible_client_id("AbC_123-xyz")
    assert not plausible_client_id(URL)
    assert plausible_client_id(URL, urls=True)
    longest = "https://agent.example/" + "a" * (MAX_URL_CLIENT_ID - len("https://agent.example/"))
    assert plausible_client_id(longest, urls=True)
    assert not plausible_client_id(longest + "a", urls=True)
    assert not plausible_client_id("https://agent.example/a b", urls=True)
    assert not plausible_client_id("ftp://agent.example/client", urls=True)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 300.0),
        ("max-age=600", 600.0),
        ('public, max-age="900"', 900.0),
        ("max-age=5", MIN_CACHE_SECONDS),  # the floor
        ("max-age=0", MIN_CACHE_SECONDS),
        ("max-age=31536000", MAX_CACHE_SECONDS),  # the ceiling
        ("max-age=soon", MIN_CACHE_SECONDS),  # invalid: stale (RFC 9111 §4.2.1)
        ("no-store", None),
        ("max-age=600, no-store", None),
        ("no-cache", None),
        ("private, max-age=120", 120.0),
    ],
)
def test_the_cache_lifetime_follows_cache_control_within_bounds(
    header: str | None, seconds: float | None
) -> None:
    headers = CIMultiDict[str]() if header is None else CIMultiDict({"Cache-Control": header})
    assert cache_lifetime(headers) == seconds


def test_the_age_of_a_cached_answer_counts() -> None:
    assert cache_lifetime(CIMultiDict({"Cache-Control": "max-age=600", "Age": "200"})) == 400.0
    both = CIMultiDict([("Cache-Control", "max-age=600"), ("Cache-Control", "no-store")])
    assert cache_lifetime(both) is None


def test_the_host_allow_list() -> None:
    assert host_allowed("anything.example", ())
    allowed = ("agents.example", "*.trusted.example")
    assert host_allowed("agents.example", allowed)
    assert host_allowed("a.trusted.example", allowed) and host_allowed("a.b.trusted.example", allowed)
    assert not host_allowed("trusted.example", allowed)  # *. is for subdomains only
    assert not host_allowed("eviltrusted.example", allowed)
    assert not host_allowed("sub.agents.example", allowed)


def test_a_valid_document_describes_a_public_client_with_pkce() -> None:
    client = client_of(PRODUCTION, URL, document(scope="openid photos:read photos:write admin:read"))
    assert client.client_id == URL and client.client_name == "Agent"
    assert client.token_endpoint_auth_method == "none" and client.is_public and client.require_pkce
    assert client.secret_hash is None and not client.first_party and not client.allow_introspection
    assert client.registered_via == "metadata_document" and client.from_metadata_document
    # narrowed to the scopes open to self-registered clients: never photos:write, never an admin scope
    assert client.scope == ("openid", "photos:read")
    assert client.grant_types == ("authorization_code",) and client.response_types == ("code",)
    assert document_host(client) == "agent.example"


def test_a_document_that_names_little_gets_the_defaults() -> None:
    client = client_of(PRODUCTION, URL, {"client_id": URL, "redirect_uris": ["https://agent.example/cb"]})
    assert client.client_name == "agent.example"  # its host, when it names itself nothing
    assert client.scope == PRODUCTION.open_scopes
    wider = document(grant_types=["authorization_code", "refresh_token", "client_credentials", "implicit"])
    assert client_of(PRODUCTION, URL, wider).grant_types == ("authorization_code", "refresh_token")


def test_a_private_key_jwt_document_needs_its_keys() -> None:
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "k"}]}
    client = client_of(
        PRODUCTION,
        URL,
        document(
            token_endpoint_auth_method="private_key_jwt",
            jwks=jwks,
            redirect_uris=["https://agent.example/cb"],
        ),
    )
    assert client.token_endpoint_auth_method == "private_key_jwt" and client.jwks == jwks
    with pytest.raises(ClientDocumentRefused, match="exactly one of a JWKS or a jwks_uri"):
        client_of(PRODUCTION, URL, document(token_endpoint_auth_method="private_key_jwt"))
    private = {"keys": [{**jwks["keys"][0], "d": "secret"}]}
    with pytest.raises(ClientDocumentRefused, match="public keys only"):
        client_of(PRODUCTION, URL, document(token_endpoint_auth_method="private_key_jwt", jwks=private))


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"client_id": "https://agent.example/other.json"}, "client_id equal to its URL"),
        ({"client_id": URL.upper()}, "client_id equal to its URL"),
        ({"client_id": None}, "client_id equal to its URL"),
        ({"client_secret": "s3cret"}, "must not contain client_secret"),
        ({"client_secret_expires_at": 0}, "must not contain client_secret_expires_at"),
        ({"token_endpoint_auth_method": "client_secret_post"}, "none or private_key_jwt only"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "none or private_key_jwt only"),
        ({"require_pkce": False}, "require_pkce"),
        ({"allow_introspection": True}, "allow_introspection"),
        ({"backchannel_logout_uri": "https://agent.example/logout"}, "backchannel_logout_uri"),
        ({"sector_identifier_uri": "https://agent.example/sector.json"}, "sector_identifier_uri"),
        ({"grant_types": ["client_credentials"]}, "must include authorization_code"),
        ({"redirect_uris": ["https://evil.example/callback"]}, "own origin"),
        ({"redirect_uris": ["https://agent.example:444/callback"]}, "own origin"),
        ({"post_logout_redirect_uris": ["https://evil.example/bye"]}, "own origin"),
        ({"redirect_uris": ["https://agent.example/cb#x"]}, "fragment"),
        ({"redirect_uris": "https://agent.example/cb"}, "array of strings"),
        ({"redirect_uris": []}, "at least one redirect URI"),
        ({"logo_uri": "javascript:alert(1)"}, "logo_uri"),
    ],
)
def test_documents_that_are_refused(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ClientDocumentRefused) as refused:
        client_of(PRODUCTION, URL, document(**changes))
    assert words in refused.value.description
    assert "s3cret" not in refused.value.description


def test_the_operator_only_fields_are_those_of_dynamic_registration() -> None:
    assert OPERATOR_ONLY == REGISTRATION_OPERATOR_ONLY
