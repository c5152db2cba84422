"""RFC 8628 device authorization grant: a device polls while its user signs it in on /device.

The device's requests go to the device authorization and token endpoints; the user's part runs as
an HTTP user agent would (login, the code page, the consent page), with real PostgreSQL and Redis.
A standard client library (Authlib) and the terminal demo (``python -m examples.device_login``)
run the flow against a live server.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import uuid
import warnings
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestClient
from authlib.deprecate import AuthlibDeprecationWarning
from redis.asyncio import Redis

from auth_server.crypto import hash_password, hexdigest
from auth_server.endpoints.login import safe_return_to
from auth_server.registration import ClientMetadata, register
from auth_server.registry import Registry
from auth_server.settings import Settings
from auth_server.stores.device_codes import normal_user_code
from auth_server.stores.users import User
from tests.support.device import (
    DEVICE_CODE,
    USER_CODE,
    answer_consent,
    approve,
    device_client,
    enter_code,
    open_verification,
    poll,
    start,
    verification_path,
)
from tests.support.flow import authorize_params, hidden
from tests.support.servers import PASSWORD, AppFactory, ClientFactory, LiveServer, registry_of

with warnings.catch_warnings():  # as in test_authlib_client_credentials_and_password.py
    warnings.filterwarnings(
        "ignore",
        message="The httpx module is deprecated; please use httpx2",
        category=AuthlibDeprecationWarning,
    )
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE

ISSUER = "http://localhost:8000"


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_a_public_device_is_signed_in_by_its_user(app_with: AppFactory, user: User) -> None:
    http = await app_with(device_poll_interval=1)
    client, _ = await device_client(registry_of(http))
    status, authorization = await start(http, client.client_id, scope="photos:read offline_access")
    assert status == 200, authorization
    # RFC 8628 §3.2, §6.1: a short code without ambiguous letters, shown with a dash
    assert USER_CODE.fullmatch(authorization["user_code"])
    assert len(authorization["device_code"]) >= 43  # 256 bits
    assert authorization["verification_uri"] == f"{ISSUER}/device"
    assert authorization["verification_uri_complete"] == (
        f"{ISSUER}/device?user_code={authorization['user_code']}"
    )
    assert authorization["expires_in"] == 600 and authorization["interval"] == 1
    device_code = authorization["device_code"]

    status, body = await poll(http, client.client_id, None, device_code)
    assert (status, body["error"]) == (400, "authorization_pending")

    # she opens the link: sign in first, then the code is filled in but must be confirmed (§3.3.1)
    page = await open_verification(
        http, verification_path(authorization["verification_uri_complete"]), user.username, PASSWORD
    )
    assert hidden(page, "user_code") == authorization["user_code"] and "Confirm" in page
    assert 'id="phishing-warning"' in page
    status, consent = await enter_code(http, page, authorization["user_code"].lower().replace("-", " "))
    assert status == 200
    assert 'id="device-sign-in"' in consent and "Living Room TV" in consent  # a device, and which app
    assert 'action="/device/consent"' in consent
    await asyncio.sleep(1)  # the device's interval, before the user's answer is even known
    status, done = await answer_consent(http, consent)
    assert status == 200 and "You can return to your device" in done

    status, tokens = await poll(http, client.client_id, None, device_code)
    assert status == 200, tokens
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "photos:read offline_access"
    assert "refresh_token" in tokens and "id_token" not in tokens
    claims = _claims(tokens["access_token"])
    assert claims["sub"] == str(user.subject) and claims["client_id"] == client.client_id
    # the consent is kept as /consent keeps it: the account page shows the device's app
    consent_row = await registry_of(http).consents.remembered(uuid.UUID(str(user.subject)), client.client_id)
    assert consent_row is not None and consent_row.scope == {"photos:read", "offline_access"}

    # single use: the device code is spent, and so is the user code
    status, body = await poll(http, client.client_id, None, device_code)
    assert (status, body["error"]) == (400, "invalid_grant")
    page = await open_verification(http, "/device", user.username, PASSWORD)
    status, again = await enter_code(http, page, authorization["user_code"])
    assert status == 400 and "That code does not work" in again


async def test_the_refresh_token_works(app_with: AppFactory, user: User) -> None:
    http = await app_with()
    client, _ = await device_client(registry_of(http))
    _, authorization = await start(http, client.client_id, scope="photos:read offline_access")
    await approve(http, authorization, user.username, PASSWORD)
    status, tokens = await poll(http, client.client_id, None, authorization["device_code"])
    assert status == 200
    refreshed = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client.client_id,
        },
    )
    assert refreshed.status == 200, await refreshed.text()


async def test_denied(http: TestClient, registry: Registry, user: User) -> None:
    client, _ = await device_client(registry)
    _, authorization = await start(http, client.client_id)
    done = await approve(http, authorization, user.username, PASSWORD, decision="deny")
    assert "Access was not given" in done
    status, body = await poll(http, client.client_id, None, authorization["device_code"])
    assert (status, body["error"]) == (400, "access_denied")
    status, body = await poll(http, client.client_id, None, authorization["device_code"])
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_allowing_nothing_is_a_denial(http: TestClient, registry: Registry, user: User) -> None:
    client, _ = await device_client(registry)
    _, authorization = await start(http, client.client_id, scope="photos:read")
    done = await approve(http, authorization, user.username, PASSWORD, ticked=[])
    assert "Access was not given" in done
    _, body = await poll(http, client.client_id, None, authorization["device_code"])
    assert body["error"] == "access_denied"


async def test_the_user_grants_only_what_she_left_ticked(
    http: TestClient, registry: Registry, user: User
) -> None:
    client, _ = await device_client(registry)
    _, authorization = await start(http, client.client_id, scope="photos:read photos:write")
    await approve(http, authorization, user.username, PASSWORD, ticked=["photos:read"])
    status, tokens = await poll(http, client.client_id, None, authorization["device_code"])
    assert status == 200 and tokens["scope"] == "photos:read"


async def test_expired(http: TestClient, registry: Registry, settings: Settings, user: User) -> None:
    client, _ = await device_client(registry)
    _, authorization = await start(http, client.client_id)
    device_code = authorization["device_code"]
    redis = Redis.from_url(settings.redis_url or "")
    try:  # its expires_in has passed (kept a while longer, to say so)
        await redis.hset(f"{settings.redis_prefix}device:{{{hexdigest(device_code)}}}", "expires", 0)
    finally:
        await redis.aclose()
    status, body = await poll(http, client.client_id, None, device_code)
    assert (status, body["error"]) == (400, "expired_token")
    page = await open_verification(http, "/device", user.username, PASSWORD)
    status, answer = await enter_code(http, page, authorization["user_code"])
    assert status == 400 and "That code does not work" in answer


async def test_polling_too_fast_slows_the_device_down(http: TestClient, registry: Registry) -> None:
    client, _ = await device_client(registry)
    _, authorization = await start(http, client.client_id)
    device_code = authorization["device_code"]
    assert (await poll(http, client.client_id, None, device_code))[1]["error"] == "authorization_pending"
    status, body = await poll(http, client.client_id, None, device_code)
    assert (status, body["error"]) == (400, "slow_down")
    assert "10 seconds" in body["error_description"]  # RFC 8628 §3.5: 5 s more
    body = (await poll(http, client.client_id, None, device_code))[1]
    assert body["error"] == "slow_down" and "15 seconds" in body["error_description"]


async def test_a_device_code_belongs_to_its_client(http: TestClient, registry: Registry) -> None:
    client, _ = await device_client(registry)
    other, _ = await device_client(registry, name="Other TV")
    _, authorization = await start(http, client.client_id)
    status, body = await poll(http, other.client_id, None, authorization["device_code"])
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await poll(http, client.client_id, None, "made-up")
    assert (status, body["error"]) == (400, "invalid_grant")
    response = await http.post(
        "/oauth2/token", data={"grant_type": DEVICE_CODE, "client_id": client.client_id}
    )
    assert response.status == 400 and (await response.json())["error"] == "invalid_request"


async def test_a_confidential_client_authenticates_at_both_endpoints(
    http: TestClient, registry: Registry, user: User
) -> None:
    client, secret = await device_client(registry, public=False)
    assert secret is not None
    status, body = await start(http, client.client_id)  # its id alone is not enough
    assert (status, body["error"]) == (401, "invalid_client")
    status, authorization = await start(http, client.client_id, secret)
    assert status == 200
    await approve(http, authorization, user.username, PASSWORD)
    status, body = await poll(http, client.client_id, None, authorization["device_code"])
    assert (status, body["error"]) == (401, "invalid_client")
    status, tokens = await poll(http, client.client_id, secret, authorization["device_code"])
    assert status == 200 and _claims(tokens["access_token"])["sub"] == str(user.subject)


async def test_a_client_not_registered_for_the_grant_is_refused(
    http: TestClient, new_client: ClientFactory
) -> None:
    client, secret = await new_client()  # authorization_code and refresh_token
    assert secret is not None
    status, body = await start(http, client.client_id, secret)
    assert (status, body["error"]) == (400, "unauthorized_client")
    status, body = await poll(http, client.client_id, secret, "whatever")
    assert (status, body["error"]) == (400, "unauthorized_client")


async def test_scope_is_checked(http: TestClient, registry: Registry) -> None:
    client, _ = await device_client(registry, scope="photos:read")
    status, body = await start(http, client.client_id, scope="photos:read no-such-scope")
    assert (status, body["error"]) == (400, "invalid_scope")
    status, body = await start(http, client.client_id, scope="photos:write")  # known, not its own
    assert (status, body["error"]) == (400, "invalid_scope")


async def test_an_openid_device_sign_in_gets_an_id_token(
    http: TestClient, registry: Registry, user: User
) -> None:
    client, _ = await device_client(registry)
    _, authorization = await start(http, client.client_id, scope="openid profile")
    await approve(http, authorization, user.username, PASSWORD)
    status, tokens = await poll(http, client.client_id, None, authorization["device_code"])
    assert status == 200
    id_token = _claims(tokens["id_token"])
    assert id_token["aud"] == client.client_id and id_token["iss"] == ISSUER and "sid" not in id_token
    assert "refresh_token" not in tokens  # OpenID Connect Core §11: only with offline_access


async def test_resource_indicators(http: TestClient, registry: Registry, user: User) -> None:
    photos = f"https://photos-{uuid.uuid4().hex[:8]}.example/api"
    await registry.resources.create(photos, "Photos", ("photos:read",))
    client, _ = await device_client(registry)
    status, body = await start(http, client.client_id, resources=["https://nowhere.example/api"])
    assert (status, body["error"]) == (400, "invalid_target")
    status, body = await start(http, client.client_id, resources=["not a uri"])
    assert (status, body["error"]) == (400, "invalid_target")
    status, authorization = await start(
        http, client.client_id, scope="photos:read offline_access", resources=[photos]
    )
    assert status == 200, authorization
    await approve(http, authorization, user.username, PASSWORD)
    # a resource the approval does not cover is a mistake, refused before the approval is spent
    # (as a code's is): the device polls again with the right one (RFC 8707 §2.2)
    for wrong in (ISSUER, "https://nowhere.example/api"):
        status, body = await poll(http, client.client_id, None, authorization["device_code"], resource=wrong)
        assert (status, body["error"]) == (400, "invalid_target"), body
    status, tokens = await poll(http, client.client_id, None, authorization["device_code"], resource=photos)
    assert status == 200 and _claims(tokens["access_token"])["aud"] == photos
    status, body = await poll(http, client.client_id, None, authorization["device_code"])
    assert (status, body["error"]) == (400, "invalid_grant")  # and then it is spent
    status, authorization = await start(http, client.client_id, scope="photos:read", resources=[photos])
    page = await open_verification(http, "/device", user.username, PASSWORD)
    _, consent = await enter_code(http, page, authorization["user_code"])
    assert 'id="apis"' in consent and "Photos" in consent  # the page names the API
    await answer_consent(http, consent)
    status, tokens = await poll(http, client.client_id, None, authorization["device_code"])
    assert status == 200 and _claims(tokens["access_token"])["aud"] == photos


async def test_a_poll_naming_no_resource_of_several_leaves_the_approval(
    http: TestClient, registry: Registry, user: User
) -> None:
    photos, albums = (f"https://{name}-{uuid.uuid4().hex[:8]}.example/api" for name in ("photos", "albums"))
    await registry.resources.create(photos, "Photos", ("photos:read",))
    await registry.resources.create(albums, "Albums", ("photos:read",))
    client, _ = await device_client(registry)
    status, authorization = await start(
        http, client.client_id, scope="photos:read", resources=[photos, albums]
    )
    assert status == 200, authorization
    await approve(http, authorization, user.username, PASSWORD)
    status, body = await poll(http, client.client_id, None, authorization["device_code"])
    assert (status, body["error"]) == (400, "invalid_target") and "name one" in body["error_description"]
    status, tokens = await poll(http, client.client_id, None, authorization["device_code"], resource=albums)
    assert status == 200 and _claims(tokens["access_token"])["aud"] == albums


async def test_wrong_codes_are_limited_per_address(app_with: AppFactory, user: User) -> None:
    http = await app_with(device_code_failures_per_ip=3)
    client, _ = await device_client(registry_of(http))
    _, right = await start(http, client.client_id)
    page = await open_verification(http, "/device", user.username, PASSWORD)
    status, answer = await enter_code(http, page, "ABC")  # cannot be a code: costs nothing
    assert status == 400 and "8 letters" in answer
    for _ in range(2):
        assert (await enter_code(http, page, "BBBB-BBBB"))[0] == 400
    status, _consent = await enter_code(http, page, right["user_code"])  # right: handed back
    assert status == 200
    status, answer = await enter_code(http, page, "CCCC-CCCC")  # the third wrong one
    assert status == 400 and "That code does not work" in answer
    _, other = await start(http, client.client_id)
    response = await http.post(
        "/device", data={"csrf_token": hidden(page, "csrf_token"), "user_code": other["user_code"]}
    )
    assert response.status == 429 and int(response.headers["Retry-After"]) > 0
    assert "Too many wrong codes" in await response.text()  # even a right code waits now


async def test_wrong_codes_are_limited_for_everyone(app_with: AppFactory, user: User) -> None:
    http = await app_with(device_code_failures=2, trusted_proxies="127.0.0.1")
    page = await open_verification(http, "/device", user.username, PASSWORD)
    statuses = []
    for address in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        response = await http.post(
            "/device",
            data={"csrf_token": hidden(page, "csrf_token"), "user_code": "DDDD-DDDD"},
            headers={"X-Forwarded-For": address},
        )
        statuses.append(response.status)
    assert statuses == [400, 400, 429]


async def test_the_code_page_needs_a_signed_in_user_and_its_csrf_token(http: TestClient, user: User) -> None:
    response = await http.get("/device?user_code=bcdf ghjk", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login?return_to=%2Fdevice%3Fuser_code%3DBCDF-GHJK"
    page = await open_verification(http, "/device", user.username, PASSWORD)
    response = await http.get("/device")
    assert response.status == 200 and response.headers["X-Frame-Options"] == "DENY"  # never framed
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    response = await http.post("/device", data={"csrf_token": "forged", "user_code": "BCDF-GHJK"})
    assert response.status == 400 and "did not come from this site" in await response.text()
    assert 'autocomplete="off"' in page and '<label for="user_code">' in page


def test_login_returns_to_the_device_page_only_with_a_code() -> None:
    assert safe_return_to("/device") == "/device"
    assert (
        safe_return_to("/device?user_code=wdjb mjht&next=https://evil.example")
        == "/device?user_code=WDJB-MJHT"
    )
    assert safe_return_to("/device?user_code=<script>") == "/device"
    assert safe_return_to("https://evil.example/device") == "/login"
    assert normal_user_code("wdjb-mjht") == normal_user_code(" W.D.J.B M J H T ") == "WDJBMJHT"
    assert normal_user_code("WDJB-MJHA") is None  # a vowel is no letter of a code


async def test_a_consent_form_answers_its_own_kind_only(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    """An /authorize request's id posted as a device's answer (and back) finds nothing: the kinds
    are kept apart."""
    web_client, _ = await new_client()
    page = await open_verification(http, "/device", user.username, PASSWORD)
    response = await http.get("/oauth2/authorize", params=authorize_params(web_client.client_id))
    consent = await response.text()
    status, answer = await answer_consent(http, consent)
    assert status == 400 and "expired or was already answered" in answer
    device, _ = await device_client(registry)
    _, authorization = await start(http, device.client_id)
    _, device_consent = await enter_code(http, page, authorization["user_code"])
    response = await http.post(
        "/consent",
        data={
            "csrf_token": hidden(device_consent, "csrf_token"),
            "request_id": hidden(device_consent, "request_id"),
            "consent": "allow",
        },
    )
    assert response.status == 400


async def test_registration_needs_no_redirect_uri(registry: Registry) -> None:
    client, _ = await device_client(registry)
    assert client.redirect_uris == () and client.response_types == ()
    registered = await register(
        registry,
        ClientMetadata(
            client_name="CLI",
            redirect_uris=[],
            grant_types=[DEVICE_CODE],
            scope=["photos:read"],
            token_endpoint_auth_method="client_secret_post",
        ),
    )
    assert registered.client.grant_types == (DEVICE_CODE,)


async def test_metadata(http: TestClient) -> None:
    doc = await (await http.get("/.well-known/oauth-authorization-server")).json()
    assert doc["device_authorization_endpoint"] == f"{ISSUER}/oauth2/device_authorization"
    assert DEVICE_CODE in doc["grant_types_supported"]
    response = await http.post("/oauth2/device_authorization", data={})
    assert response.status == 401  # exists, and asks for client authentication


async def test_authlib_runs_the_device_flow(live_server: LiveServer) -> None:
    """Authlib has no device-flow helper for clients, but its OAuth 2.0 client polls any grant type
    (here with its own RFC 8628 constant) with the client's registered authentication."""
    issuer = live_server.url
    client, secret = await device_client(live_server.registry, public=False)
    user = await live_server.registry.users.create(f"user-{uuid.uuid4().hex[:10]}", _password_hash())
    async with AsyncOAuth2Client(
        client_id=client.client_id, client_secret=secret, token_endpoint_auth_method="client_secret_basic"
    ) as oauth:
        doc = (
            await oauth.request(
                "GET", f"{issuer}/.well-known/oauth-authorization-server", withhold_token=True
            )
        ).json()
        response = await oauth.request(
            "POST",
            doc["device_authorization_endpoint"],
            data={"scope": "photos:read offline_access"},
            auth=(
                client.client_id,
                secret,
            ),  # Basic, as the client is registered (no helper for this request)
            withhold_token=True,
        )
        assert response.status_code == 200, response.text
        authorization = response.json()
        assert DEVICE_CODE_GRANT_TYPE == DEVICE_CODE
        with pytest.raises(OAuthError) as pending:
            await oauth.fetch_token(
                doc["token_endpoint"],
                grant_type=DEVICE_CODE_GRANT_TYPE,
                device_code=authorization["device_code"],
            )
        assert pending.value.error == "authorization_pending"
        async with _browser(issuer) as browser:
            await approve(browser, authorization, user.username, PASSWORD)
        await asyncio.sleep(authorization["interval"])
        token = await oauth.fetch_token(
            doc["token_endpoint"], grant_type=DEVICE_CODE_GRANT_TYPE, device_code=authorization["device_code"]
        )
    assert token["scope"] == "photos:read offline_access" and token["refresh_token"]
    assert _claims(token["access_token"])["sub"] == str(user.subject)


