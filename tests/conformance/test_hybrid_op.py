"""The OpenID Foundation's Hybrid OP plan (``oidcc-hybrid-certification-test-plan``), for the one
hybrid response type Tessera serves, ``code id_token`` (Core §3.3). The plan's other two runs,
``code token`` and ``code id_token token``, are not offered: discovery does not list them, and a
request for them is ``unsupported_response_type``.

The authorization endpoint's ID token carries ``c_hash`` and the nonce; the token endpoint returns
a second ID token for the same user (same ``iss`` and ``sub``, Core §3.3.3.6) with ``at_hash``.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient

from auth_server.clients import Client
from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.conformance.support import (
    DISCOVERY,
    PROFILE,
    PROFILE_CLAIMS,
    REDIRECT_URI,
    FrontChannel,
    assert_error_page,
    assert_error_redirect,
    auth_params,
    authorize_url,
    browse,
    form_post_fields,
    front_channel,
    half_hash,
    new_nonce,
    openid_client,
    redeem,
    token_error,
    token_request,
    tokens_of,
    userinfo,
    userinfo_claims,
    verify_id_token,
)
from tests.support.flow import Pkce

HYBRID = "code id_token"


async def hybrid_client(registry: Registry, **openid: object) -> tuple[Client, str]:
    return await openid_client(
        registry,
        grant_types=["authorization_code", "implicit", "refresh_token"],
        response_types=[HYBRID],
        **openid,  # type: ignore[arg-type]
    )


async def _exchange(
    http: TestClient,
    client: Client,
    secret: str,
    flow: FrontChannel,
    *,
    verifier: str | None = None,
    auth: str = "client_secret_basic",
) -> tuple[dict[str, object], dict[str, object]]:
    """Redeem the fragment's code; the token response and its ID token's claims, checked against
    the first ID token (Core §3.3.3.6: identical iss and sub)."""
    tokens = await tokens_of(
        await redeem(http, client, secret, flow.answer["code"], verifier=verifier, auth=auth)
    )
    claims = await verify_id_token(
        http,
        str(tokens["id_token"]),
        client,
        nonce=flow.sent["nonce"],
        access_token=str(tokens["access_token"]),
    )
    assert claims["iss"] == flow.id_token["iss"]
    assert claims["sub"] == flow.id_token["sub"]
    assert claims["aud"] == flow.id_token["aud"]
    assert claims["auth_time"] == flow.id_token["auth_time"]
    assert claims["at_hash"] == half_hash(str(tokens["access_token"]))
    return tokens, claims


async def test_oidcc_server(http: TestClient, registry: Registry, member: User) -> None:
    """OP-Response-code+id_token: code and ID token in the fragment (c_hash, nonce, no at_hash);
    the token endpoint's ID token for the same user."""
    client, secret = await hybrid_client(registry)
    flow = await front_channel(http, client, member, HYBRID)
    assert set(flow.answer) == {"code", "id_token", "state", "iss"}
    assert flow.id_token["c_hash"] == half_hash(flow.answer["code"])
    assert flow.id_token["sub"] == member.subject
    assert "sid" in flow.id_token
    tokens, _ = await _exchange(http, client, secret, flow)
    assert "refresh_token" not in tokens  # no offline_access asked


async def test_oidcc_ensure_request_without_nonce_fails(http: TestClient, registry: Registry) -> None:
    """OP-nonce-NoReq-noncode: nonce is REQUIRED for the hybrid flow (Core §3.3.2.11)."""
    client, _ = await hybrid_client(registry)
    params = auth_params(client, response_type=HYBRID)
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert_error_redirect(response.headers["Location"], "invalid_request", params["state"], fragment=True)


async def test_oidcc_response_type_missing(http: TestClient, registry: Registry) -> None:
    client, _ = await hybrid_client(registry)
    params = auth_params(client, response_type=HYBRID, nonce=new_nonce())
    del params["response_type"]
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert_error_redirect(response.headers["Location"], "invalid_request", params["state"])


@pytest.mark.parametrize("how", ["get", "post_header", "post_body"])
async def test_oidcc_userinfo(http: TestClient, registry: Registry, member: User, how: str) -> None:
    """OP-UserInfo-Endpoint / -Header / -Body: oidcc-userinfo-get, -post-header, -post-body."""
    client, secret = await hybrid_client(registry)
    flow = await front_channel(http, client, member, HYBRID, scope="openid profile")
    tokens, claims = await _exchange(http, client, secret, flow)
    info = await userinfo_claims(http, str(tokens["access_token"]), how)
    assert info["sub"] == claims["sub"] == flow.id_token["sub"]
    assert info["name"] == PROFILE["name"]


