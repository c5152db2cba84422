"""The OpenID Foundation's Back-Channel Logout OP plan
(``oidcc-backchannel-rp-initiated-logout-certification-test-plan``), against Back-Channel Logout 1.0.

The relying party's ``backchannel_logout_uri`` is a real aiohttp server on loopback; the app under
test delivers logout tokens from its Redis queue with its own worker, as in production. Each token
is checked as the suite's conditions check it: the request (a form with ``logout_token`` only,
§2.5), the signature against the published JWK Set (§2.4), the claims (``iss aud iat exp jti
events``, ``sid`` and/or ``sub`` matching the ID token, no ``nonce``), and ``typ: logout+jwt``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from auth_server.clients import Client
from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.conformance.support import (
    BACKCHANNEL_EVENT,
    DISCOVERY,
    ISSUER,
    SIGNED_OUT,
    BackchannelReceiver,
    Login,
    code_flow,
    end_session,
    jwks,
    openid_client,
    signed_in_silently,
)
from tests.support.servers import free_port


@pytest.fixture
async def relying_party() -> AsyncIterator[BackchannelReceiver]:
    receiver = BackchannelReceiver()
    app = web.Application()
    app.router.add_post("/backchannel_logout", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    receiver.url = f"http://127.0.0.1:{port}/backchannel_logout"
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def _client(registry: Registry, receiver: BackchannelReceiver, **openid: Any) -> tuple[Client, str]:
    return await openid_client(
        registry,
        post_logout_redirect_uris=[SIGNED_OUT],
        backchannel_logout_uri=receiver.url,
        backchannel_logout_session_required=True,
        **openid,
    )


async def _logout_token(
    http: TestClient, receiver: BackchannelReceiver, client: Client
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The logout token the relying party received: its header and verified claims."""
    [(content_type, form)] = await receiver.received(1)
    assert content_type == "application/x-www-form-urlencoded"
    assert set(form) == {"logout_token"}  # CheckForUnexpectedParametersInBackchannelLogoutRequest
    token = form["logout_token"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "logout+jwt"  # §2.4: explicitly typed
    assert header["alg"] == client.id_token_signed_response_alg
    key = jwt.PyJWKSet.from_dict(await jwks(http))[header["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[header["alg"]],
        audience=client.client_id,
        issuer=ISSUER,
        options={"require": ["iss", "aud", "iat", "exp", "jti", "events"]},
    )
    assert claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert "nonce" not in claims  # §2.4: prohibited
    assert "sub" in claims or "sid" in claims
    assert abs(claims["iat"] - time.time()) < 60
    return header, claims


def _matches_id_token(claims: dict[str, Any], login: Login) -> None:
    """CheckIdTokenSubMatchesLogoutToken, CheckIdTokenSidMatchesLogoutToken."""
    if "sub" in claims:
        assert claims["sub"] == login.id_token["sub"]
    assert claims["sid"] == login.id_token["sid"]  # backchannel_logout_session_required


async def test_oidcc_backchannel_logout_discovery_endpoint_verification(http: TestClient) -> None:
    """OP-BackChannel-Discovery: backchannel_logout_supported and _session_supported (§2.1)."""
    document = await (await http.get(DISCOVERY)).json()
    assert document["backchannel_logout_supported"] is True
    assert document["backchannel_logout_session_supported"] is True
    assert document["end_session_endpoint"].startswith(ISSUER)


async def test_oidcc_backchannel_rp_initiated_logout(
    http: TestClient, registry: Registry, member: User, relying_party: BackchannelReceiver
) -> None:
    """OP-BackChannel-RpInitLogout: RP-initiated logout calls the client's backchannel_logout_uri
    with a valid logout token and sends the user to post_logout_redirect_uri with state; prompt=none
    then says login_required."""
    client, secret = await _client(registry, relying_party)
    login = await code_flow(http, client, secret, member)
    response = await end_session(
        http, id_token_hint=login.tokens["id_token"], post_logout_redirect_uri=SIGNED_OUT, state="bc"
    )
    assert response.status == 302
    assert response.headers["Location"] == f"{SIGNED_OUT}?state=bc"  # CheckPostLogoutState
    _, claims = await _logout_token(http, relying_party, client)
    _matches_id_token(claims, login)
    answer = await signed_in_silently(http, client)
    assert answer.get("error") == "login_required", answer
    assert len(relying_party.requests) == 1


async def test_backchannel_logout_token_carries_the_pairwise_sub_and_the_clients_alg(
    http: TestClient, registry: Registry, member: User, relying_party: BackchannelReceiver
) -> None:
    """A pairwise ES256 client: the logout token says the sub that client knows, signed with its alg."""
    client, secret = await _client(
        registry, relying_party, subject_type="pairwise", id_token_signed_response_alg="ES256"
    )
    login = await code_flow(http, client, secret, member)
    assert login.id_token["sub"] != member.subject
    response = await end_session(http, id_token_hint=login.tokens["id_token"])
    assert response.status == 200
    header, claims = await _logout_token(http, relying_party, client)
    assert header["alg"] == "ES256"
    _matches_id_token(claims, login)


async def test_backchannel_logout_reaches_every_client_of_the_session(
    http: TestClient, registry: Registry, member: User, relying_party: BackchannelReceiver
) -> None:
    """Logging out through one client tells each client that got an ID token in the session (§2.3)."""
    first, first_secret = await _client(registry, relying_party)
    second, second_secret = await _client(registry, relying_party, name="Second App")
    one = await code_flow(http, first, first_secret, member)
    two = await code_flow(http, second, second_secret, member)
    assert one.id_token["sid"] == two.id_token["sid"]
    response = await end_session(
        http, id_token_hint=one.tokens["id_token"], post_logout_redirect_uri=SIGNED_OUT
    )
    assert response.status == 302
    audiences = set()
    for _, form in await relying_party.received(2):
        claims = jwt.decode(form["logout_token"], options={"verify_signature": False})
        audiences.add(claims["aud"] if isinstance(claims["aud"], str) else claims["aud"][0])
        assert claims["sid"] == one.id_token["sid"]
    assert audiences == {first.client_id, second.client_id}