async def test_the_terminal_demo_signs_in(live_server: LiveServer) -> None:
    """``python -m examples.device_login`` prints the code and the link, polls, prints the tokens."""
    client, _ = await device_client(live_server.registry, name="Tessera device demo")
    user = await live_server.registry.users.create(f"user-{uuid.uuid4().hex[:10]}", _password_hash())
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "examples.device_login",
        "--issuer",
        live_server.url,
        "--client-id",
        client.client_id,
        "--scope",
        "openid photos:read offline_access",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert demo.stdout is not None
        shown = ""
        while "user_code=" not in shown:
            line = await asyncio.wait_for(demo.stdout.readline(), timeout=15)
            assert line, (await demo.stderr.read()).decode() if demo.stderr else ""
            shown += line.decode()
        complete = re.search(r"(http://\S+/device\?user_code=\S+)", shown)
        code = USER_CODE.search(shown)
        assert complete is not None and code is not None, shown
        async with _browser(live_server.url) as browser:
            await approve(
                browser,
                {"verification_uri_complete": complete.group(1), "user_code": code.group(0)},
                user.username,
                PASSWORD,
            )
        out, err = await asyncio.wait_for(demo.communicate(), timeout=30)
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
    assert demo.returncode == 0, err.decode()
    tokens = json.loads(out.decode()[out.decode().index("{") :])
    assert tokens["token_type"] == "Bearer" and "id_token" in tokens and "refresh_token" in tokens


def _password_hash() -> str:
    return hash_password(PASSWORD)


def _browser(url: str) -> aiohttp.ClientSession:
    """A user agent for the live server (which is at an IP address: its cookies are kept anyway)."""
    return aiohttp.ClientSession(base_url=url, cookie_jar=aiohttp.CookieJar(unsafe=True))
