"""Two-step sign-in (issue 18) with an authenticator app (RFC 6238) and recovery codes.

Turned on at ``/account/security`` with a code from pyotp, then asked for after the password:
codes one step either side of now are accepted, two steps are not, a used code is refused when
replayed (and so is any earlier one), recovery codes work once, wrong second steps count towards
the lockout the login page and the password grant share, the password grant refuses two-step users,
and ID tokens say what was used (``amr``, ``acr``). A request's ``acr_values`` (or its client's
``default_acr_values``) can demand two-step sign-in of a user signed in with her password alone.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlencode

import jwt
import pyotp
import pytest
from aiohttp.test_utils import TestClient

from auth_server.endpoints import security as security_page
from auth_server.oidc.acr import ACR_MFA, ACR_PASSWORD
from auth_server.registry import Registry
from auth_server.stores.users import User
from auth_server.two_step import recovery, totp
from tests.support.flow import REDIRECT_URI, Pkce, basic, hidden, query_of
from tests.support.servers import PASSWORD, ClientFactory


def steady() -> None:
    """Wait until at least 4 s remain in the current 30-second step, so that a test's idea of "now"
    and the server's stay in one step (the window tests count steps exactly)."""
    left = totp.STEP - time.time() % totp.STEP
    if left < 4:
        time.sleep(left + 0.1)


def code_at(secret: str, steps: int) -> str:
    """The code of the step ``steps`` away from now."""
    return pyotp.TOTP(secret).at(time.time() + steps * totp.STEP)


async def turn_on_app(registry: Registry, user: User) -> tuple[str, list[str]]:
    """Her authenticator app on (as the security page leaves it), and ten recovery codes."""
    secret = totp.new_secret()
    assert await registry.two_step.start_totp(user.user_id, secret)
    assert await registry.two_step.confirm_totp(user.user_id)
    codes = recovery.new_codes()
    await registry.two_step.replace_recovery_codes(user.user_id, [recovery.code_hash(c) for c in codes])  # type: ignore[misc]
    return secret, codes


async def password_step(http: TestClient, username: str, return_to: str = "/account") -> str:
    """Sign in with the password; the two-step page it leads to (asserted)."""
    page = await (await http.get("/login", params={"return_to": return_to})).text()
    response = await http.post(
        "/login",
        data={
            "username": username,
            "password": PASSWORD,
            "csrf_token": hidden(page, "csrf_token"),
            "return_to": return_to,
        },
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/login/two-step"
    second = await http.get("/login/two-step", allow_redirects=False)
    assert second.status == 200
    return await second.text()


async def second_step(http: TestClient, page: str, code: str, method: str = "totp") -> Any:
    return await http.post(
        "/login/two-step",
        data={"csrf_token": hidden(page, "csrf_token"), "method": method, "code": code},
        allow_redirects=False,
    )


async def signed_in(http: TestClient) -> bool:
    return (await http.get("/account", allow_redirects=False)).status == 200


def forget_browser(http: TestClient) -> None:
    http.session.cookie_jar.clear()


# -- turning it on ---------------------------------------------------------------------------------


async def test_turned_on_with_a_code_from_the_app_then_asked_for_at_sign_in(
    http: TestClient, registry: Registry, user: User
) -> None:
    page = await (await http.get("/login", params={"return_to": "/account/security"})).text()
    await http.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": hidden(page, "csrf_token")},
    )
    security = await (await http.get("/account/security")).text()
    assert 'id="two-step-state">Off' in security
    started = await http.post(
        "/account/security/totp", data={"csrf_token": hidden(security, "csrf_token")}, allow_redirects=False
    )
    assert (started.status, started.headers["Location"]) == (303, "/account/security/totp")
    setup = await http.get("/account/security/totp")
    setup_page = await setup.text()
    assert setup.headers["X-Frame-Options"] == "DENY"
    assert "<svg" in setup_page and "frame-ancestors 'none'" in setup.headers["Content-Security-Policy"]
    shown = re.search(r'id="secret"[^>]*>([A-Z2-7 ]+)<', setup_page)
    assert shown is not None
    secret = shown.group(1).replace(" ", "")
    assert len(secret) == 32
    # the seed is stored encrypted, never in the clear
    async with registry.two_step._pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT secret_encrypted FROM totp_authenticators WHERE user_id = $1", user.user_id
        )
    assert secret.encode() not in stored
    wrong = await http.post(
        "/account/security/totp/confirm",
        data={"csrf_token": hidden(setup_page, "csrf_token"), "code": "000000"},
    )
    assert wrong.status == 400 and "not right" in await wrong.text()
    assert not await registry.two_step.enabled(user.user_id)
    steady()
    confirmed = await http.post(
        "/account/security/totp/confirm",
        data={"csrf_token": hidden(setup_page, "csrf_token"), "code": pyotp.TOTP(secret).now()},
    )
    codes_page = await confirmed.text()
    assert confirmed.status == 200 and "Two-step sign-in is on" in codes_page
    codes = re.findall(r"<code>([0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4})</code>", codes_page)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert await registry.two_step.enabled(user.user_id)
    assert 'id="two-step-state">On' in await (await http.get("/account/security")).text()

    # a new browser: the password alone signs nobody in
    forget_browser(http)
    two_step_page = await password_step(http, user.username)
    assert not await signed_in(http)
    assert "Code from your authenticator app" in two_step_page
    # the code just used to turn it on is spent: the next one (a step ahead) signs her in
    done = await second_step(http, two_step_page, code_at(secret, 1))
    assert (done.status, done.headers["Location"]) == (303, "/account")
    assert await signed_in(http)


