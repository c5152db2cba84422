"""The grants without a browser, through an off-the-shelf client library configured from RFC 8414 alone.

Authlib's httpx client is given the client's credentials and nothing but what
``{issuer}/.well-known/oauth-authorization-server`` says: no endpoint path is written here. It runs
the client credentials grant (RFC 6749 §4.4) with both secret-based client authentication methods
(§2.3.1), the resource owner password credentials grant (§4.3) with a refresh (§6), and revokes the
refresh token (RFC 7009), after which the refresh token and the access token issued with it are dead.
Every access token is checked against the published JWK Set as an RFC 9068 JWT.
"""

from __future__ import annotations

import secrets
import time
import warnings
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import jwt
import pytest
from authlib.deprecate import AuthlibDeprecationWarning

from auth_server.clients import Client
from auth_server.crypto import hash_password
from auth_server.schema import SCHEMA
from auth_server.stores.users import User
from tests.support.servers import PASSWORD, LiveServer

# Authlib 1.9 warns, once, when its httpx integration is imported, that it would rather have the
# "httpx2" package; this project depends on httpx. The warning comes at import (collection), where
# no filterwarnings mark applies, so only that one message is silenced, for this import only.
# (authlib.deprecate is imported above first: importing it puts an "always" filter for its
# warnings in front, which would otherwise override the filter added here.)
with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore",
        message="The httpx module is deprecated; please use httpx2",
        category=AuthlibDeprecationWarning,
    )
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

METADATA_PATH = "/.well-known/oauth-authorization-server"  # the one path a client is allowed to know
PARTNER_SCOPE = ("photos:read", "warehouse:stats")  # what the B2B client is registered for
APP_SCOPE = ("photos:read", "photos:write")  # what the first-party app is registered for


async def _metadata(issuer: str) -> dict[str, Any]:
    """The metadata document, checked for what these grants need before anything in it is trusted."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{issuer}{METADATA_PATH}")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    doc: dict[str, Any] = response.json()
    assert doc["issuer"] == issuer  # RFC 8414 §3.3
    for endpoint in ("token_endpoint", "jwks_uri", "revocation_endpoint", "introspection_endpoint"):
        assert urlsplit(doc[endpoint]).netloc == urlsplit(issuer).netloc, endpoint
        assert urlsplit(doc[endpoint]).scheme == urlsplit(issuer).scheme, endpoint
    assert {"client_credentials", "password", "refresh_token"} <= set(doc["grant_types_supported"])
    assert {"client_secret_basic", "client_secret_post"} <= set(doc["token_endpoint_auth_methods_supported"])
    assert "client_secret_basic" in doc["revocation_endpoint_auth_methods_supported"]
    assert set(PARTNER_SCOPE) | set(APP_SCOPE) <= set(doc["scopes_supported"])
    return doc


def _oauth(
    client: Client, secret: str | None, *, method: str | None = None, scope: str | None = None
) -> AsyncOAuth2Client:
    """Authlib's client, authenticating with ``method`` (the registered one unless told otherwise)."""
    method = method or client.token_endpoint_auth_method
    return AsyncOAuth2Client(
        client_id=client.client_id,
        client_secret=secret,
        scope=scope,
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
    )


async def _verified_claims(
    metadata: dict[str, Any], access_token: str, live_server: LiveServer
) -> dict[str, Any]:
    """The access token's claims, its signature checked with a key from the advertised jwks_uri."""
    header = jwt.get_unverified_header(access_token)
    assert header["typ"] == "at+jwt"  # RFC 9068 §2.1
    async with httpx.AsyncClient() as http:
        response = await http.get(metadata["jwks_uri"])
    assert response.status_code == 200, response.text
    matching = [k for k in response.json()["keys"] if k["kid"] == header["kid"]]
    assert len(matching) == 1, "the signing key is not published exactly once in the JWK Set"
    key = jwt.PyJWK(matching[0])
    assert header["alg"] == key.algorithm_name == live_server.settings.signing_alg
    claims: dict[str, Any] = jwt.decode(
        access_token,
        key,
        algorithms=[header["alg"]],
        audience=live_server.settings.access_token_audience,
        issuer=metadata["issuer"],
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]},
    )
    assert claims["aud"] == live_server.settings.access_token_audience
    assert abs(claims["iat"] - time.time()) < 30
    assert claims["exp"] - claims["iat"] == live_server.settings.access_token_ttl
    return claims


async def _refresh_families(database_url: str, client_id: str) -> int:
    """How many refresh-token families the server ever started for this client."""
    connection = await asyncpg.connect(database_url)
    try:
        count: int = await connection.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.refresh_token_families WHERE client_id = $1", client_id
        )
    finally:
        await connection.close()
    return count


