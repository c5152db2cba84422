"""The OpenID Foundation's Basic OP plan (``oidcc-basic-certification-test-plan``): the code flow,
``response_type=code``, ``client_secret_basic`` (``client_secret_post`` in its own module).

Each test is named after the plan's module it covers; a few modules the plan leaves to the Dynamic
and Form Post plans (``oidcc-ensure-redirect-uri-in-authorization-request``,
``oidcc-redirect-uri-query-*``, ``oidcc-request-uri-unsigned``, ``oidcc-response-mode-form-post``,
``oidcc-idtoken-unsigned``) are here too, as they are about the same flow.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from urllib.parse import urlsplit

import jwt
import pytest
from aiohttp.test_utils import TestClient

from auth_server.crypto import hash_password
from auth_server.oidc.signer import sign
from auth_server.registration import RegistrationError
from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.conformance.support import (
    DISCOVERY,
    EMAIL_CLAIMS,
    ISSUER,
    PROFILE,
    PROFILE_CLAIMS,
    REDIRECT_URI,
    Browsing,
    assert_error_page,
    assert_error_redirect,
    auth_params,
    authenticate,
    authorize_url,
    browse,
    code_flow,
    form_post_fields,
    in_query,
    new_nonce,
    openid_client,
    redeem,
    script_hashes,
    token_error,
    token_request,
    tokens_of,
    userinfo,
    userinfo_claims,
    verify_id_token,
)
from tests.support.flow import Pkce, basic
from tests.support.servers import PASSWORD


def _profile_claims_match(claims: dict[str, object], user: User) -> None:
    for name in ("name", "nickname", "picture", "locale", "zoneinfo"):
        assert claims[name] == PROFILE[name], name
    assert claims["preferred_username"] == user.username
    assert isinstance(claims["updated_at"], int)


# -- oidcc-server and the ID token ---------------------------------------------------------------------


async def test_oidcc_server(http: TestClient, registry: Registry, member: User) -> None:
    """OP-Response-code: the code flow with a nonce; the ID token verified against the JWKS."""
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member)
    # the authorization response carries the code, state and iss, nothing else (Core §3.1.2.5)
    assert set(login.response) == {"code", "state", "iss"}
    claims = login.id_token
    assert claims["sub"] == member.subject  # a public subject: the user's own id
    assert claims["azp"] == client.client_id
    assert claims["acr"] and isinstance(claims["amr"], list) and claims["amr"]
    assert isinstance(claims["sid"], str) and claims["sid"]
    assert claims["at_hash"]  # checked against the access token by verify_id_token
    assert login.tokens["expires_in"] > 0
    assert "refresh_token" not in login.tokens  # no offline_access asked (Core §11)
    # profile claims are at userinfo when an access token is issued (Core §5.4)
    assert not set(PROFILE_CLAIMS) & set(claims)


async def test_oidcc_idtoken_signature(http: TestClient, registry: Registry, member: User) -> None:
    """OP-IDToken-Signature, OP-IDToken-kid: RS256 by default, with the kid of a published key."""
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member)
    header = jwt.get_unverified_header(login.tokens["id_token"])
    assert header["alg"] == "RS256"
    keys = (await (await http.get("/oauth2/jwks")).json(content_type=None))["keys"]
    published = [k for k in keys if k["kid"] == header["kid"]]
    assert len(published) == 1 and published[0]["kty"] == "RSA"
    # a signature changed by one character no longer verifies
    head, body, signature = login.tokens["id_token"].split(".")
    tampered = f"{head}.{body}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    with pytest.raises(jwt.InvalidSignatureError):
        await verify_id_token(http, tampered, client, nonce=login.nonce)


async def test_oidcc_idtoken_unsigned(http: TestClient, registry: Registry) -> None:
    """OP-IDToken-none: unsigned ID tokens are not offered (the suite skips the module), and a client
    cannot register for them."""
    document = await (await http.get(DISCOVERY)).json()
    assert "none" not in document["id_token_signing_alg_values_supported"]
    with pytest.raises(RegistrationError):
        await openid_client(registry, id_token_signed_response_alg="none")


async def test_oidcc_response_type_missing(http: TestClient, registry: Registry) -> None:
    """OP-Response-Missing: no response_type → invalid_request, sent back with state (Core §3.1.2.6)."""
    client, _ = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce())
    del params["response_type"]
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert response.status == 302
    assert_error_redirect(response.headers["Location"], "invalid_request", params["state"])


# -- userinfo ------------------------------------------------------------------------------------------


async def test_oidcc_userinfo_get(http: TestClient, registry: Registry, member: User) -> None:
    """OP-UserInfo-Endpoint: GET with the token in the Authorization header (Core §5.3.1)."""
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member, scope="openid profile")
    claims = await userinfo_claims(http, login.tokens["access_token"], "get")
    assert claims["sub"] == login.id_token["sub"]  # Core §5.3.2: MUST match
    _profile_claims_match(claims, member)
    assert not set(EMAIL_CLAIMS) & set(claims)  # email was not granted
    response = await userinfo(http, login.tokens["access_token"], "get")
    assert response.headers["Cache-Control"] == "no-store"


async def test_oidcc_userinfo_post_header(http: TestClient, registry: Registry, member: User) -> None:
    """OP-UserInfo-Header: POST with the token in the Authorization header."""
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member)
    claims = await userinfo_claims(http, login.tokens["access_token"], "post_header")
    assert claims["sub"] == login.id_token["sub"]


async def test_oidcc_userinfo_post_body(http: TestClient, registry: Registry, member: User) -> None:
    """OP-UserInfo-Body: POST with the token in the form body (RFC 6750 §2.2, allowed by Core §5.3.1)."""
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member, scope="openid email")
    claims = await userinfo_claims(http, login.tokens["access_token"], "post_body")
    assert claims["sub"] == login.id_token["sub"]
    assert claims["email"] == PROFILE["email"]


async def test_userinfo_errors_are_bearer_challenges(
    http: TestClient, registry: Registry, member: User
) -> None:
    """Core §5.3.3 / RFC 6750 §3: no token, a bad token, a token without openid, a revoked token."""
    response = await http.get("/oauth2/userinfo")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error=" not in response.headers["WWW-Authenticate"]  # RFC 6750 §3.1: no credentials
    response = await userinfo(http, "not-a-token")
    assert response.status == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]

    client, secret = await openid_client(registry)
    location = await authenticate(http, auth_params(client, scope="photos:read"), member.username)
    tokens = await tokens_of(await redeem(http, client, secret, in_query(location)["code"]))
    assert "id_token" not in tokens  # not an OpenID Connect request
    response = await userinfo(http, tokens["access_token"])
    assert response.status == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]

    login = await code_flow(http, client, secret, member)
    revoked = await http.post(
        "/oauth2/revoke",
        data={"token": login.tokens["access_token"]},
        auth=None,
        headers=basic(client.client_id, secret),
    )
    assert revoked.status == 200
    response = await userinfo(http, login.tokens["access_token"])
    assert response.status == 401


# -- nonce and scopes ----------------------------------------------------------------------------------


async def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(
    http: TestClient, registry: Registry, member: User
) -> None:
    """OP-nonce-NoReq-code: nonce is optional in the code flow (Core §3.1.2.1); none is echoed."""
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member, nonce=None)
    assert "nonce" not in login.id_token


async def test_oidcc_scope_profile(http: TestClient, registry: Registry, member: User) -> None:
    """OP-scope-profile: the profile claims at userinfo (Core §5.4)."""
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member, scope="openid profile")
    claims = await userinfo_claims(http, login.tokens["access_token"])
    _profile_claims_match(claims, member)
    assert set(login.tokens["scope"].split()) == {"openid", "profile"}


async def test_oidcc_scope_email(http: TestClient, registry: Registry, member: User) -> None:
    """OP-scope-email: email and email_verified at userinfo."""
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member, scope="openid email")
    claims = await userinfo_claims(http, login.tokens["access_token"])
    assert claims["email"] == PROFILE["email"]
    assert claims["email_verified"] is True
    assert not set(PROFILE_CLAIMS) & set(claims)


@pytest.mark.parametrize("scope", ["address", "phone"])
async def test_oidcc_scope_address_and_phone_not_offered(
    http: TestClient, registry: Registry, member: User, scope: str
) -> None:
    """OP-scope-address, OP-scope-phone: skipped by the suite when the scope is not in
    scopes_supported, as here. Asked anyway, the request is answered to the client (never an error
    page) and releases no such claim."""
    document = await (await http.get(DISCOVERY)).json()
    assert scope not in document["scopes_supported"]
    client, _ = await openid_client(registry)
    params = auth_params(client, scope=f"openid {scope}")
    location = await authenticate(http, params, member.username)
    answer = in_query(location)
    assert answer["state"] == params["state"]
    assert "code" in answer or answer["error"] == "invalid_scope", answer


async def test_oidcc_scope_all(http: TestClient, registry: Registry, member: User) -> None:
    """OP-scope-All: every claim scope offered (profile, email) at once."""
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member, scope="openid profile email")
    claims = await userinfo_claims(http, login.tokens["access_token"])
    _profile_claims_match(claims, member)
    assert claims["email"] == PROFILE["email"] and claims["email_verified"] is True


async def test_oidcc_ensure_other_scope_order_succeeds(
    http: TestClient, registry: Registry, member: User
) -> None:
    """Scope values in another order (``email openid``): the same request (RFC 6749 §3.3)."""
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member, scope="email openid")
    claims = await userinfo_claims(http, login.tokens["access_token"])
    assert claims["email"] == PROFILE["email"]


# -- display, prompt, max_age --------------------------------------------------------------------------


async def test_oidcc_display_page(http: TestClient, registry: Registry, member: User) -> None:
    """OP-display-page: display=page is accepted."""
    client, secret = await openid_client(registry)
    await code_flow(http, client, secret, member, display="page")


async def test_oidcc_display_popup(http: TestClient, registry: Registry, member: User) -> None:
    """OP-display-popup: display=popup is accepted (every page fits a popup)."""
    client, secret = await openid_client(registry)
    await code_flow(http, client, secret, member, display="popup")


async def test_oidcc_prompt_login(http: TestClient, registry: Registry, member: User) -> None:
    """OP-prompt-login: a signed-in user must sign in again (Core §3.1.2.1); a new session."""
    client, secret = await openid_client(registry)
    first = await code_flow(http, client, secret, member)
    assert first.browsing.login_shown
    again = await code_flow(http, client, secret, member, prompt="login")
    assert again.browsing.login_shown, "prompt=login did not ask the user to sign in again"
    assert "reauthenticate=1" in again.browsing.login_page
    assert again.id_token["sub"] == first.id_token["sub"]
    assert again.id_token["auth_time"] >= first.id_token["auth_time"]


async def test_oidcc_prompt_none_not_logged_in(http: TestClient, registry: Registry) -> None:
    """OP-prompt-none-NotLoggedIn: nobody signed in → login_required, no page (Core §3.1.2.6)."""
    client, _ = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce(), prompt="none")
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert response.status == 302
    assert_error_redirect(response.headers["Location"], "login_required", params["state"])


async def test_oidcc_prompt_none_logged_in(http: TestClient, registry: Registry, member: User) -> None:
    """OP-prompt-none-LoggedIn: signed in and consented → answered without any page."""
    client, secret = await openid_client(registry)
    first = await code_flow(http, client, secret, member)
    again = await code_flow(http, client, secret, member, prompt="none")
    assert not again.browsing.login_shown and not again.browsing.consent_shown
    assert again.id_token["sub"] == first.id_token["sub"]
    assert again.id_token["auth_time"] == first.id_token["auth_time"]
    assert again.id_token["sid"] == first.id_token["sid"]


async def test_prompt_none_without_consent_is_consent_required(
    http: TestClient, registry: Registry, member: User
) -> None:
    """Signed in, but the client was never allowed: prompt=none → consent_required (Core §3.1.2.6)."""
    client, secret = await openid_client(registry)
    other, _ = await openid_client(registry, name="Other App")
    await code_flow(http, client, secret, member)  # signs in, consents to `client` only
    params = auth_params(other, nonce=new_nonce(), prompt="none")
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert response.status == 302
    assert_error_redirect(response.headers["Location"], "consent_required", params["state"])


async def test_oidcc_max_age_1(http: TestClient, registry: Registry, member: User) -> None:
    """OP-Req-max_age=1: a sign-in older than max_age must be redone; auth_time says when
    (Core §3.1.2.1: auth_time is then REQUIRED)."""
    client, secret = await openid_client(registry)
    first = await code_flow(http, client, secret, member)
    await asyncio.sleep(1.1)
    again = await code_flow(http, client, secret, member, max_age="1")
    assert again.browsing.login_shown, "a sign-in older than max_age=1 was accepted"
    assert again.id_token["auth_time"] > first.id_token["auth_time"]
    assert again.id_token["sub"] == first.id_token["sub"]
    assert time.time() - again.id_token["auth_time"] < 5


async def test_oidcc_max_age_10000(http: TestClient, registry: Registry, member: User) -> None:
    """OP-Req-max_age=10000: a recent sign-in is enough; auth_time is the original one."""
    client, secret = await openid_client(registry)
    first = await code_flow(http, client, secret, member)
    again = await code_flow(http, client, secret, member, max_age="10000")
    assert not again.browsing.login_shown
    assert again.id_token["auth_time"] == first.id_token["auth_time"]


# -- other request parameters --------------------------------------------------------------------------


async def test_oidcc_ensure_request_with_unknown_parameter_succeeds(
    http: TestClient, registry: Registry, member: User
) -> None:
    """OP-Req-NotUnderstood: an unknown parameter is ignored (Core §3.1.2.1, RFC 6749 §3.1)."""
    client, secret = await openid_client(registry)
    await code_flow(http, client, secret, member, extra="foobar")


async def test_oidcc_id_token_hint(http: TestClient, registry: Registry, member: User) -> None:
    """OP-Req-id_token_hint: the ID token just issued, sent back with prompt=none, is accepted and
    names the signed-in user."""
    client, secret = await openid_client(registry)
    first = await code_flow(http, client, secret, member)
    again = await code_flow(
        http, client, secret, member, prompt="none", id_token_hint=first.tokens["id_token"]
    )
    assert not again.browsing.login_shown
    assert again.id_token["sub"] == first.id_token["sub"]


async def test_id_token_hint_of_another_user_or_forged_is_refused(
    http: TestClient, registry: Registry, member: User
) -> None:
    """A hint naming another user cannot be answered silently (login_required with prompt=none), and
    a hint this server did not sign is invalid_request (Core §3.1.2.2)."""
    client, secret = await openid_client(registry)
    first = await code_flow(http, client, secret, member)
    # an ID token of this server for another user, while `member` is signed in
    other = await registry.users.create(f"other-{uuid.uuid4().hex[:8]}", hash_password(PASSWORD))
    theirs = sign(registry.keyring, dict(first.id_token, sub=other.subject), alg="RS256")
    params = auth_params(client, nonce=new_nonce(), prompt="none", id_token_hint=theirs)
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert_error_redirect(response.headers["Location"], "login_required", params["state"])
    # not signed by this server
    forged = jwt.encode(first.id_token, "not-the-servers-key-but-long-enough-for-hs256!", algorithm="HS256")
    params = auth_params(client, nonce=new_nonce(), prompt="none", id_token_hint=forged)
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert_error_redirect(response.headers["Location"], "invalid_request", params["state"])


async def test_oidcc_login_hint(http: TestClient, registry: Registry, member: User) -> None:
    """OP-Req-login_hint: the login page is pre-filled with the hinted username."""
    client, _ = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce(), login_hint=member.username)
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/login")
    page = await (await http.get(response.headers["Location"], allow_redirects=False)).text()
    assert f'value="{member.username}"' in page
    location = await browse(http, response, member.username)
    assert "code" in in_query(location.headers["Location"])


async def test_oidcc_ui_locales(http: TestClient, registry: Registry, member: User) -> None:
    """OP-Req-ui_locales: accepted (the pages are English only)."""
    client, secret = await openid_client(registry)
    await code_flow(http, client, secret, member, ui_locales="se")


async def test_oidcc_claims_locales(http: TestClient, registry: Registry, member: User) -> None:
    """OP-Req-claims_locales: accepted."""
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member, scope="openid profile", claims_locales="se")
    assert (await userinfo_claims(http, login.tokens["access_token"]))["name"] == PROFILE["name"]


async def test_oidcc_ensure_request_with_acr_values_succeeds(
    http: TestClient, registry: Registry, member: User
) -> None:
    """OP-Req-acr_values: voluntary acr values are accepted; the ID token says which acr was met."""
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member, acr_values="1 2")
    document = await (await http.get(DISCOVERY)).json()
    assert login.id_token["acr"] in document["acr_values_supported"]


# -- the code ------------------------------------------------------------------------------------------


async def test_oidcc_codereuse(http: TestClient, registry: Registry, member: User) -> None:
    """OP-OAuth-2nd: a code is used once; the second use is invalid_grant (RFC 6749 §4.1.2, §5.2)."""
    client, secret = await openid_client(registry)
    location = await authenticate(http, auth_params(client, nonce=new_nonce()), member.username)
    code = in_query(location)["code"]
    await tokens_of(await redeem(http, client, secret, code))
    await token_error(await redeem(http, client, secret, code), "invalid_grant")


async def test_oidcc_codereuse_30seconds(http: TestClient, registry: Registry, member: User) -> None:
    """OP-OAuth-2nd-30s, OP-OAuth-2nd-Revokes: a later reuse is refused too, and revokes the access
    token the code had produced (RFC 6749 §4.1.2). (The suite waits 30 s; what matters is that the
    replay comes after the first use has completed.)"""
    client, secret = await openid_client(registry)
    location = await authenticate(
        http, auth_params(client, scope="openid offline_access", nonce=new_nonce()), member.username
    )
    code = in_query(location)["code"]
    tokens = await tokens_of(await redeem(http, client, secret, code))
    assert (await userinfo(http, tokens["access_token"])).status == 200
    await asyncio.sleep(0.5)
    await token_error(await redeem(http, client, secret, code), "invalid_grant")
    assert (await userinfo(http, tokens["access_token"])).status == 401
    refresh = await token_request(
        http, client, secret, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    await token_error(refresh, "invalid_grant")


async def test_oidcc_ensure_registered_redirect_uri(http: TestClient, registry: Registry) -> None:
    """OP-redirect_uri-NotReg: an unregistered redirect URI is an error page, never a redirect."""
    client, _ = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce(), redirect_uri="https://attacker.example/callback")
    await assert_error_page(await http.get(authorize_url(params), allow_redirects=False))


async def test_oidcc_ensure_redirect_uri_in_authorization_request(
    http: TestClient, registry: Registry, member: User
) -> None:
    """OP-redirect_uri-Missing: redirect_uri is REQUIRED in an OpenID Connect request (Core
    §3.1.2.1), even for a client with a single registered one: an error page, or invalid_request
    sent back with state — never a code."""
    client, _ = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce(), redirect_uri=None)
    first = await http.get(authorize_url(params), allow_redirects=False)
    response = await browse(http, first, member.username)
    if response.status == 400:
        await assert_error_page(response)
        return
    assert response.status in (302, 303), response.status
    assert_error_redirect(response.headers["Location"], "invalid_request", params["state"])


async def test_oidcc_server_client_secret_post(http: TestClient, registry: Registry, member: User) -> None:
    """OP-ClientAuth-SecretPost: client_secret_post at the token endpoint (Core §9)."""
    client, secret = await openid_client(registry, auth_method="client_secret_post")
    login = await code_flow(http, client, secret, member, auth="client_secret_post")
    assert login.id_token["aud"] == client.client_id
    # that client may not use another method
    location = await authenticate(http, auth_params(client, nonce=new_nonce()), member.username)
    code = in_query(location)["code"]
    await token_error(await redeem(http, client, secret, code), "invalid_client")


# -- request objects -----------------------------------------------------------------------------------


def _unsigned_request_object(params: dict[str, str]) -> str:
    """An unsigned request object (Core §6.1, alg none)."""
    return jwt.encode({**params, "iss": params["client_id"], "aud": ISSUER}, key="", algorithm="none")


async def test_oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(
    http: TestClient, registry: Registry
) -> None:
    """OP-request-Unsigned: request objects are not supported, and said to be:
    request_not_supported, with state (Core §3.1.2.6, §6)."""
    document = await (await http.get(DISCOVERY)).json()
    assert document["request_parameter_supported"] is False
    client, _ = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce())
    params["request"] = _unsigned_request_object(params)
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert_error_redirect(response.headers["Location"], "request_not_supported", params["state"])


async def test_oidcc_ensure_request_object_with_redirect_uri(http: TestClient, registry: Registry) -> None:
    """A request object naming another redirect URI is not acted on: request_not_supported, sent
    to the redirect URI of the request's own (verified) parameters."""
    client, _ = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce())
    params["request"] = _unsigned_request_object({**params, "redirect_uri": "https://attacker.example/cb"})
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert response.headers["Location"].startswith(REDIRECT_URI)
    assert_error_redirect(response.headers["Location"], "request_not_supported", params["state"])