async def test_turning_the_app_off_needs_the_password_or_a_code(
    http: TestClient, registry: Registry, user: User
) -> None:
    steady()
    secret, _ = await turn_on_app(registry, user)
    page = await password_step(http, user.username, "/account/security")
    await second_step(http, page, code_at(secret, 0))
    security = await (await http.get("/account/security")).text()
    csrf = hidden(security, "csrf_token")
    refused = await http.post("/account/security/totp/off", data={"csrf_token": csrf, "password": "wrong"})
    assert refused.status == 400 and await registry.two_step.enabled(user.user_id)
    nothing = await http.post("/account/security/totp/off", data={"csrf_token": csrf})
    assert nothing.status == 400 and await registry.two_step.enabled(user.user_id)
    off = await http.post(
        "/account/security/totp/off",
        data={"csrf_token": csrf, "code": code_at(secret, 1)},
        allow_redirects=False,
    )
    assert (off.status, off.headers["Location"]) == (303, "/account/security?done=totp-off")
    assert not await registry.two_step.enabled(user.user_id)
    assert (await registry.two_step.status(user.user_id)).recovery_codes_left == 0  # off: codes gone


# -- the window and replays ------------------------------------------------------------------------


async def test_one_step_either_side_is_accepted_two_steps_are_not(
    http: TestClient, registry: Registry, user: User
) -> None:
    secret, _ = await turn_on_app(registry, user)
    steady()
    for steps in (-2, 2):
        forget_browser(http)
        page = await password_step(http, user.username)
        refused = await second_step(http, page, code_at(secret, steps))
        assert refused.status == 400, steps
        assert "not right" in await refused.text()
        assert not await signed_in(http)
    for steps in (-1, 1):  # in this order: once a step is used, no earlier one is accepted
        forget_browser(http)
        page = await password_step(http, user.username)
        accepted = await second_step(http, page, code_at(secret, steps))
        assert accepted.status == 303, (steps, await accepted.text())
        assert await signed_in(http)


