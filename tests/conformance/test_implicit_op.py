"""The OpenID Foundation's Implicit OP plan (``oidcc-implicit-certification-test-plan``): the
modules run for ``response_type=id_token`` and ``id_token token`` (each test parametrized over
both), the userinfo modules for ``id_token token`` only.

The implicit flow (Core §3.2) answers in the fragment, needs a nonce, and binds the access token
to the ID token with ``at_hash``. Tessera asks a user's consent on every implicit request unless the
operator marked the client first-party (RFC 6749 §10.2; ``Client.remembers_consent``), so the
modules that need a silent second request (prompt=none, id_token_hint, max_age) use a first-party
client, as a certification run would.
"""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient

from auth_server.clients import Client
from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.conformance.support import (
    EMAIL_CLAIMS,
    PROFILE,
    PROFILE_CLAIMS,
    assert_error_page,
    assert_error_redirect,
    auth_params,
    authorize_url,
    browse,
    form_post_fields,
    front_channel,
    new_nonce,
    openid_client,
    userinfo,
    userinfo_claims,
    verify_id_token,
)
from tests.support.flow import basic

RESPONSE_TYPES = ["id_token", "id_token token"]
by_response_type = pytest.mark.parametrize("response_type", RESPONSE_TYPES)


async def _client(registry: Registry, *, first_party: bool = False) -> Client:
    """A client registered for the implicit response types (and only those)."""
    client, _ = await openid_client(
        registry, grant_types=["implicit"], response_types=RESPONSE_TYPES, first_party=first_party
    )
    return client


@by_response_type
async def test_oidcc_server(http: TestClient, registry: Registry, member: User, response_type: str) -> None:
    """OP-Response-id_token / OP-Response-id_token+token: everything in the fragment, the ID token
    with the nonce and (with a token) at_hash; never a refresh token (RFC 6749 §4.2.2)."""
    client = await _client(registry)
    flow = await front_channel(http, client, member, response_type)
    assert flow.id_token["sub"] == member.subject
    assert flow.id_token["azp"] == client.client_id
    assert "refresh_token" not in flow.answer
    if response_type == "id_token token":
        assert int(flow.answer["expires_in"]) > 0
        claims = await userinfo_claims(http, flow.answer["access_token"])
        assert claims["sub"] == flow.id_token["sub"]


@by_response_type
async def test_oidcc_ensure_request_without_nonce_fails(
    http: TestClient, registry: Registry, member: User, response_type: str
) -> None:
    """OP-nonce-NoReq-noncode: nonce is REQUIRED for the implicit flow (Core §3.2.2.1):
    invalid_request, in the fragment, with state."""
    client = await _client(registry)
    params = auth_params(client, response_type=response_type)
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert response.status == 302
    assert_error_redirect(response.headers["Location"], "invalid_request", params["state"], fragment=True)


@by_response_type
async def test_oidcc_scope_profile(
    http: TestClient, registry: Registry, member: User, response_type: str
) -> None:
    """OP-scope-profile: with no access token (id_token), the profile claims are in the ID token;
    with one, at userinfo (Core §5.4)."""
    client = await _client(registry)
    flow = await front_channel(http, client, member, response_type, scope="openid profile")
    if response_type == "id_token":
        claims = flow.id_token
    else:
        assert not set(PROFILE_CLAIMS) & set(flow.id_token)
        claims = await userinfo_claims(http, flow.answer["access_token"])
    assert claims["name"] == PROFILE["name"] and claims["nickname"] == PROFILE["nickname"]
    assert claims["preferred_username"] == member.username
    assert not set(EMAIL_CLAIMS) & set(claims)


@by_response_type
async def test_oidcc_scope_email(
    http: TestClient, registry: Registry, member: User, response_type: str
) -> None:
    """OP-scope-email."""
    client = await _client(registry)
    flow = await front_channel(http, client, member, response_type, scope="openid email")
    claims = (
        flow.id_token
        if response_type == "id_token"
        else await userinfo_claims(http, flow.answer["access_token"])
    )
    assert claims["email"] == PROFILE["email"] and claims["email_verified"] is True


@by_response_type
async def test_oidcc_scope_all(
    http: TestClient, registry: Registry, member: User, response_type: str
) -> None:
    """OP-scope-All."""
    client = await _client(registry)
    flow = await front_channel(http, client, member, response_type, scope="email profile openid")
    claims = (
        flow.id_token
        if response_type == "id_token"
        else await userinfo_claims(http, flow.answer["access_token"])
    )
    assert {"name", "nickname", "picture", "email", "email_verified"} <= set(claims)


@by_response_type
async def test_oidcc_prompt_none_not_logged_in(
    http: TestClient, registry: Registry, response_type: str
) -> None:
    """OP-prompt-none-NotLoggedIn: login_required, in the fragment."""
    client = await _client(registry)
    params = auth_params(client, response_type=response_type, nonce=new_nonce(), prompt="none")
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert_error_redirect(response.headers["Location"], "login_required", params["state"], fragment=True)