async def test_oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported(
    http: TestClient, registry: Registry
) -> None:
    """OP-request_uri-Unsigned: request_uri is not supported: request_uri_not_supported, with state."""
    document = await (await http.get(DISCOVERY)).json()
    assert document["request_uri_parameter_supported"] is False
    client, _ = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce(), request_uri="https://printer.example/request.jwt")
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert_error_redirect(response.headers["Location"], "request_uri_not_supported", params["state"])


async def test_oidcc_request_uri_unsigned(http: TestClient, registry: Registry) -> None:
    """oidcc-request-uri-unsigned (Dynamic plan): the same answer, and nothing is fetched first —
    the request_uri names an address that would never answer."""
    client, _ = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce(), request_uri="https://192.0.2.1/request.jwt")
    started = time.monotonic()
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert time.monotonic() - started < 2
    assert_error_redirect(response.headers["Location"], "request_uri_not_supported", params["state"])


async def test_registration_parameter_is_not_supported(http: TestClient, registry: Registry) -> None:
    """Core §3.1.2.6: ``registration`` (self-issued registration) → registration_not_supported."""
    client, _ = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce(), registration=json.dumps({"client_name": "x"}))
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert_error_redirect(response.headers["Location"], "registration_not_supported", params["state"])