async def _partner(
    live_server: LiveServer, auth_method: str, grant_types: tuple[str, ...] = ("client_credentials",)
) -> tuple[Client, str]:
    client, secret = await live_server.registry.clients.create(
        name="Warehouse Partner",
        redirect_uris=[],
        grant_types=list(grant_types),
        scope=list(PARTNER_SCOPE),
        auth_method=auth_method,
    )
    assert secret is not None
    return client, secret


async def _new_user(live_server: LiveServer) -> User:
    return await live_server.registry.users.create(f"user-{secrets.token_hex(5)}", hash_password(PASSWORD))


async def test_client_credentials_with_client_secret_basic(
    live_server: LiveServer, database_url: str
) -> None:
    metadata = await _metadata(live_server.url)
    client, secret = await _partner(live_server, "client_secret_basic")

    oauth = _oauth(client, secret)
    try:
        # No scope asked for: the client gets everything it is registered for.
        token = await oauth.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        assert token["token_type"] == "Bearer"
        assert token["access_token"]
        assert token["expires_in"] == live_server.settings.access_token_ttl
        assert sorted(token["scope"].split()) == sorted(PARTNER_SCOPE)
        assert "refresh_token" not in token  # RFC 6749 §4.4.3
        claims = await _verified_claims(metadata, token["access_token"], live_server)
        assert claims["sub"] == client.client_id  # the client acts on its own behalf
        assert claims["client_id"] == client.client_id
        assert sorted(claims["scope"].split()) == sorted(PARTNER_SCOPE)
        assert "auth_time" not in claims  # no user ever authenticated
        first_jti = claims["jti"]

        # A subset asked for: exactly that subset, in the response and in the token.
        narrow = await oauth.fetch_token(
            metadata["token_endpoint"], grant_type="client_credentials", scope="warehouse:stats"
        )
        assert narrow["scope"] == "warehouse:stats"
        assert "refresh_token" not in narrow
        narrow_claims = await _verified_claims(metadata, narrow["access_token"], live_server)
        assert narrow_claims["scope"] == "warehouse:stats"
        assert narrow_claims["sub"] == client.client_id
        assert narrow_claims["jti"] != first_jti

        # A known scope the client is not registered for, alone, is refused rather than widened.
        with pytest.raises(OAuthError) as refused:
            await oauth.fetch_token(
                metadata["token_endpoint"], grant_type="client_credentials", scope="photos:write"
            )
        assert refused.value.error == "invalid_scope"
    finally:
        await oauth.aclose()

    # The registered method is the only one accepted: the right secret, posted in the body, fails ...
    wrong_method = _oauth(client, secret, method="client_secret_post")
    try:
        with pytest.raises(OAuthError) as refused:
            await wrong_method.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        assert refused.value.error == "invalid_client"
    finally:
        await wrong_method.aclose()
    # ... and so does the registered method with a wrong secret.
    wrong_secret = _oauth(client, secret + "x")
    try:
        with pytest.raises(OAuthError) as refused:
            await wrong_secret.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        assert refused.value.error == "invalid_client"
    finally:
        await wrong_secret.aclose()

    assert await _refresh_families(database_url, client.client_id) == 0  # nothing refreshable was stored


async def test_client_credentials_with_client_secret_post(live_server: LiveServer, database_url: str) -> None:
    metadata = await _metadata(live_server.url)
    # This client may also hold refresh tokens (password grant): client_credentials still issues none.
    client, secret = await _partner(
        live_server, "client_secret_post", ("client_credentials", "password", "refresh_token")
    )

    oauth = _oauth(client, secret)
    try:
        assert oauth.token_endpoint_auth_method == "client_secret_post"
        token = await oauth.fetch_token(
            metadata["token_endpoint"], grant_type="client_credentials", scope="photos:read"
        )
        assert token["token_type"] == "Bearer"
        assert token["scope"] == "photos:read"
        assert "refresh_token" not in token
        claims = await _verified_claims(metadata, token["access_token"], live_server)
        assert claims["sub"] == client.client_id
        assert claims["client_id"] == client.client_id
        assert claims["scope"] == "photos:read"
    finally:
        await oauth.aclose()

    # A client_secret_post client cannot switch to HTTP Basic either.
    wrong_method = _oauth(client, secret, method="client_secret_basic")
    try:
        with pytest.raises(OAuthError) as refused:
            await wrong_method.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        assert refused.value.error == "invalid_client"
    finally:
        await wrong_method.aclose()

    assert await _refresh_families(database_url, client.client_id) == 0


