"""Regression tests for the security review of the OpenID Connect provider (commit 688ac8e).

Each test guards one finding: it failed against that commit and passes once the finding is fixed.
They run against the real app (PostgreSQL and Redis), as the other conformance modules do.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
import redis.exceptions
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from auth_server.crypto import hash_password
from auth_server.registration import RegistrationError
from auth_server.registry import Registry
from auth_server.stores.logout_deliveries import Delivery
from auth_server.stores.users import User
from tests.conformance.support import (
    END_SESSION,
    REDIRECT_URI,
    assert_error_page,
    assert_error_redirect,
    auth_params,
    authorize_url,
    browse,
    code_flow,
    in_query,
    login_form,
    new_nonce,
    openid_client,
    redeem,
    signed_in_silently,
    token_error,
    tokens_of,
    verify_id_token,
)
from tests.support.flow import basic
from tests.support.servers import PASSWORD

SIGNED_OUT = "https://printer.example/out"


def unverified(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def session_cookie(http: TestClient) -> str:
    """The browser's session cookie (its name depends on ``secure_cookies``)."""
    [value] = [c.value for c in http.session.cookie_jar if c.key.endswith("tessera_session")]
    return value


class Enqueued:
    """Records the back-channel logout deliveries queued, and queues them as usual: the app's own
    worker may deliver (or give up on) them at any time, so the queue itself is no witness."""

    def __init__(self, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
        self.deliveries: list[Delivery] = []
        self._real = registry.logout_deliveries.enqueue
        monkeypatch.setattr(registry.logout_deliveries, "enqueue", self._enqueue)

    async def _enqueue(self, delivery: Delivery) -> Delivery:
        queued = await self._real(delivery)
        self.deliveries.append(queued)
        return queued

    def to(self, client_id: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.client_id == client_id]


async def resumed_request(response: ClientResponse) -> str:
    """The login redirect's ``return_to``: the authorization request the login page resumes."""
    location = response.headers.get("Location", "")
    assert response.status == 302 and location.startswith("/login"), f"{response.status} {location}"
    return dict(parse_qsl(urlsplit(location).query))["return_to"]


# -- r1: pairwise subjects --------------------------------------------------------------------------


async def test_a_pairwise_client_introspecting_its_token_sees_its_pairwise_sub(
    http: TestClient, registry: Registry, member: User
) -> None:
    """OpenID Connect Core §8: a pairwise client never learns the user's own id or username."""
    client, secret = await openid_client(registry, subject_type="pairwise", allow_introspection=True)
    login = await code_flow(http, client, secret, member, scope="openid profile")
    assert login.id_token["sub"] != member.subject

    response = await http.post(
        "/oauth2/introspect",
        data={"token": login.tokens["access_token"]},
        headers=basic(client.client_id, secret),
    )
    body = await response.json()
    assert response.status == 200 and body["active"] is True, body
    assert body["sub"] == login.id_token["sub"], body
    assert "username" not in body, body
    assert member.subject not in json.dumps(body) and member.username not in json.dumps(body)


# -- r2: loopback sectors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri", ["http://127.0.0.1:1111/cb", "http://localhost:2222/cb", "http://[::1]:3333/cb"]
)
async def test_a_pairwise_client_on_loopback_must_register_a_sector_identifier_uri(
    registry: Registry, redirect_uri: str
) -> None:
    """OpenID Connect Core §8.1: the loopback host is every native app's, not one sector."""
    with pytest.raises(RegistrationError, match="sector_identifier_uri"):
        await openid_client(registry, subject_type="pairwise", redirect_uris=[redirect_uri])


# -- r3, r4: forced sign-in -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "forcing", [{"prompt": "login"}, {"max_age": "0"}], ids=["prompt_login", "max_age_0"]
)
async def test_the_resumed_request_of_a_forced_sign_in_needs_that_sign_in(
    http: TestClient, registry: Registry, member: User, forcing: dict[str, str]
) -> None:
    """OpenID Connect Core §3.1.2.1: prompt=login / max_age=0 are not skipped by opening return_to."""
    client, secret = await openid_client(registry)
    first = await code_flow(http, client, secret, member)
    await asyncio.sleep(1.1)  # auth_time is in seconds: the sign-in asked for must be a later one

    params = {**auth_params(client, nonce=new_nonce()), **forcing}
    return_to = await resumed_request(await http.get(authorize_url(params), allow_redirects=False))

    # the browser opens the resumed request without signing in: back to the login page, no code
    skipped = await http.get(return_to, allow_redirects=False)
    location = skipped.headers.get("Location", "")
    assert skipped.status == 302 and location.startswith("/login"), f"{skipped.status} {location}"
    assert "code" not in dict(parse_qsl(urlsplit(location).query))

    # signing in answers it, once, with an ID token saying when
    following = await login_form(http, location, member.username)
    answer = await browse(http, await http.get(following, allow_redirects=False), member.username)
    code = in_query(answer.headers["Location"])["code"]
    tokens = await tokens_of(await redeem(http, client, secret, code))
    claims = await verify_id_token(http, tokens["id_token"], client, nonce=params["nonce"])
    assert claims["auth_time"] > first.id_token["auth_time"], claims