# -- claims --------------------------------------------------------------------------------------------


async def test_oidcc_claims_essential(http: TestClient, registry: Registry, member: User) -> None:
    """OP-claims-essential: ``name`` asked for as essential at userinfo (Core §5.5) with scope openid
    alone: userinfo has it, the ID token does not."""
    client, secret = await openid_client(registry)
    claims_request = json.dumps({"userinfo": {"name": {"essential": True}}})
    login = await code_flow(http, client, secret, member, claims=claims_request)
    assert "name" not in login.id_token
    claims = await userinfo_claims(http, login.tokens["access_token"])
    assert claims["name"] == PROFILE["name"]
    assert claims["sub"] == login.id_token["sub"]


async def test_claims_parameter_for_the_id_token(http: TestClient, registry: Registry, member: User) -> None:
    """Core §5.5: a claim asked for in the ID token by name is there (and only where asked)."""
    client, secret = await openid_client(registry)
    claims_request = json.dumps({"id_token": {"email": {"essential": True}, "nickname": None}})
    login = await code_flow(http, client, secret, member, claims=claims_request)
    assert login.id_token["email"] == PROFILE["email"]
    assert login.id_token["nickname"] == PROFILE["nickname"]
    assert "name" not in login.id_token


async def test_malformed_claims_parameter_is_invalid_request(http: TestClient, registry: Registry) -> None:
    client, _ = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce(), claims="[1, 2]")
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert_error_redirect(response.headers["Location"], "invalid_request", params["state"])