async def test_password_grant_refresh_and_revocation(live_server: LiveServer, database_url: str) -> None:
    metadata = await _metadata(live_server.url)
    client, secret = await live_server.registry.clients.create(
        name="Photo App (first party)",
        redirect_uris=[],
        grant_types=["password", "refresh_token"],
        scope=list(APP_SCOPE),
        auth_method="client_secret_basic",
        allow_introspection=True,  # only so that this test can ask the server about its tokens
    )
    assert secret is not None
    user = await _new_user(live_server)
    # Another confidential client: revocation must ignore tokens that are not the caller's.
    stranger, stranger_secret = await live_server.registry.clients.create(
        name="Someone Else",
        redirect_uris=[],
        grant_types=["password", "refresh_token"],
        scope=list(APP_SCOPE),
        auth_method="client_secret_basic",
    )
    assert stranger_secret is not None

    oauth = _oauth(client, secret)
    other = _oauth(stranger, stranger_secret)
    try:
        # A wrong password is invalid_grant (RFC 6749 §5.2), through the library's error type.
        with pytest.raises(OAuthError) as refused:
            await oauth.fetch_token(
                metadata["token_endpoint"], username=user.username, password=PASSWORD + "!"
            )
        assert refused.value.error == "invalid_grant"
        assert not oauth.token

        token = await oauth.fetch_token(
            metadata["token_endpoint"], username=user.username, password=PASSWORD, scope="photos:read"
        )
        assert oauth.metadata["grant_type"] == "password"  # what Authlib sent, guessed from the kwargs
        assert token["token_type"] == "Bearer"
        assert token["scope"] == "photos:read"
        assert token["expires_in"] == live_server.settings.access_token_ttl
        first_refresh, first_access = token["refresh_token"], token["access_token"]
        assert first_refresh
        claims = await _verified_claims(metadata, first_access, live_server)
        assert claims["sub"] == str(user.user_id) == user.subject
        assert claims["client_id"] == client.client_id
        assert claims["scope"] == "photos:read"

        # Refreshing through the library: a new pair, the scope unchanged (not widened to the registration).
        refreshed = await oauth.refresh_token(metadata["token_endpoint"])
        assert refreshed["token_type"] == "Bearer"
        assert refreshed["scope"] == "photos:read"
        current_refresh, current_access = refreshed["refresh_token"], refreshed["access_token"]
        assert current_refresh and current_refresh != first_refresh  # rotated
        assert current_access != first_access
        assert oauth.token["refresh_token"] == current_refresh
        claims = await _verified_claims(metadata, current_access, live_server)
        assert claims["sub"] == user.subject
        assert claims["client_id"] == client.client_id
        assert claims["scope"] == "photos:read"

        introspection = metadata["introspection_endpoint"]
        live = await oauth.introspect_token(introspection, token=current_access)
        assert live.status_code == 200, live.text
        assert live.json()["active"] is True
        assert live.json()["sub"] == user.subject

        # Another client "revoking" this refresh token gets 200 (RFC 7009 §2.2) but changes nothing.
        foreign = await other.revoke_token(
            metadata["revocation_endpoint"], token=current_refresh, token_type_hint="refresh_token"
        )
        assert foreign.status_code == 200, foreign.text
        still = await oauth.introspect_token(
            introspection, token=current_refresh, token_type_hint="refresh_token"
        )
        assert still.json()["active"] is True

        # The owner revokes it.
        revoked = await oauth.revoke_token(
            metadata["revocation_endpoint"], token=current_refresh, token_type_hint="refresh_token"
        )
        assert revoked.status_code == 200, revoked.text
        assert revoked.headers["Cache-Control"] == "no-store"

        # The refresh token no longer works ...
        with pytest.raises(OAuthError) as dead:
            await oauth.refresh_token(metadata["token_endpoint"], refresh_token=current_refresh)
        assert dead.value.error == "invalid_grant"
        # ... and the server says so, for it and for the access token issued alongside (RFC 7009 §2.1).
        for value, hint in ((current_refresh, "refresh_token"), (current_access, "access_token")):
            answer = await oauth.introspect_token(introspection, token=value, token_type_hint=hint)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"active": False}, hint

        # The user's password still works: revocation ended that grant, not the account.
        again = await oauth.fetch_token(metadata["token_endpoint"], username=user.username, password=PASSWORD)
        assert sorted(again["scope"].split()) == sorted(APP_SCOPE)  # none asked: all registered
        assert again["refresh_token"] not in (first_refresh, current_refresh)
        # Two grants, hence two refresh-token families (the refresh continued the first one).
        assert await _refresh_families(database_url, client.client_id) == 2
    finally:
        await oauth.aclose()
        await other.aclose()


async def test_password_grant_is_refused_to_a_client_not_registered_for_it(live_server: LiveServer) -> None:
    """The deprecated grant (RFC 9700 §2.4) is off for a client unless it was registered for it."""
    metadata = await _metadata(live_server.url)
    client, secret = await _partner(live_server, "client_secret_basic")
    user = await _new_user(live_server)

    oauth = _oauth(client, secret)
    try:
        with pytest.raises(OAuthError) as refused:
            await oauth.fetch_token(metadata["token_endpoint"], username=user.username, password=PASSWORD)
        assert refused.value.error == "unauthorized_client"
    finally:
        await oauth.aclose()