async def test_a_client_with_default_max_age_0_gets_a_code_after_one_sign_in(
    http: TestClient, registry: Registry, member: User
) -> None:
    """OpenID Connect Registration §2: default_max_age=0 asks for a fresh sign-in, not endless ones."""
    client, secret = await openid_client(registry, default_max_age=0)
    params = auth_params(client, nonce=new_nonce())
    first = await http.get(authorize_url(params), allow_redirects=False)
    await resumed_request(first)

    following = await login_form(http, first.headers["Location"], member.username)
    after = await http.get(following, allow_redirects=False)
    # at most the consent page now: never the login page again
    assert not after.headers.get("Location", "").startswith("/login"), after.headers.get("Location")
    answer = await browse(http, after, member.username)
    location = answer.headers.get("Location", "")
    assert answer.status in (302, 303) and location.startswith(REDIRECT_URI), f"{answer.status} {location}"
    code = in_query(location)["code"]
    tokens = await tokens_of(await redeem(http, client, secret, code))
    await verify_id_token(http, tokens["id_token"], client, nonce=params["nonce"])


# -- r5: another user signs in ----------------------------------------------------------------------


async def test_another_user_signing_in_ends_the_first_session_with_back_channel_logout(
    http: TestClient, registry: Registry, member: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Back-Channel Logout 1.0 §2.3: the first user's session ends, and its clients are told."""
    other = await registry.users.create(f"other-{member.username}", hash_password(PASSWORD))
    client, secret = await openid_client(registry, backchannel_logout_uri="https://rp.example/bc")
    first = await code_flow(http, client, secret, member)
    enqueued = Enqueued(registry, monkeypatch)

    params = auth_params(client, nonce=new_nonce(), prompt="login")
    asked = await http.get(authorize_url(params), allow_redirects=False)
    await resumed_request(asked)
    following = await login_form(http, asked.headers["Location"], other.username)
    answer = await browse(http, await http.get(following, allow_redirects=False), other.username)
    tokens = await tokens_of(await redeem(http, client, secret, in_query(answer.headers["Location"])["code"]))
    second = await verify_id_token(http, tokens["id_token"], client, nonce=params["nonce"])
    assert second["sid"] != first.id_token["sid"]

    deliveries = enqueued.to(client.client_id)
    assert len(deliveries) == 1, f"the first user's client was queued {len(deliveries)} logout tokens"
    [delivery] = deliveries
    assert delivery.sid == first.id_token["sid"]
    assert delivery.sub == first.id_token["sub"]
    assert delivery.user_id == member.subject


# -- r6: the claims parameter -----------------------------------------------------------------------


async def test_made_up_userinfo_claim_names_are_not_copied_into_the_access_token(
    http: TestClient, registry: Registry, member: User
) -> None:
    """OpenID Connect Core §5.5: claims that are not supported are ignored."""
    client, secret = await openid_client(registry)
    asked: dict[str, Any] = {f"made_up_{i:03d}": None for i in range(150)}
    asked["email"] = None
    claims = json.dumps({"userinfo": asked})
    assert len(claims) < 4096
    login = await code_flow(http, client, secret, member, scope="openid email", claims=claims)

    access = unverified(login.tokens["access_token"])
    assert access.get("userinfo_claims") == ["email"], access.get("userinfo_claims")
    response = await http.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {login.tokens['access_token']}"}
    )
    assert response.status == 200, await response.text()


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_claims_parameter_over_4096_characters_is_an_invalid_request(
    http: TestClient, registry: Registry, member: User, method: str
) -> None:
    """OpenID Connect Core §3.1.2.6: invalid_request, sent back to the client with state."""
    client, secret = await openid_client(registry)
    await code_flow(http, client, secret, member)  # signed in and consented: a code would be answered
    claims = json.dumps({"userinfo": {f"made_up_{i:04d}": None for i in range(300)}})
    assert len(claims) > 4096
    params = auth_params(client, nonce=new_nonce(), claims=claims)
    response = await authorization_request(http, method, params)
    assert response.status in (302, 303), f"{response.status}: {await response.text()}"
    assert_error_redirect(response.headers["Location"], "invalid_request", params["state"])


# -- r7: id_token_hint ------------------------------------------------------------------------------


async def test_a_signed_userinfo_response_is_no_id_token_hint(
    http: TestClient, registry: Registry, member: User
) -> None:
    """RP-Initiated Logout 1.0 §2: id_token_hint must be an ID token; §4: errors are not redirected."""
    client, secret = await openid_client(
        registry, userinfo_signed_response_alg="RS256", post_logout_redirect_uris=[SIGNED_OUT]
    )
    login = await code_flow(http, client, secret, member)
    response = await http.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {login.tokens['access_token']}"}
    )
    assert response.status == 200 and response.content_type == "application/jwt"
    signed = await response.text()
    assert unverified(signed)["sub"] == login.id_token["sub"]  # same issuer, sub and audience

    refused = await http.get(
        END_SESSION,
        params={"id_token_hint": signed, "post_logout_redirect_uri": SIGNED_OUT},
        allow_redirects=False,
    )
    await assert_error_page(refused)
    assert "code" in await signed_in_silently(http, client)  # still signed in