# -- refresh tokens and PKCE ---------------------------------------------------------------------------


async def test_oidcc_refresh_token(http: TestClient, registry: Registry, member: User) -> None:
    """offline_access brings a refresh token (Core §11); refreshing gives a working access token,
    and any ID token it returns has the same iss, sub and aud (Core §12.2)."""
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member, scope="openid offline_access profile")
    assert login.tokens["refresh_token"]
    refreshed = await tokens_of(
        await token_request(
            http,
            client,
            secret,
            {"grant_type": "refresh_token", "refresh_token": login.tokens["refresh_token"]},
        )
    )
    assert refreshed["access_token"] != login.tokens["access_token"]
    if "id_token" in refreshed:
        claims = await verify_id_token(http, refreshed["id_token"], client, nonce=None)
        assert (claims["iss"], claims["sub"], claims["aud"]) == (
            login.id_token["iss"],
            login.id_token["sub"],
            login.id_token["aud"],
        )
    claims = await userinfo_claims(http, refreshed["access_token"])
    assert claims["sub"] == login.id_token["sub"]


async def test_refresh_token_only_with_offline_access(
    http: TestClient, registry: Registry, member: User
) -> None:
    """Core §11: an authentication request gets a refresh token only when offline_access is granted."""
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, member, scope="openid profile")
    assert "refresh_token" not in login.tokens