@by_response_type
async def test_oidcc_prompt_none_logged_in(
    http: TestClient, registry: Registry, member: User, response_type: str
) -> None:
    """OP-prompt-none-LoggedIn (a first-party client: its consent is remembered)."""
    client = await _client(registry, first_party=True)
    first = await front_channel(http, client, member, response_type)
    again = await front_channel(http, client, member, response_type, prompt="none")
    assert not again.browsing.login_shown and not again.browsing.consent_shown
    assert again.id_token["sub"] == first.id_token["sub"]
    assert again.id_token["auth_time"] == first.id_token["auth_time"]


@by_response_type
async def test_prompt_none_asks_consent_of_a_third_party_implicit_client(
    http: TestClient, registry: Registry, member: User, response_type: str
) -> None:
    """A third-party implicit client is asked consent every time (RFC 6749 §10.2), so prompt=none
    is consent_required even after a first approval (Core §3.1.2.6)."""
    client = await _client(registry)
    await front_channel(http, client, member, response_type)
    params = auth_params(client, response_type=response_type, nonce=new_nonce(), prompt="none")
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert_error_redirect(response.headers["Location"], "consent_required", params["state"], fragment=True)


@by_response_type
async def test_oidcc_prompt_login(
    http: TestClient, registry: Registry, member: User, response_type: str
) -> None:
    """OP-prompt-login."""
    client = await _client(registry, first_party=True)
    first = await front_channel(http, client, member, response_type)
    again = await front_channel(http, client, member, response_type, prompt="login")
    assert again.browsing.login_shown
    assert again.id_token["sub"] == first.id_token["sub"]
    assert again.id_token["auth_time"] >= first.id_token["auth_time"]


@by_response_type
async def test_oidcc_max_age_10000(
    http: TestClient, registry: Registry, member: User, response_type: str
) -> None:
    """OP-Req-max_age=10000 (max_age=1 is covered by the Basic plan's test, the same code path)."""
    client = await _client(registry, first_party=True)
    first = await front_channel(http, client, member, response_type)
    again = await front_channel(http, client, member, response_type, max_age="10000")
    assert not again.browsing.login_shown
    assert again.id_token["auth_time"] == first.id_token["auth_time"]


@by_response_type
async def test_oidcc_id_token_hint(
    http: TestClient, registry: Registry, member: User, response_type: str
) -> None:
    """OP-Req-id_token_hint."""
    client = await _client(registry, first_party=True)
    first = await front_channel(http, client, member, response_type)
    again = await front_channel(
        http, client, member, response_type, prompt="none", id_token_hint=first.answer["id_token"]
    )
    assert again.id_token["sub"] == first.id_token["sub"]


@by_response_type
@pytest.mark.parametrize(
    "extra",
    [
        {"display": "page"},
        {"display": "popup"},
        {"extra": "foobar"},
        {"ui_locales": "se"},
        {"claims_locales": "se"},
        {"acr_values": "1 2"},
    ],
    ids=[
        "oidcc-display-page",
        "oidcc-display-popup",
        "oidcc-ensure-request-with-unknown-parameter-succeeds",
        "oidcc-ui-locales",
        "oidcc-claims-locales",
        "oidcc-ensure-request-with-acr-values-succeeds",
    ],
)
async def test_oidcc_accepted_parameters(
    http: TestClient, registry: Registry, member: User, response_type: str, extra: dict[str, str]
) -> None:
    """OP-display-page, OP-display-popup, OP-Req-NotUnderstood, OP-Req-ui_locales,
    OP-Req-claims_locales, OP-Req-acr_values: each accepted (one test, one id per module)."""
    client = await _client(registry)
    await front_channel(http, client, member, response_type, **extra)


@by_response_type
async def test_oidcc_login_hint(
    http: TestClient, registry: Registry, member: User, response_type: str
) -> None:
    """OP-Req-login_hint."""
    client = await _client(registry)
    params = auth_params(client, response_type=response_type, nonce=new_nonce(), login_hint=member.username)
    response = await http.get(authorize_url(params), allow_redirects=False)
    page = await (await http.get(response.headers["Location"], allow_redirects=False)).text()
    assert f'value="{member.username}"' in page
    answer = await browse(http, response, member.username)
    assert "id_token=" in answer.headers["Location"].split("#", 1)[1]


@by_response_type
async def test_oidcc_ensure_registered_redirect_uri(
    http: TestClient, registry: Registry, response_type: str
) -> None:
    """OP-redirect_uri-NotReg: an error page; no token ever goes to an unregistered URI."""
    client = await _client(registry)
    params = auth_params(
        client, response_type=response_type, nonce=new_nonce(), redirect_uri="https://attacker.example/cb"
    )
    await assert_error_page(await http.get(authorize_url(params), allow_redirects=False))


@by_response_type
async def test_oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(
    http: TestClient, registry: Registry, response_type: str
) -> None:
    """OP-request-Unsigned / OP-request_uri-Unsigned: rejected as unsupported, in the fragment."""
    client = await _client(registry)
    for name, value, error in (
        ("request", "eyJhbGciOiJub25lIn0.e30.", "request_not_supported"),
        ("request_uri", "https://printer.example/request.jwt", "request_uri_not_supported"),
    ):
        params = auth_params(
            client, response_type=response_type, nonce=new_nonce(), pkce=None, **{name: value}
        )
        response = await http.get(authorize_url(params), allow_redirects=False)
        assert_error_redirect(response.headers["Location"], error, params["state"], fragment=True)


