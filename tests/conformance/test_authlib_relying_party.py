"""A standard OIDC relying-party library, configured from discovery alone (issue 14, "What a user can
do" 1): Authlib's OpenID client is given the issuer's discovery URL, a client id and secret, and
nothing else. It loads the discovery document, builds the authorization URL with PKCE and a
nonce, exchanges the code, validates the ID token with its own OpenID Connect rules
(``authlib.oidc.core.CodeIDToken``, the JWK Set fetched from ``jwks_uri``), reads userinfo, and
builds the RP-initiated logout URL from ``end_session_endpoint``.

The client object is Authlib's framework-independent OpenID client (the parts its Starlette
integration is made of, without Starlette: ``AsyncOAuth2Mixin`` + ``AsyncOpenIDMixin`` on the httpx
client). A separate httpx client plays the user's browser and only follows the pages.
"""

from __future__ import annotations

import html
import re
import secrets
import warnings
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import BaseApp, FrameworkIntegration
from authlib.integrations.base_client.async_app import AsyncOAuth2Mixin
from authlib.integrations.base_client.async_openid import AsyncOpenIDMixin
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc.errors import InvalidClaimError

from auth_server.crypto import hash_password
from auth_server.registration import ClientMetadata, register
from tests.support.flow import hidden
from tests.support.servers import PASSWORD, LiveServer

# Authlib warns at import of its httpx integration that it would rather have "httpx2"; this project
# uses httpx (see tests/integration/test_rfc8414_client_library.py), so that one warning is silenced.
with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore",
        message="The httpx module is deprecated; please use httpx2",
        category=AuthlibDeprecationWarning,
    )
    from authlib.integrations.httpx_client import AsyncOAuth2Client

REDIRECT_URI = "https://printer.example/callback"
SIGNED_OUT = "https://printer.example/signed-out"
SCOPE = "openid profile email"


class OpenIDClient(AsyncOAuth2Mixin, AsyncOpenIDMixin, BaseApp):  # type: ignore[misc]
    """Authlib's asynchronous OpenID Connect client app, without a web framework."""

    client_cls = AsyncOAuth2Client


def _relying_party(issuer: str, client_id: str, secret: str) -> OpenIDClient:
    return OpenIDClient(
        FrameworkIntegration("tessera"),
        name="tessera",
        client_id=client_id,
        client_secret=secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256"},
    )


def _form_action(page: httpx.Response) -> str:
    actions = re.findall(r'<form method="post" action="([^"]*)"', page.text)
    assert actions, page.text
    # the page's own form comes first (the login page's passkey form follows it)
    return urljoin(str(page.url), html.unescape(actions[0]))


def _location(response: httpx.Response) -> str:
    assert "Location" in response.headers, f"{response.status_code}: {response.text}"
    return urljoin(str(response.url), response.headers["Location"])


async def _user_signs_in_and_allows(browser: httpx.AsyncClient, authorization_url: str, username: str) -> str:
    """The user's browser from the authorization URL back to the client; the callback URL."""
    response = await browser.get(authorization_url)
    assert response.status_code == 302, response.text
    page = await browser.get(_location(response))
    assert page.status_code == 200, page.text
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
    consent = await browser.get(_location(response))
    assert consent.status_code == 200, consent.text
    response = await browser.post(
        _form_action(consent),
        data={
            "csrf_token": hidden(consent.text, "csrf_token"),
            "request_id": hidden(consent.text, "request_id"),
            "consent": "allow",
        },
    )
    assert response.status_code == 303, response.text
    return _location(response)


async def test_authlib_relying_party_signs_in_from_discovery_alone(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the test issuer is http://127.0.0.1:port; Authlib, rightly, wants https unless told otherwise
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    registry = live_server.registry
    client, secret, _ = await register(
        registry,
        ClientMetadata(
            client_name="Photo Printer",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            scope=SCOPE.split(),
            post_logout_redirect_uris=[SIGNED_OUT],
        ),
    )
    assert secret is not None
    user = await registry.users.create(f"user-{secrets.token_hex(5)}", hash_password(PASSWORD))
    await registry.users.set_profile(
        user.user_id,
        {"nickname": "小美", "picture": "https://photos.example/xiaomei.png", "email": "x@photos.example"},
    )

    rp = _relying_party(live_server.url, client.client_id, secret)

    # discovery: loaded by the library, and valid by its own rules (Discovery 1.0 §3)
    metadata: dict[str, Any] = dict(await rp.load_server_metadata())
    metadata.pop("_loaded_at")
    OpenIDProviderMetadata(metadata).validate()
    assert metadata["issuer"] == live_server.url

    # the authorization URL: PKCE and a nonce, made by the library
    request = await rp.create_authorization_url(REDIRECT_URI)
    sent = dict(parse_qsl(urlsplit(request["url"]).query))
    assert request["url"].startswith(metadata["authorization_endpoint"])
    assert sent["nonce"] == request["nonce"] and sent["code_challenge_method"] == "S256"
    assert sent["scope"] == SCOPE

    async with httpx.AsyncClient(follow_redirects=False) as browser:
        callback = await _user_signs_in_and_allows(browser, request["url"], user.username)
        returned = dict(parse_qsl(urlsplit(callback).query))
        assert callback.startswith(REDIRECT_URI)
        assert returned["state"] == request["state"] and returned["iss"] == metadata["issuer"]

        token = await rp.fetch_access_token(
            redirect_uri=REDIRECT_URI, code=returned["code"], code_verifier=request["code_verifier"]
        )
        assert token["token_type"] == "Bearer" and token["id_token"]

        # the ID token, validated by Authlib (signature from jwks_uri, iss, aud, exp, nonce, at_hash)
        claims = await rp.parse_id_token(token, nonce=request["nonce"], leeway=5)
        assert claims["sub"] == user.subject
        assert claims["iss"] == live_server.url and claims["aud"] == client.client_id
        assert "auth_time" in claims and claims["at_hash"]
        # ... and a token for another nonce is refused by the same validation
        with pytest.raises(InvalidClaimError):
            await rp.parse_id_token(token, nonce="not-the-nonce-sent", leeway=5)

        info = await rp.userinfo(token=token)
        assert info["sub"] == claims["sub"]
        assert info["nickname"] == "小美" and info["picture"] == "https://photos.example/xiaomei.png"
        assert info["email"] == "x@photos.example" and info["email_verified"] is False
        assert info["preferred_username"] == user.username

        # RP-initiated logout, from end_session_endpoint: back to the registered URI with state
        logout = await rp.create_logout_url(
            post_logout_redirect_uri=SIGNED_OUT, id_token_hint=token["id_token"]
        )
        assert logout["url"].startswith(metadata["end_session_endpoint"])
        response = await browser.get(logout["url"])
        assert response.status_code == 302, response.text
        after = _location(response)
        assert after.startswith(SIGNED_OUT)
        assert dict(parse_qsl(urlsplit(after).query)) == {"state": logout["state"]}

        # signed out: a silent request now says login_required
        again = await rp.create_authorization_url(REDIRECT_URI, prompt="none")
        response = await browser.get(again["url"])
        answered = dict(parse_qsl(urlsplit(_location(response)).query))
        assert answered["error"] == "login_required" and answered["state"] == again["state"]