async def test_oidcc_ensure_request_with_valid_pkce_succeeds(
    http: TestClient, registry: Registry, member: User
) -> None:
    """PKCE (RFC 7636) in an OpenID Connect request, for a client that requires it."""
    client, secret = await openid_client(registry, require_pkce=True)
    pkce = Pkce.new()
    login = await code_flow(http, client, secret, member, pkce=pkce)
    assert login.id_token["sub"] == member.subject
    # without the verifier, that client's code is refused
    location = await authenticate(
        http, auth_params(client, nonce=new_nonce(), pkce=Pkce.new()), member.username
    )
    await token_error(await redeem(http, client, secret, in_query(location)["code"]), "invalid_grant")


# -- redirect URIs with a query ------------------------------------------------------------------------

QUERY_REDIRECT = "https://printer.example/callback?foo=bar"


async def test_oidcc_redirect_uri_query_ok(http: TestClient, registry: Registry, member: User) -> None:
    """A registered redirect URI with a query, sent exactly: accepted, its query kept and the
    response's parameters added to it (RFC 6749 §3.1.2)."""
    client, secret = await openid_client(registry, redirect_uris=[QUERY_REDIRECT])
    params = auth_params(client, nonce=new_nonce(), redirect_uri=QUERY_REDIRECT)
    location = await authenticate(http, params, member.username)
    answer = in_query(location)
    assert answer["foo"] == "bar" and answer["state"] == params["state"]
    tokens = await tokens_of(await redeem(http, client, secret, answer["code"], redirect_uri=QUERY_REDIRECT))
    await verify_id_token(http, tokens["id_token"], client, nonce=params["nonce"])