@by_response_type
async def test_oidcc_claims_essential(
    http: TestClient, registry: Registry, member: User, response_type: str
) -> None:
    """OP-claims-essential: name as essential — in the ID token for id_token, at userinfo otherwise."""
    client = await _client(registry)
    target = "id_token" if response_type == "id_token" else "userinfo"
    claims_request = json.dumps({target: {"name": {"essential": True}}})
    flow = await front_channel(http, client, member, response_type, claims=claims_request)
    if target == "id_token":
        assert flow.id_token["name"] == PROFILE["name"]
    else:
        assert "name" not in flow.id_token
        assert (await userinfo_claims(http, flow.answer["access_token"]))["name"] == PROFILE["name"]


@pytest.mark.parametrize("how", ["get", "post_header", "post_body"])
async def test_oidcc_userinfo(http: TestClient, registry: Registry, member: User, how: str) -> None:
    """OP-UserInfo-Endpoint, OP-UserInfo-Header, OP-UserInfo-Body (``id_token token``):
    oidcc-userinfo-get, oidcc-userinfo-post-header, oidcc-userinfo-post-body."""
    client = await _client(registry)
    flow = await front_channel(http, client, member, "id_token token", scope="openid profile")
    claims = await userinfo_claims(http, flow.answer["access_token"], how)
    assert claims["sub"] == flow.id_token["sub"]
    assert claims["nickname"] == PROFILE["nickname"]


async def test_oidcc_response_type_missing(http: TestClient, registry: Registry) -> None:
    """OP-Response-Missing (run once in this plan)."""
    client = await _client(registry)
    params = auth_params(client, response_type="id_token token", nonce=new_nonce())
    del params["response_type"]
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert_error_redirect(response.headers["Location"], "invalid_request", params["state"])


@by_response_type
async def test_oidcc_response_mode_form_post(
    http: TestClient, registry: Registry, member: User, response_type: str
) -> None:
    """oidcc-form-post-implicit plan: the ID token (and token) posted as hidden fields."""
    client = await _client(registry)
    params = auth_params(client, response_type=response_type, nonce=new_nonce(), response_mode="form_post")
    first = await http.get(authorize_url(params), allow_redirects=False)
    page = await browse(http, first, member.username)
    assert page.status == 200
    fields = form_post_fields(await page.text())
    assert fields["state"] == params["state"]
    await verify_id_token(
        http, fields["id_token"], client, nonce=params["nonce"], access_token=fields.get("access_token")
    )
    assert ("access_token" in fields) == (response_type == "id_token token")


@by_response_type
async def test_query_response_mode_cannot_carry_tokens(
    http: TestClient, registry: Registry, response_type: str
) -> None:
    """Multiple Response Types §5: tokens never go in the query; response_mode=query is refused
    (the error itself goes back in the fragment)."""
    client = await _client(registry)
    params = auth_params(client, response_type=response_type, nonce=new_nonce(), response_mode="query")
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert_error_redirect(response.headers["Location"], "invalid_request", params["state"], fragment=True)


async def test_offline_access_brings_no_refresh_token_without_a_code(
    http: TestClient, registry: Registry, member: User
) -> None:
    """Core §11: offline_access is ignored when no code is issued; the scope granted says so."""
    client = await _client(registry)
    flow = await front_channel(http, client, member, "id_token token", scope="openid offline_access")
    assert "refresh_token" not in flow.answer
    assert "offline_access" not in flow.answer["scope"].split()


@by_response_type
async def test_implicit_only_for_clients_registered_for_it(
    http: TestClient, registry: Registry, response_type: str
) -> None:
    """A code-only client asking for an implicit response type is refused (RFC 9700 §2.1.2)."""
    client, _ = await openid_client(registry)
    params = auth_params(client, response_type=response_type, nonce=new_nonce())
    response = await http.get(authorize_url(params), allow_redirects=False)
    location = response.headers["Location"]
    assert "id_token=" not in location and "access_token=" not in location
    assert_error_redirect(location, "unsupported_response_type", params["state"], fragment=True)


async def test_userinfo_refuses_an_implicit_token_after_revocation(
    http: TestClient, registry: Registry, member: User
) -> None:
    """Core §5.3.3: a revoked access token (RFC 7009) is refused like an invalid one."""
    client, secret = await openid_client(registry, grant_types=["implicit"], response_types=RESPONSE_TYPES)
    flow = await front_channel(http, client, member, "id_token token")
    assert (await userinfo(http, flow.answer["access_token"])).status == 200
    revoked = await http.post(
        "/oauth2/revoke", data={"token": flow.answer["access_token"]}, headers=basic(client.client_id, secret)
    )
    assert revoked.status == 200
    assert (await userinfo(http, flow.answer["access_token"])).status == 401
