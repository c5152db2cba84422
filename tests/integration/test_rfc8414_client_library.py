"""RFC 8414 in practice: an off-the-shelf OAuth client library configures itself from the metadata.

Authlib's httpx client is given nothing but what ``{issuer}/.well-known/oauth-authorization-server``
says (no endpoint path is written here), and completes the authorization-code flow with PKCE
(RFC 7636), the RFC 9207 ``iss`` check, refresh-token rotation (RFC 9700 §4.14.2) and verification
of the RFC 9068 access token against the published JWK Set. A second httpx client plays the
user's browser: it keeps cookies, follows no redirect by itself, and only reads the pages' forms.
"""

from __future__ import annotations

import html
import re
import secrets
import time
import warnings
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import jwt
import pytest
from authlib.deprecate import AuthlibDeprecationWarning

from auth_server.clients import Client
from auth_server.crypto import hash_password
from auth_server.stores.users import User
from tests.support.flow import hidden, query_of
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

REDIRECT_URI = "https://printer.example/callback"
SCOPE = "photos:read photos:write"


async def _metadata(issuer: str) -> dict[str, Any]:
    """The metadata document, checked for what a client needs before it trusts anything in it."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{issuer}/.well-known/oauth-authorization-server")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    doc: dict[str, Any] = response.json()
    # RFC 8414 §3.3: the issuer in the document must be the one the client asked about.
    assert doc["issuer"] == issuer
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        assert urlsplit(doc[endpoint]).netloc == urlsplit(issuer).netloc, endpoint
    assert "code" in doc["response_types_supported"]
    assert {"authorization_code", "refresh_token"} <= set(doc["grant_types_supported"])
    assert "S256" in doc["code_challenge_methods_supported"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert set(SCOPE.split()) <= set(doc["scopes_supported"])
    return doc


async def _new_user(live_server: LiveServer) -> User:
    return await live_server.registry.users.create(f"user-{secrets.token_hex(5)}", hash_password(PASSWORD))


async def _register(live_server: LiveServer, auth_method: str) -> tuple[Client, str | None]:
    return await live_server.registry.clients.create(
        name="Photo Printer",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        scope=SCOPE.split(),
        auth_method=auth_method,
    )


def _oauth_client(metadata: dict[str, Any], client: Client, secret: str | None) -> AsyncOAuth2Client:
    method = client.token_endpoint_auth_method
    assert method in metadata["token_endpoint_auth_methods_supported"]
    return AsyncOAuth2Client(
        client_id=client.client_id,
        client_secret=secret,
        scope=SCOPE,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method=method,
    )


def _form_action(page: httpx.Response) -> str:
    """Where the page's form posts, as an absolute URL: the test never names that path. The page's
    own form comes first (the login page's passkey form follows it)."""
    actions = re.findall(r'<form method="post" action="([^"]*)"', page.text)
    assert actions, page.text
    return urljoin(str(page.url), html.unescape(actions[0]))


def _same_request(a: str, b: str) -> bool:
    """Same path and same query parameters (in order), whatever their percent-encoding."""
    return (urlsplit(a).path, parse_qsl(urlsplit(a).query)) == (
        urlsplit(b).path,
        parse_qsl(urlsplit(b).query),
    )


def _location(response: httpx.Response) -> str:
    """The redirect target, resolved against the URL that answered (Location may be relative)."""
    assert "Location" in response.headers, f"{response.status_code}: {response.text}"
    return urljoin(str(response.url), response.headers["Location"])


async def _user_approves(authorization_url: str, username: str) -> str:
    """Be the user's browser from the authorization URL to the redirect back; return the callback URL."""
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        response = await browser.get(authorization_url)
        assert response.status_code == 302, response.text
        login_url = _location(response)
        assert urlsplit(login_url).netloc == urlsplit(authorization_url).netloc
        return_to = query_of(login_url)["return_to"]
        # The login page may only send the user back to the very authorization request.
        assert _same_request(return_to, authorization_url)

        page = await browser.get(login_url)
        assert page.status_code == 200, page.text
        assert hidden(page.text, "return_to") == return_to
        response = await browser.post(
            _form_action(page),
            data={
                "username": username,
                "password": PASSWORD,
                "csrf_token": hidden(page.text, "csrf_token"),
                "return_to": hidden(page.text, "return_to"),
            },
        )
        assert response.status_code == 303, response.text
        assert _same_request(_location(response), authorization_url)
        assert urlsplit(_location(response)).netloc == urlsplit(authorization_url).netloc

        consent = await browser.get(_location(response))
        assert consent.status_code == 200, consent.text
        assert "Photo Printer" in consent.text
        for scope in SCOPE.split():
            assert f'data-scope="{scope}"' in consent.text
        response = await browser.post(
            _form_action(consent),
            data={
                "csrf_token": hidden(consent.text, "csrf_token"),
                "request_id": hidden(consent.text, "request_id"),
                "consent": "allow",
            },
        )
        assert response.status_code == 303, response.text
        callback = _location(response)
    assert callback.startswith(f"{REDIRECT_URI}?")
    return callback


async def _signed_in_again(authorization_url: str, username: str) -> str:
    """A new browser (no session) approving again; consent was stored, so no consent page."""
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        response = await browser.get(authorization_url)
        assert response.status_code == 302, response.text
        login_url = _location(response)
        page = await browser.get(login_url)
        response = await browser.post(
            _form_action(page),
            data={
                "username": username,
                "password": PASSWORD,
                "csrf_token": hidden(page.text, "csrf_token"),
                "return_to": hidden(page.text, "return_to"),
            },
        )
        assert response.status_code == 303, response.text
        response = await browser.get(_location(response))
        assert response.status_code == 302, response.text  # straight back to the client
        callback = _location(response)
    assert callback.startswith(f"{REDIRECT_URI}?")
    return callback


async def _verified_claims(metadata: dict[str, Any], access_token: str, audience: str) -> dict[str, Any]:
    """The access token's claims, its signature checked with a key from the advertised jwks_uri."""
    header = jwt.get_unverified_header(access_token)
    assert header["typ"] == "at+jwt"  # RFC 9068 §2.1
    async with httpx.AsyncClient() as http:
        response = await http.get(metadata["jwks_uri"])
    assert response.status_code == 200, response.text
    matching = [k for k in response.json()["keys"] if k["kid"] == header["kid"]]
    assert len(matching) == 1, "the signing key is not published exactly once in the JWK Set"
    key = jwt.PyJWK(matching[0])
    assert header["alg"] == key.algorithm_name
    claims: dict[str, Any] = jwt.decode(
        access_token,
        key,
        algorithms=[header["alg"]],
        audience=audience,
        issuer=metadata["issuer"],
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]},
    )
    return claims