async def test_a_used_code_is_refused_when_replayed(http: TestClient, registry: Registry, user: User) -> None:
    secret, _ = await turn_on_app(registry, user)
    steady()
    code = code_at(secret, 0)
    page = await password_step(http, user.username)
    assert (await second_step(http, page, code)).status == 303
    # another browser (an onlooker who saw the code) replays it within its 30 seconds
    forget_browser(http)
    page = await password_step(http, user.username)
    replayed = await second_step(http, page, code)
    assert replayed.status == 400 and "used already" in await replayed.text()
    earlier = await second_step(http, await (await http.get("/login/two-step")).text(), code_at(secret, -1))
    assert earlier.status == 400  # an earlier step than one used is refused too
    assert not await signed_in(http)


async def test_the_replay_guard_is_shared_in_redis(registry: Registry, user: User) -> None:
    """Two replicas share it: the store's answer for one step, asked twice, is yes then no."""
    step = int(time.time()) // totp.STEP
    assert await registry.two_step.use_step(user.user_id, step)
    assert not await registry.two_step.use_step(user.user_id, step)
    assert not await registry.two_step.use_step(user.user_id, step - 1)
    assert await registry.two_step.use_step(user.user_id, step + 1)


# -- recovery codes --------------------------------------------------------------------------------


async def test_recovery_codes_work_once(http: TestClient, registry: Registry, user: User) -> None:
    _, codes = await turn_on_app(registry, user)
    page = await password_step(http, user.username)
    # typed loosely: upper case, spaces for hyphens
    used = await second_step(http, page, codes[0].upper().replace("-", " "), method="recovery")
    assert used.status == 303
    assert await signed_in(http)
    assert (await registry.two_step.status(user.user_id)).recovery_codes_left == 9
    forget_browser(http)
    page = await password_step(http, user.username)
    again = await second_step(http, page, codes[0], method="recovery")
    assert again.status == 400 and "used already" in await again.text()
    assert not await signed_in(http)


# -- the lockout -----------------------------------------------------------------------------------


async def test_wrong_second_steps_count_towards_the_lockout(
    http: TestClient, registry: Registry, user: User
) -> None:
    secret, _ = await turn_on_app(registry, user)
    limit = registry.settings.login_max_failures
    page = await password_step(http, user.username)
    for attempt in range(limit):
        wrong = await second_step(http, page, "000000" if code_at(secret, 0) != "000000" else "111111")
        assert wrong.status == 400, attempt
    # the last wrong code ended the half-done sign-in, and the account is now locked for this address
    assert "Sign in again" in await wrong.text()
    assert (await http.get("/login/two-step", allow_redirects=False)).status == 303
    page = await (await http.get("/login")).text()
    locked = await http.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": hidden(page, "csrf_token")},
        allow_redirects=False,
    )
    assert locked.status == 429 and "Retry-After" in locked.headers
    failed = [e for e in await registry.audit.recent("login.failed", limit=500) if e.subject == user.subject]
    assert len(failed) == limit and all(e.details["via"] == "two_step" for e in failed)
    assert any(e.subject == user.subject for e in await registry.audit.recent("login.locked_out", limit=500))
    verified = await registry.audit.recent("login.password_verified", limit=500)
    assert any(e.subject == user.subject for e in verified)  # the password step: no success counted


async def test_the_half_done_sign_in_authorizes_nothing(
    http: TestClient, registry: Registry, user: User, new_client: ClientFactory
) -> None:
    await turn_on_app(registry, user)
    client, _ = await new_client()
    await password_step(http, user.username)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "photos:read",
        "state": "s",
    }
    response = await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/login?")
    assert (await http.get("/account/security", allow_redirects=False)).status == 303


# -- the password grant ----------------------------------------------------------------------------


async def test_the_password_grant_refuses_two_step_users(
    http: TestClient, registry: Registry, user: User, new_client: ClientFactory
) -> None:
    client, secret = await new_client(grant_types=["password"])
    assert secret
    data = {"grant_type": "password", "username": user.username, "password": PASSWORD}
    assert (
        await http.post("/oauth2/token", data=data, headers=basic(client.client_id, secret))
    ).status == 200
    await turn_on_app(registry, user)
    refused = await http.post("/oauth2/token", data=data, headers=basic(client.client_id, secret))
    body = await refused.json()
    assert refused.status == 400 and body["error"] == "invalid_grant"
    assert "two-step sign-in" in body["error_description"]