async def test_oidcc_scope_profile(http: TestClient, registry: Registry, member: User) -> None:
    """OP-scope-profile: an access token is issued (at the token endpoint), so the profile claims are
    at userinfo, not in either ID token (Core §5.4)."""
    client, secret = await hybrid_client(registry)
    flow = await front_channel(http, client, member, HYBRID, scope="openid profile email")
    assert not set(PROFILE_CLAIMS) & set(flow.id_token)
    tokens, claims = await _exchange(http, client, secret, flow)
    assert not set(PROFILE_CLAIMS) & set(claims)
    info = await userinfo_claims(http, str(tokens["access_token"]))
    assert info["nickname"] == PROFILE["nickname"] and info["email"] == PROFILE["email"]


async def test_oidcc_codereuse(http: TestClient, registry: Registry, member: User) -> None:
    """OP-OAuth-2nd, OP-OAuth-2nd-30s, OP-OAuth-2nd-Revokes (oidcc-codereuse, -30seconds): the
    fragment's code works once; a later replay is invalid_grant and revokes its access token."""
    client, secret = await hybrid_client(registry)
    flow = await front_channel(http, client, member, HYBRID)
    tokens, _ = await _exchange(http, client, secret, flow)
    await asyncio.sleep(0.3)
    await token_error(await redeem(http, client, secret, flow.answer["code"]), "invalid_grant")
    assert (await userinfo(http, str(tokens["access_token"]))).status == 401


async def test_oidcc_prompt_none_not_logged_in(http: TestClient, registry: Registry) -> None:
    client, _ = await hybrid_client(registry)
    params = auth_params(client, response_type=HYBRID, nonce=new_nonce(), prompt="none")
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert_error_redirect(response.headers["Location"], "login_required", params["state"], fragment=True)


async def test_oidcc_prompt_none_logged_in(http: TestClient, registry: Registry, member: User) -> None:
    """A first-party client (a hybrid client's consent is otherwise asked each time, like implicit)."""
    client, secret = await hybrid_client(registry, first_party=True)
    first = await front_channel(http, client, member, HYBRID)
    again = await front_channel(http, client, member, HYBRID, prompt="none")
    assert not again.browsing.login_shown and not again.browsing.consent_shown
    assert again.id_token["sub"] == first.id_token["sub"]
    await _exchange(http, client, secret, again)


async def test_oidcc_prompt_login(http: TestClient, registry: Registry, member: User) -> None:
    client, _ = await hybrid_client(registry, first_party=True)
    await front_channel(http, client, member, HYBRID)
    again = await front_channel(http, client, member, HYBRID, prompt="login")
    assert again.browsing.login_shown


async def test_oidcc_id_token_hint(http: TestClient, registry: Registry, member: User) -> None:
    client, _ = await hybrid_client(registry, first_party=True)
    first = await front_channel(http, client, member, HYBRID)
    again = await front_channel(
        http, client, member, HYBRID, prompt="none", id_token_hint=first.answer["id_token"]
    )
    assert again.id_token["sub"] == first.id_token["sub"]


async def test_oidcc_max_age_10000(http: TestClient, registry: Registry, member: User) -> None:
    client, _ = await hybrid_client(registry, first_party=True)
    first = await front_channel(http, client, member, HYBRID)
    again = await front_channel(http, client, member, HYBRID, max_age="10000")
    assert not again.browsing.login_shown
    assert again.id_token["auth_time"] == first.id_token["auth_time"]


@pytest.mark.parametrize(
    "extra",
    [
        {"display": "page"},
        {"display": "popup"},
        {"extra": "foobar"},
        {"ui_locales": "se"},
        {"claims_locales": "se"},
        {"acr_values": "1 2"},
        {"scope": "email openid"},
    ],
    ids=[
        "oidcc-display-page",
        "oidcc-display-popup",
        "oidcc-ensure-request-with-unknown-parameter-succeeds",
        "oidcc-ui-locales",
        "oidcc-claims-locales",
        "oidcc-ensure-request-with-acr-values-succeeds",
        "oidcc-ensure-other-scope-order-succeeds",
    ],
)
async def test_oidcc_accepted_parameters(
    http: TestClient, registry: Registry, member: User, extra: dict[str, str]
) -> None:
    client, _ = await hybrid_client(registry)
    await front_channel(http, client, member, HYBRID, **extra)