# -- r8: codes of an ended session ------------------------------------------------------------------


async def test_a_code_issued_in_a_session_that_ended_is_an_invalid_grant(
    http: TestClient, registry: Registry, member: User
) -> None:
    """Back-Channel Logout 1.0 §2.3: no ID token may name a session its client was told had ended."""
    client, secret = await openid_client(registry, backchannel_logout_uri="https://rp.example/bc")
    first = await code_flow(http, client, secret, member)
    params = auth_params(client, nonce=new_nonce())
    answer = await browse(http, await http.get(authorize_url(params), allow_redirects=False), member.username)
    code = in_query(answer.headers["Location"])["code"]

    signed_out = await http.get(
        END_SESSION, params={"id_token_hint": first.tokens["id_token"]}, allow_redirects=False
    )
    assert signed_out.status == 200, await signed_out.text()  # the "You are signed out" page
    assert (await signed_in_silently(http, client)).get("error") == "login_required"

    await token_error(await redeem(http, client, secret, code), "invalid_grant")


# -- r9, r10: malformed authorization parameters ----------------------------------------------------


async def authorization_request(http: TestClient, method: str, params: dict[str, str]) -> ClientResponse:
    if method == "GET":
        return await http.get(authorize_url(params), allow_redirects=False)
    return await http.post("/oauth2/authorize", data=params, allow_redirects=False)


@pytest.mark.parametrize(
    ("method", "malformed"),
    [
        ("GET", {"max_age": "\u00b2"}),
        ("POST", {"max_age": "\u00b2"}),
        # deeper than Python's recursion limit, shorter than the claims limit (4096 characters);
        # a GET's query line holds 8190 bytes, 2000 "[" (%5B) at most
        ("GET", {"claims": "[" * 2000}),
        ("POST", {"claims": "[" * 3000}),
        ("POST", {"claims": "[" * 5000}),  # over the claims limit too
    ],
    ids=[
        "GET-max_age_superscript_two",
        "POST-max_age_superscript_two",
        "GET-claims_nested_2000",
        "POST-claims_nested_3000",
        "POST-claims_nested_5000",
    ],
)
async def test_malformed_max_age_or_claims_is_an_invalid_request_not_a_server_error(
    http: TestClient, registry: Registry, method: str, malformed: dict[str, str]
) -> None:
    """OpenID Connect Core §3.1.2.6: invalid_request, sent back to the client with state."""
    client, _ = await openid_client(registry)
    params = {**auth_params(client, nonce=new_nonce()), **malformed}
    response = await authorization_request(http, method, params)
    assert response.status in (302, 303), f"{response.status}: {await response.text()}"
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI), location
    assert_error_redirect(location, "invalid_request", params["state"])


# -- r11: a Redis failure during logout -------------------------------------------------------------


async def test_a_logout_that_could_not_queue_its_notices_can_be_retried_and_tells_every_client(
    http: TestClient, registry: Registry, member: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Back-Channel Logout 1.0 §2.3: every client that got an ID token in the session is told."""
    a, sa = await openid_client(registry, backchannel_logout_uri="https://rp-a.example/bc", name="A")
    b, sb = await openid_client(registry, backchannel_logout_uri="https://rp-b.example/bc", name="B")
    la = await code_flow(http, a, sa, member)
    lb = await code_flow(http, b, sb, member)
    sid = la.id_token["sid"]
    assert lb.id_token["sid"] == sid
    cookie = session_cookie(http)

    async def unreachable(delivery: Delivery) -> Delivery:
        raise redis.exceptions.ConnectionError("injected: Redis unreachable")

    with monkeypatch.context() as blip:
        blip.setattr(registry.logout_deliveries, "enqueue", unreachable)
        failed = await http.get(
            END_SESSION, params={"id_token_hint": la.tokens["id_token"]}, allow_redirects=False
        )
    assert failed.status == 503, f"{failed.status}: {failed.headers.get('Location')}"
    session = await registry.sessions.get(cookie)
    assert session is not None and session.sid == sid, session
    assert await registry.sessions.clients(sid) == sorted([a.client_id, b.client_id])

    enqueued = Enqueued(registry, monkeypatch)
    retried = await http.get(
        END_SESSION, params={"id_token_hint": la.tokens["id_token"]}, allow_redirects=False
    )
    assert retried.status == 200, await retried.text()  # the "You are signed out" page
    assert [d.sid for d in enqueued.to(a.client_id)] == [sid]
    assert [d.sid for d in enqueued.to(b.client_id)] == [sid]
    assert await registry.sessions.get(cookie) is None