# -- amr and acr -----------------------------------------------------------------------------------


async def openid_client(new_client: ClientFactory, **metadata: Any) -> tuple[str, str]:
    client, secret = await new_client(scope="openid photos:read", **metadata)
    assert secret
    return client.client_id, secret


def authorization(client_id: str, pkce: Pkce, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid photos:read",
        "state": "state-1",
        "nonce": "nonce-1",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"/oauth2/authorize?{urlencode(params)}"


async def answered(http: TestClient, url: str) -> dict[str, str]:
    """Follow /authorize (and the consent page) to the client's redirect; its query."""
    response = await http.get(url, allow_redirects=False)
    if response.status == 200:
        page = await response.text()
        response = await http.post(
            "/consent",
            data={
                "csrf_token": hidden(page, "csrf_token"),
                "request_id": hidden(page, "request_id"),
                "consent": "allow",
            },
            allow_redirects=False,
        )
    assert response.status in (302, 303), await response.text()
    assert response.headers["Location"].startswith(REDIRECT_URI), response.headers["Location"]
    return query_of(response.headers["Location"])


async def id_token(http: TestClient, client: tuple[str, str], code: str, pkce: Pkce) -> dict[str, Any]:
    response = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": pkce.verifier,
        },
        headers=basic(*client),
    )
    assert response.status == 200, await response.text()
    claims: dict[str, Any] = jwt.decode(
        (await response.json())["id_token"], options={"verify_signature": False}
    )
    return claims


async def test_amr_and_acr_say_what_was_used(
    http: TestClient, registry: Registry, user: User, new_client: ClientFactory
) -> None:
    client = await openid_client(new_client)
    metadata = await (await http.get("/.well-known/openid-configuration")).json()
    assert metadata["acr_values_supported"] == [ACR_PASSWORD, ACR_MFA]

    pkce = Pkce.new()
    url = authorization(client[0], pkce)
    response = await http.get(url, allow_redirects=False)
    return_to = query_of(response.headers["Location"])["return_to"]
    page = await (await http.get("/login", params={"return_to": return_to})).text()
    await http.post(
        "/login",
        data={
            "username": user.username,
            "password": PASSWORD,
            "csrf_token": hidden(page, "csrf_token"),
            "return_to": return_to,
        },
        allow_redirects=False,
    )
    claims = await id_token(http, client, (await answered(http, url))["code"], pkce)
    assert (claims["amr"], claims["acr"]) == (["pwd"], ACR_PASSWORD)

    secret, _ = await turn_on_app(registry, user)
    steady()
    forget_browser(http)
    pkce = Pkce.new()
    url = authorization(client[0], pkce)
    response = await http.get(url, allow_redirects=False)
    return_to = query_of(response.headers["Location"])["return_to"]
    page = await password_step(http, user.username, return_to)
    done = await second_step(http, page, code_at(secret, 0))
    assert done.headers["Location"] == return_to
    claims = await id_token(http, client, (await answered(http, return_to))["code"], pkce)
    assert (claims["amr"], claims["acr"]) == (["pwd", "otp", "mfa"], ACR_MFA)


