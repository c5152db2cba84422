"""Every refusal of the authorization-code grant (RFC 6749 §4.1, §10; RFC 7636; RFC 9700 §2.1, §4.1)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import jwt
import pytest
from aiohttp.test_utils import TestClient

from auth_server.crypto import hexdigest
from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.support.flow import REDIRECT_URI, Pkce, authorize_params, basic, obtain_code, query_of
from tests.support.servers import PASSWORD, ClientFactory


async def _authorize(http: TestClient, params: dict[str, str]) -> tuple[int, str, str]:
    response = await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
    return response.status, response.headers.get("Location", ""), await response.text()


async def _redeem(
    http: TestClient, client_id: str, secret: str | None, **form: str
) -> tuple[int, dict[str, str]]:
    data = {"grant_type": "authorization_code", "redirect_uri": REDIRECT_URI, **form}
    headers = basic(client_id, secret) if secret else {}
    if not secret:
        data["client_id"] = client_id
    response = await http.post("/oauth2/token", data=data, headers=headers)
    return response.status, await response.json()


# --- errors shown as a page, never redirected (open-redirect protection) ---


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        "https://printer.example/callback/../evil",
        "https://printer.example/callback?x=1",
        "https://printer.example/callbackX",
        "https://printer.example/Callback",
        "https://printer.example/callback/",
        "https://printer.example@evil.example/callback",
        "https://printer.example/callback#frag",
    ],
)
async def test_unregistered_redirect_uri_gets_an_error_page(
    http: TestClient, new_client: ClientFactory, redirect_uri: str
) -> None:
    client, _ = await new_client()
    status, location, page = await _authorize(
        http, authorize_params(client.client_id, redirect_uri=redirect_uri)
    )
    assert status == 400
    assert location == ""
    assert "redirect_uri is not registered" in page


async def test_unknown_client_gets_an_error_page(http: TestClient) -> None:
    status, location, page = await _authorize(http, authorize_params("no-such-client"))
    assert (status, location) == (400, "")
    assert "Unknown client_id" in page


async def test_repeated_client_id_gets_an_error_page(http: TestClient, new_client: ClientFactory) -> None:
    client, _ = await new_client()
    url = f"/oauth2/authorize?{urlencode(authorize_params(client.client_id))}&client_id={client.client_id}"
    response = await http.get(url, allow_redirects=False)
    assert response.status == 400
    assert "Location" not in response.headers


async def test_error_pages_cannot_be_framed(http: TestClient) -> None:
    response = await http.get("/oauth2/authorize?client_id=nope", allow_redirects=False)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


# --- errors redirected to the verified redirect URI, with state and iss ---


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"response_type": "code bogus"}, "unsupported_response_type"),
        ({"scope": "photos:read admin"}, "invalid_scope"),
        ({"scope": "warehouse:stats"}, "invalid_scope"),  # known, but not allowed for this client
        ({"code_challenge": Pkce.new().challenge, "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": Pkce.new().challenge}, "invalid_request"),  # method defaults to plain
        ({"code_challenge": "too-short", "code_challenge_method": "S256"}, "invalid_request"),
    ],
)
async def test_bad_requests_are_redirected_with_an_error(
    http: TestClient, new_client: ClientFactory, change: dict[str, str], error: str
) -> None:
    client, _ = await new_client()
    status, location, _ = await _authorize(http, {**authorize_params(client.client_id), **change})
    assert status == 302
    assert location.startswith(REDIRECT_URI + "?")
    query = query_of(location)
    assert query["error"] == error
    assert query["error_description"]
    assert query["state"] == "state-123"
    assert query["iss"] == "http://localhost:8000"


async def test_repeated_parameter_is_invalid_request(http: TestClient, new_client: ClientFactory) -> None:
    client, _ = await new_client()
    url = f"/oauth2/authorize?{urlencode(authorize_params(client.client_id))}&scope=photos:write"
    response = await http.get(url, allow_redirects=False)
    assert query_of(response.headers["Location"])["error"] == "invalid_request"


async def test_public_client_must_use_pkce(http: TestClient, new_client: ClientFactory) -> None:
    client, _ = await new_client(public=True)
    _, location, _ = await _authorize(http, authorize_params(client.client_id))
    assert query_of(location)["error"] == "invalid_request"
    assert "PKCE" in query_of(location)["error_description"]


async def test_state_is_required_without_pkce(http: TestClient, new_client: ClientFactory) -> None:
    client, _ = await new_client()
    _, location, _ = await _authorize(http, authorize_params(client.client_id, state=None))
    query = query_of(location)
    assert query["error"] == "invalid_request"
    assert "state" not in query


async def test_state_is_returned_unchanged(http: TestClient, new_client: ClientFactory, user: User) -> None:
    client, _ = await new_client()
    odd_state = "a b&c=d/é?%20"
    redirect = await obtain_code(
        http, authorize_params(client.client_id, state=odd_state), user.username, PASSWORD
    )
    assert redirect["state"] == odd_state
    assert redirect["code"]


async def test_redirect_uri_may_be_omitted_only_with_one_registered(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    single, _ = await new_client()
    redirect = await obtain_code(
        http, authorize_params(single.client_id, redirect_uri=None), user.username, PASSWORD
    )
    assert redirect["code"]
    several, _ = await new_client(redirect_uris=[REDIRECT_URI, "https://printer.example/other"])
    status, location, _ = await _authorize(http, authorize_params(several.client_id, redirect_uri=None))
    assert (status, location) == (400, "")


# --- the token endpoint ---


async def test_replayed_code_is_refused_and_revokes_what_it_issued(
    http: TestClient, new_client: ClientFactory, user: User, registry: Registry
) -> None:
    client, secret = await new_client()
    code = (await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD))["code"]
    status, first = await _redeem(http, client.client_id, secret, code=code)
    assert status == 200
    status, second = await _redeem(http, client.client_id, secret, code=code)
    assert status == 400
    assert second["error"] == "invalid_grant"
    # the refresh token from the first redemption no longer works, and the access token is deny-listed
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers=basic(client.client_id, secret or ""),
    )
    assert (await response.json())["error"] == "invalid_grant"
    jti = jwt.decode(first["access_token"], options={"verify_signature": False})["jti"]
    assert await registry.revoked_tokens.is_revoked(jti)
    assert await _replays_recorded(registry, client.client_id) == 1


async def test_expired_code_is_refused(
    http: TestClient, new_client: ClientFactory, user: User, registry: Registry
) -> None:
    client, secret = await new_client()
    code = (await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD))["code"]
    redis = registry.codes._redis
    key = f"{registry.settings.redis_prefix}code:{{{hexdigest(code)}}}"
    assert await redis.pexpire(key, 1)
    await asyncio.sleep(0.05)
    status, body = await _redeem(http, client.client_id, secret, code=code)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "expired" in body["error_description"]


async def _replays_recorded(registry: Registry, client_id: str) -> int:
    events = await registry.audit.recent("authorization_code.replayed", limit=1000)
    return sum(1 for event in events if event.client_id == client_id)


async def test_code_of_another_client_is_refused_as_unknown_and_left_usable(
    http: TestClient, new_client: ClientFactory, user: User, registry: Registry
) -> None:
    victim, victim_secret = await new_client()
    attacker, attacker_secret = await new_client(name="Attacker")
    code = (await obtain_code(http, authorize_params(victim.client_id), user.username, PASSWORD))["code"]
    status, body = await _redeem(http, attacker.client_id, attacker_secret, code=code)
    _, unknown = await _redeem(http, attacker.client_id, attacker_secret, code="no-such-code")
    # the other client learns nothing: the answer an unknown code gets
    assert (status, body) == (400, unknown)
    # and cannot burn the code: the client it was issued to redeems it
    status, body = await _redeem(http, victim.client_id, victim_secret, code=code)
    assert status == 200, body
    assert await _replays_recorded(registry, attacker.client_id) == 0
    assert await _replays_recorded(registry, victim.client_id) == 0


async def test_wrong_redirect_uri_is_refused_and_the_code_left_usable(
    http: TestClient, new_client: ClientFactory, user: User, registry: Registry
) -> None:
    client, secret = await new_client(redirect_uris=[REDIRECT_URI, "https://printer.example/other"])
    code = (await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD))["code"]
    for wrong in ("https://printer.example/other", "https://printer.example/callbak"):
        status, body = await _redeem(http, client.client_id, secret, code=code, redirect_uri=wrong)
        assert (status, body["error"]) == (400, "invalid_grant")
        assert "redirect_uri" in body["error_description"]
    # a typo is not an attack: the corrected request succeeds, and no replay is recorded
    status, body = await _redeem(http, client.client_id, secret, code=code)
    assert status == 200, body
    assert await _replays_recorded(registry, client.client_id) == 0


async def test_redirect_uri_named_at_authorize_must_be_repeated(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, secret = await new_client()
    code = (await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD))["code"]
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code},
        headers=basic(client.client_id, secret or ""),
    )
    assert (response.status, (await response.json())["error"]) == (400, "invalid_grant")
    status, body = await _redeem(http, client.client_id, secret, code=code)
    assert status == 200, body


@pytest.mark.parametrize("verifier", [None, "wrong-" + "x" * 50, "short", "é" * 50])
async def test_wrong_or_missing_pkce_verifier_is_refused_and_the_code_left_usable(
    http: TestClient, new_client: ClientFactory, user: User, registry: Registry, verifier: str | None
) -> None:
    client, _ = await new_client(public=True)
    pkce = Pkce.new()
    code = (await obtain_code(http, authorize_params(client.client_id, pkce=pkce), user.username, PASSWORD))[
        "code"
    ]
    form = {"code": code} if verifier is None else {"code": code, "code_verifier": verifier}
    status, body = await _redeem(http, client.client_id, None, **form)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "code_verifier" in body["error_description"]
    status, body = await _redeem(http, client.client_id, None, code=code, code_verifier=pkce.verifier)
    assert status == 200, body
    assert await _replays_recorded(registry, client.client_id) == 0


async def test_verifier_without_challenge_is_refused(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    """RFC 9700 §2.1.1: PKCE downgrade - a verifier where no challenge was sent means an injected code."""
    client, secret = await new_client()
    code = (await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD))["code"]
    status, body = await _redeem(http, client.client_id, secret, code=code, code_verifier=Pkce.new().verifier)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "no code_challenge" in body["error_description"]
    status, body = await _redeem(http, client.client_id, secret, code=code)
    assert status == 200, body


async def test_mistakes_then_success_then_a_real_replay_revokes(
    http: TestClient, new_client: ClientFactory, user: User, registry: Registry
) -> None:
    client, secret = await new_client()
    code = (await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD))["code"]
    status, _ = await _redeem(http, client.client_id, secret, code=code, redirect_uri=REDIRECT_URI + "x")
    assert status == 400
    status, first = await _redeem(http, client.client_id, secret, code=code)
    assert status == 200
    # a second redemption after success is a replay, even with a request that would not match
    for form in ({"redirect_uri": REDIRECT_URI + "x"}, {}):
        status, body = await _redeem(http, client.client_id, secret, code=code, **form)
        assert (status, body["error"]) == (400, "invalid_grant")
        assert "already used" in body["error_description"]
    assert await _replays_recorded(registry, client.client_id) == 2
    jti = jwt.decode(first["access_token"], options={"verify_signature": False})["jti"]
    assert await registry.revoked_tokens.is_revoked(jti)


async def test_concurrent_redemptions_yield_exactly_one_token_which_the_replays_revoke(
    http: TestClient, new_client: ClientFactory, user: User, registry: Registry
) -> None:
    client, secret = await new_client()
    code = (await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD))["code"]
    results = await asyncio.gather(*(_redeem(http, client.client_id, secret, code=code) for _ in range(50)))
    assert sorted(status for status, _ in results) == [200] + [400] * 49
    assert all(body["error"] == "invalid_grant" for status, body in results if status == 400)
    (issued,) = [body for status, body in results if status == 200]
    jti = jwt.decode(issued["access_token"], options={"verify_signature": False})["jti"]
    assert await registry.revoked_tokens.is_revoked(jti)
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
        headers=basic(client.client_id, secret or ""),
    )
    assert (await response.json())["error"] == "invalid_grant"