async def test_oidcc_redirect_uri_query_mismatch(http: TestClient, registry: Registry) -> None:
    """A registered redirect URI's query changed: not registered, an error page."""
    client, _ = await openid_client(registry, redirect_uris=[QUERY_REDIRECT])
    params = auth_params(client, nonce=new_nonce(), redirect_uri="https://printer.example/callback?foo=zot")
    await assert_error_page(await http.get(authorize_url(params), allow_redirects=False))


async def test_oidcc_redirect_uri_query_added(http: TestClient, registry: Registry) -> None:
    """A query added to a registered redirect URI: not registered, an error page."""
    client, _ = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce(), redirect_uri=f"{REDIRECT_URI}?foo=bar")
    await assert_error_page(await http.get(authorize_url(params), allow_redirects=False))


# -- the POST method and form_post ---------------------------------------------------------------------


async def test_oidcc_ensure_post_request_succeeds(http: TestClient, registry: Registry, member: User) -> None:
    """The authentication request as a form POST: the OP MUST support POST at the authorization
    endpoint (Core §3.1.2.1), with the parameters form-serialized (§13.2)."""
    client, secret = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce())
    first = await http.post("/oauth2/authorize", data=params, allow_redirects=False)
    assert first.status != 405, "the authorization endpoint does not accept POST"
    response = await browse(http, first, member.username)
    assert response.status in (302, 303), f"{response.status}: {await response.text()}"
    answer = in_query(response.headers["Location"])
    assert answer["state"] == params["state"]
    tokens = await tokens_of(await redeem(http, client, secret, answer["code"]))
    await verify_id_token(http, tokens["id_token"], client, nonce=params["nonce"])