async def test_oidcc_ensure_registered_redirect_uri(http: TestClient, registry: Registry) -> None:
    client, _ = await hybrid_client(registry)
    params = auth_params(
        client, response_type=HYBRID, nonce=new_nonce(), redirect_uri="https://attacker.example/cb"
    )
    await assert_error_page(await http.get(authorize_url(params), allow_redirects=False))


async def test_oidcc_server_client_secret_post(http: TestClient, registry: Registry, member: User) -> None:
    client, secret = await hybrid_client(registry, auth_method="client_secret_post")
    flow = await front_channel(http, client, member, HYBRID)
    await _exchange(http, client, secret, flow, auth="client_secret_post")


async def test_oidcc_claims_essential(http: TestClient, registry: Registry, member: User) -> None:
    client, secret = await hybrid_client(registry)
    claims_request = json.dumps({"userinfo": {"name": {"essential": True}}})
    flow = await front_channel(http, client, member, HYBRID, claims=claims_request)
    tokens, claims = await _exchange(http, client, secret, flow)
    assert "name" not in claims and "name" not in flow.id_token
    assert (await userinfo_claims(http, str(tokens["access_token"])))["name"] == PROFILE["name"]


async def test_oidcc_refresh_token(http: TestClient, registry: Registry, member: User) -> None:
    """offline_access is kept when a code is issued (Core §11); the refresh token works."""
    client, secret = await hybrid_client(registry)
    flow = await front_channel(http, client, member, HYBRID, scope="openid offline_access")
    tokens, claims = await _exchange(http, client, secret, flow)
    refreshed = await tokens_of(
        await token_request(
            http,
            client,
            secret,
            {"grant_type": "refresh_token", "refresh_token": str(tokens["refresh_token"])},
        )
    )
    assert (await userinfo_claims(http, refreshed["access_token"]))["sub"] == claims["sub"]


async def test_oidcc_ensure_request_with_valid_pkce_succeeds(
    http: TestClient, registry: Registry, member: User
) -> None:
    client, secret = await hybrid_client(registry, require_pkce=True)
    pkce = Pkce.new()
    flow = await front_channel(
        http, client, member, HYBRID, code_challenge=pkce.challenge, code_challenge_method="S256"
    )
    await _exchange(http, client, secret, flow, verifier=pkce.verifier)


async def test_oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(
    http: TestClient, registry: Registry
) -> None:
    client, _ = await hybrid_client(registry)
    for name, value, error in (
        ("request", "eyJhbGciOiJub25lIn0.e30.", "request_not_supported"),
        ("request_uri", "https://printer.example/request.jwt", "request_uri_not_supported"),
    ):
        params = auth_params(client, response_type=HYBRID, nonce=new_nonce(), pkce=None, **{name: value})
        response = await http.get(authorize_url(params), allow_redirects=False)
        assert_error_redirect(response.headers["Location"], error, params["state"], fragment=True)


async def test_oidcc_response_mode_form_post(http: TestClient, registry: Registry, member: User) -> None:
    """oidcc-form-post-hybrid plan: code and ID token posted as hidden fields."""
    client, secret = await hybrid_client(registry)
    params = auth_params(client, response_type=HYBRID, nonce=new_nonce(), response_mode="form_post")
    page = await browse(http, await http.get(authorize_url(params), allow_redirects=False), member.username)
    assert page.status == 200
    text = await page.text()
    assert f'action="{REDIRECT_URI}"' in text
    fields = form_post_fields(text)
    assert set(fields) == {"code", "id_token", "state", "iss"}
    await verify_id_token(http, fields["id_token"], client, nonce=params["nonce"], code=fields["code"])
    tokens = await tokens_of(await redeem(http, client, secret, fields["code"]))
    await verify_id_token(
        http, tokens["id_token"], client, nonce=params["nonce"], access_token=tokens["access_token"]
    )


@pytest.mark.parametrize("response_type", ["code token", "code id_token token"])
async def test_other_hybrid_response_types_are_not_offered(
    http: TestClient, registry: Registry, response_type: str
) -> None:
    """The plan's ``code token`` and ``code id_token token`` runs: not listed in discovery, and
    refused with unsupported_response_type, in the fragment."""
    document = await (await http.get(DISCOVERY)).json()
    assert response_type not in document["response_types_supported"]
    client, _ = await hybrid_client(registry)
    params = auth_params(client, response_type=response_type, nonce=new_nonce())
    response = await http.get(authorize_url(params), allow_redirects=False)
    location = response.headers["Location"]
    assert "code=" not in location and "access_token=" not in location
    assert_error_redirect(location, "unsupported_response_type", params["state"], fragment=True)