async def test_authlib_confidential_client_runs_the_flow_from_metadata_alone(
    live_server: LiveServer,
) -> None:
    metadata = await _metadata(live_server.url)
    client, secret = await _register(live_server, "client_secret_basic")
    assert secret is not None
    user = await _new_user(live_server)
    code_verifier = secrets.token_urlsafe(48)

    async with _oauth_client(metadata, client, secret) as oauth:
        authorization_url, state = oauth.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=code_verifier
        )
        sent = query_of(authorization_url)
        assert sent["code_challenge_method"] == "S256"
        assert sent["code_challenge"] and sent["code_challenge"] != code_verifier

        callback = await _user_approves(authorization_url, user.username)
        returned = query_of(callback)
        assert returned["iss"] == metadata["issuer"]  # RFC 9207: no mix-up with another server
        assert returned["state"] == state
        assert "error" not in returned

        # Authlib checks state itself, takes the code from the callback, and authenticates with Basic.
        token = await oauth.fetch_token(
            metadata["token_endpoint"],
            authorization_response=callback,
            state=state,
            code_verifier=code_verifier,
        )
        assert token["token_type"] == "Bearer"
        assert token["access_token"]
        assert token["refresh_token"]
        assert set(token["scope"].split()) == set(SCOPE.split())
        assert token["expires_in"] == live_server.settings.access_token_ttl

        claims = await _verified_claims(
            metadata, token["access_token"], live_server.settings.access_token_audience
        )
        assert claims["sub"] == user.subject
        assert claims["client_id"] == client.client_id
        assert set(claims["scope"].split()) == set(SCOPE.split())
        assert abs(claims["iat"] - time.time()) < 30

        # The code is single-use: a second redemption through the library is refused.
        with pytest.raises(OAuthError) as replay:
            await oauth.fetch_token(
                metadata["token_endpoint"],
                authorization_response=callback,
                state=state,
                code_verifier=code_verifier,
            )
        assert replay.value.error == "invalid_grant"

    # The replay revoked what the code had produced (RFC 6749 §4.1.2): start a fresh authorization.
    code_verifier = secrets.token_urlsafe(48)
    async with _oauth_client(metadata, client, secret) as oauth:
        authorization_url, state = oauth.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=code_verifier
        )
        callback = await _signed_in_again(authorization_url, user.username)
        token = await oauth.fetch_token(
            metadata["token_endpoint"],
            authorization_response=callback,
            state=state,
            code_verifier=code_verifier,
        )
        old_refresh, old_access = token["refresh_token"], token["access_token"]

        refreshed = await oauth.refresh_token(metadata["token_endpoint"])
        assert refreshed["token_type"] == "Bearer"
        assert refreshed["refresh_token"] and refreshed["refresh_token"] != old_refresh  # rotated
        assert refreshed["access_token"] != old_access
        assert oauth.token["refresh_token"] == refreshed["refresh_token"]  # the library kept the new one
        claims = await _verified_claims(
            metadata, refreshed["access_token"], live_server.settings.access_token_audience
        )
        assert claims["sub"] == user.subject
        assert claims["client_id"] == client.client_id

        # The old refresh token, presented again, is refused (RFC 9700 §4.14.2) ...
        async with httpx.AsyncClient() as http:
            reuse = await http.post(
                metadata["token_endpoint"],
                data={"grant_type": "refresh_token", "refresh_token": old_refresh},
                auth=httpx.BasicAuth(client.client_id, secret),
            )
        assert reuse.status_code == 400, reuse.text
        assert reuse.json()["error"] == "invalid_grant"
        assert reuse.headers["Cache-Control"] == "no-store"

        # ... and the reuse revoked the whole family, the library's current token included.
        with pytest.raises(OAuthError) as revoked:
            await oauth.refresh_token(metadata["token_endpoint"])
        assert revoked.value.error == "invalid_grant"