async def test_oidcc_response_mode_form_post(http: TestClient, registry: Registry, member: User) -> None:
    """OAuth 2.0 Form Post Response Mode: an auto-submitting form of hidden fields posting to the
    redirect URI, under a CSP that allows only its own script (by hash), working without JavaScript."""
    client, secret = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce(), response_mode="form_post")
    first = await http.get(authorize_url(params), allow_redirects=False)
    seen = Browsing()
    page = await browse(http, first, member.username, seen=seen)
    assert page.status == 200, page.status
    assert page.content_type == "text/html"
    assert page.headers["Cache-Control"] == "no-store"
    text = await page.text()
    assert f'<form method="post" action="{REDIRECT_URI}">' in text
    fields = form_post_fields(text)
    assert set(fields) == {"code", "state", "iss"}
    assert fields["state"] == params["state"] and fields["iss"] == ISSUER
    # works without JavaScript: a submit button inside <noscript>
    assert "<noscript>" in text and '<button type="submit">' in text
    csp = page.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    hashes = script_hashes(text)
    assert len(hashes) == 1 and directives["script-src"] == hashes[0]
    assert "unsafe-inline" not in csp
    assert urlsplit(REDIRECT_URI).netloc in directives["form-action"]
    assert directives["frame-ancestors"] == "'none'"
    tokens = await tokens_of(await redeem(http, client, secret, fields["code"]))
    await verify_id_token(http, tokens["id_token"], client, nonce=params["nonce"])


async def test_form_post_error_is_posted_too(http: TestClient, registry: Registry) -> None:
    """Errors go back in the response mode asked for: prompt=none without a session, as a form."""
    client, _ = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce(), prompt="none", response_mode="form_post")
    page = await http.get(authorize_url(params), allow_redirects=False)
    assert page.status == 200
    fields = form_post_fields(await page.text())
    assert fields["error"] == "login_required" and fields["state"] == params["state"]


async def test_unknown_response_mode_is_invalid_request(http: TestClient, registry: Registry) -> None:
    client, _ = await openid_client(registry)
    params = auth_params(client, nonce=new_nonce(), response_mode="web_message")
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert_error_redirect(response.headers["Location"], "invalid_request", params["state"])