async def test_acr_values_can_demand_two_step_sign_in(
    http: TestClient, registry: Registry, user: User, new_client: ClientFactory
) -> None:
    client = await openid_client(new_client)
    # signed in with her password alone, before she turned the app on
    page = await (await http.get("/login")).text()
    await http.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": hidden(page, "csrf_token")},
    )
    sid_before = (await registry.sessions.signed_in(user.subject))[0].session.sid

    # with no second step to give, she is told how to turn one on
    pkce = Pkce.new()
    url = authorization(client[0], pkce, acr_values=ACR_MFA)
    response = await http.get(url, allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/login/two-step?")
    needed = await http.get(response.headers["Location"])
    assert "asks for two-step sign-in" in await needed.text()

    # voluntary values ask nothing more
    plain = await answered(http, authorization(client[0], pkce, acr_values=f"{ACR_MFA} {ACR_PASSWORD}"))
    assert "code" in plain

    secret, _ = await turn_on_app(registry, user)
    steady()
    # prompt=none cannot ask: login_required
    quiet = await http.get(
        authorization(client[0], pkce, acr_values=ACR_MFA, prompt="none"), allow_redirects=False
    )
    assert query_of(quiet.headers["Location"])["error"] == "login_required"
    # a step-up: the second step, and back to the request
    response = await http.get(url, allow_redirects=False)
    step_up = await http.get(response.headers["Location"])
    step_up_page = await step_up.text()
    assert "asks for two-step sign-in" in step_up_page and 'id="totp-form"' in step_up_page
    done = await second_step(http, step_up_page, code_at(secret, 0))
    assert done.status == 303
    claims = await id_token(http, client, (await answered(http, done.headers["Location"]))["code"], pkce)
    assert (claims["acr"], claims["amr"]) == (ACR_MFA, ["pwd", "otp", "mfa"])
    assert claims["sid"] == sid_before  # the same session, now with two steps


async def test_a_clients_default_acr_values_demand_two_step_sign_in(
    http: TestClient, registry: Registry, user: User, new_client: ClientFactory
) -> None:
    client = await openid_client(new_client, default_acr_values=[ACR_MFA])
    assert (await registry.clients.get(client[0])).default_acr_values == (ACR_MFA,)  # type: ignore[union-attr]
    page = await (await http.get("/login")).text()
    await http.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": hidden(page, "csrf_token")},
    )
    response = await http.get(authorization(client[0], Pkce.new()), allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/login/two-step?")
    # the request may name acr values of its own instead (Registration §2)
    allowed = await http.get(
        authorization(client[0], Pkce.new(), acr_values=ACR_PASSWORD), allow_redirects=False
    )
    assert not allowed.headers.get("Location", "").startswith("/login/two-step")


@pytest.mark.parametrize("bad", [[""], ["two words"], ["x" * 201], ["a"] * 11])
async def test_default_acr_values_are_checked_at_registration(
    new_client: ClientFactory, bad: list[str]
) -> None:
    from auth_server.registration import RegistrationError

    with pytest.raises(RegistrationError, match="default_acr_values"):
        await new_client(scope="openid", default_acr_values=bad)


# -- passkeys: what the browser is told, and what is refused (the ceremonies: tests/e2e) ------------


async def test_passkey_sign_in_options_need_the_login_form_and_name_no_credential(http: TestClient) -> None:
    page = await (await http.get("/login")).text()
    refused = await http.post("/login/passkey-options", data={"csrf_token": "forged"})
    assert refused.status == 400 and (await refused.json())["error"] == "invalid_request"
    response = await http.post("/login/passkey-options", data={"csrf_token": hidden(page, "csrf_token")})
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    options = body["options"]
    assert body["challenge_id"] and len(options["challenge"]) >= 43  # 32 random bytes, base64url
    assert options["rpId"] == "localhost"  # the issuer's host (http://localhost:8000 here)
    assert options["userVerification"] == "required" and options["allowCredentials"] == []
    # the page allows exactly its one script, by hash, and fetches from its own origin only
    csp = (await http.get("/login")).headers["Content-Security-Policy"]
    assert "script-src 'sha256-" in csp and "connect-src 'self'" in csp and "default-src 'none'" in csp


async def test_a_made_up_passkey_answer_signs_nobody_in(http: TestClient) -> None:
    page = await (await http.get("/login")).text()
    csrf = hidden(page, "csrf_token")
    challenge_id = (await (await http.post("/login/passkey-options", data={"csrf_token": csrf})).json())[
        "challenge_id"
    ]
    forged = '{"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {"clientDataJSON": "e30",'
    forged += ' "authenticatorData": "AAAA", "signature": "AAAA"}}'
    for _ in range(2):  # the second time, the challenge is spent as well
        response = await http.post(
            "/login/passkey",
            data={"csrf_token": csrf, "challenge_id": challenge_id, "credential": forged, "return_to": ""},
            allow_redirects=False,
        )
        assert response.status == 400 and "did not sign you in" in await response.text()
    assert not await signed_in(http)


async def test_adding_a_passkey_needs_a_recent_sign_in(
    http: TestClient, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = await (await http.get("/login")).text()
    await http.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": hidden(page, "csrf_token")},
    )
    security = await (await http.get("/account/security")).text()
    csrf = hidden(security, "csrf_token")
    fresh = await http.post("/account/security/passkeys/options", data={"csrf_token": csrf})
    options = (await fresh.json())["options"]
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["user"]["id"]  # her user id (16 bytes), not her name
    assert options["attestation"] == "none"
    # an old sign-in: the page asks her to sign in again before she can add one
    monkeypatch.setattr(security_page, "RECENT_SIGN_IN", -1)
    stale_page = await (await http.get("/account/security")).text()
    assert 'id="add-passkey-later"' in stale_page and "reauthenticate=1" in stale_page
    refused = await http.post("/account/security/passkeys/options", data={"csrf_token": csrf})
    assert refused.status == 400
    setup = await http.post("/account/security/totp", data={"csrf_token": csrf})
    assert setup.status == 403 and "sign in again" in await setup.text()


async def test_an_essential_acr_claim_demands_two_step_sign_in(
    http: TestClient, user: User, new_client: ClientFactory
) -> None:
    """OpenID Connect Core §5.5.1.1: ``{"id_token": {"acr": {"essential": true, "values": [...]}}}``."""
    client = await openid_client(new_client)
    page = await (await http.get("/login")).text()
    await http.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": hidden(page, "csrf_token")},
    )
    essential = json.dumps({"id_token": {"acr": {"essential": True, "values": [ACR_MFA]}}})
    response = await http.get(authorization(client[0], Pkce.new(), claims=essential), allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/login/two-step?")
    voluntary = json.dumps({"id_token": {"acr": {"values": [ACR_MFA]}}})
    response = await http.get(authorization(client[0], Pkce.new(), claims=voluntary), allow_redirects=False)
    assert not response.headers.get("Location", "").startswith("/login/two-step")


async def test_a_pushed_request_that_demands_two_steps_resumes_after_the_step_up(
    http: TestClient, registry: Registry, user: User, new_client: ClientFactory
) -> None:
    """RFC 9126: the pushed parameters never pass through the browser, the step-up included."""
    client = await openid_client(new_client)
    page = await (await http.get("/login")).text()
    await http.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": hidden(page, "csrf_token")},
    )
    secret, _ = await turn_on_app(registry, user)
    steady()
    pkce = Pkce.new()
    pushed = await http.post(
        "/oauth2/par",
        data={
            "client_id": client[0],
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": "openid photos:read",
            "state": "state-1",
            "nonce": "nonce-1",
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            "acr_values": ACR_MFA,
        },
        headers=basic(*client),
    )
    assert pushed.status == 201, await pushed.text()
    request_uri = (await pushed.json())["request_uri"]
    response = await http.get(
        f"/oauth2/authorize?{urlencode({'client_id': client[0], 'request_uri': request_uri})}",
        allow_redirects=False,
    )
    assert response.headers["Location"].startswith("/login/two-step?")
    return_to = query_of(response.headers["Location"])["return_to"]
    assert ACR_MFA not in return_to and "code_challenge" not in return_to  # pushed again, not exposed
    step_up = await (await http.get(response.headers["Location"])).text()
    done = await second_step(http, step_up, code_at(secret, 0))
    assert done.headers["Location"] == return_to
    claims = await id_token(http, client, (await answered(http, return_to))["code"], pkce)
    assert claims["acr"] == ACR_MFA