async def test_authlib_public_client_runs_the_flow_with_pkce_from_metadata_alone(
    live_server: LiveServer,
) -> None:
    metadata = await _metadata(live_server.url)
    assert "none" in metadata["token_endpoint_auth_methods_supported"]
    client, secret = await _register(live_server, "none")
    assert secret is None
    user = await _new_user(live_server)
    code_verifier = secrets.token_urlsafe(48)

    async with _oauth_client(metadata, client, None) as oauth:
        authorization_url, state = oauth.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=code_verifier
        )
        callback = await _user_approves(authorization_url, user.username)
        returned = query_of(callback)
        assert returned["iss"] == metadata["issuer"]
        assert returned["state"] == state

        token = await oauth.fetch_token(
            metadata["token_endpoint"],
            authorization_response=callback,
            state=state,
            code_verifier=code_verifier,
        )
        assert token["token_type"] == "Bearer"
        assert token["refresh_token"]
        assert set(token["scope"].split()) == set(SCOPE.split())
        claims = await _verified_claims(
            metadata, token["access_token"], live_server.settings.access_token_audience
        )
        assert claims["sub"] == user.subject
        assert claims["client_id"] == client.client_id

        refreshed = await oauth.refresh_token(metadata["token_endpoint"])
        assert refreshed["refresh_token"] and refreshed["refresh_token"] != token["refresh_token"]


async def test_public_client_with_the_wrong_pkce_verifier_gets_no_token(live_server: LiveServer) -> None:
    """The verifier binds the code to the client instance that asked for it: another one must fail."""
    metadata = await _metadata(live_server.url)
    client, _ = await _register(live_server, "none")
    user = await _new_user(live_server)

    async with _oauth_client(metadata, client, None) as oauth:
        authorization_url, state = oauth.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=secrets.token_urlsafe(48)
        )
        callback = await _user_approves(authorization_url, user.username)
        with pytest.raises(OAuthError) as refused:
            await oauth.fetch_token(
                metadata["token_endpoint"],
                authorization_response=callback,
                state=state,
                code_verifier=secrets.token_urlsafe(48),  # not the one whose challenge was sent
            )
        assert refused.value.error == "invalid_grant"
