"""RFC 9126 pushed authorization requests: the PAR endpoint, and its request_uri at /authorize,
through the real login and consent pages (and a standard client library, oauth4webapi)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from aiohttp import ClientResponse, ClientSession, CookieJar
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from auth_server.authorization import checks
from auth_server.crypto import hash_password
from auth_server.endpoints import par
from auth_server.endpoints.authorize import SIGN_IN_WAIT
from auth_server.registration import ClientMetadata, register
from auth_server.registry import Registry
from auth_server.settings import Settings
from auth_server.stores import pushed_requests
from auth_server.stores.users import User
from tests.support import programs
from tests.support.dpop import DPoPKey
from tests.support.flow import (
    REDIRECT_URI,
    Pkce,
    authorize_params,
    basic,
    hidden,
    obtain_code,
    query_of,
    sign_in,
)
from tests.support.oauth4webapi_client import command as oauth4webapi_command
from tests.support.servers import PASSWORD, TEST_KEK, AppFactory, ClientFactory, LiveServer, registry_of
from tests.support.services import Services

PAR = "/oauth2/par"
URN = "urn:ietf:params:oauth:request_uri:"


async def _push(
    http: TestClient | ClientSession,
    client_id: str,
    secret: str | None,
    params: dict[str, str] | list[tuple[str, str]],
) -> ClientResponse:
    """POST the request to the PAR endpoint, the client authenticated as at the token endpoint."""
    headers = basic(client_id, secret) if secret is not None else {}
    return await http.post(PAR, data=params, headers=headers)


async def _pushed(http: TestClient, client_id: str, secret: str | None, params: dict[str, str]) -> str:
    response = await _push(http, client_id, secret, params)
    assert response.status == 201, await response.text()
    request_uri: str = (await response.json())["request_uri"]
    return request_uri


def _by_reference(client_id: str, request_uri: str, **extra: str) -> str:
    return f"/oauth2/authorize?{urlencode({'client_id': client_id, 'request_uri': request_uri, **extra})}"


async def _refused_page(http: TestClient, url: str) -> str:
    response = await http.get(url, allow_redirects=False)
    assert response.status == 400 and "Location" not in response.headers
    return await response.text()


async def _consent(http: TestClient, page: str, decision: str = "allow") -> dict[str, str]:
    response = await http.post(
        "/consent",
        data={
            "csrf_token": hidden(page, "csrf_token"),
            "request_id": hidden(page, "request_id"),
            "consent": decision,
        },
        allow_redirects=False,
    )
    assert response.status in (302, 303), await response.text()
    assert response.headers["Location"].startswith(REDIRECT_URI)
    return query_of(response.headers["Location"])


# --- the flow ---


async def test_push_then_authorize_through_login_and_consent_then_token(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, secret = await new_client(require_pkce=True, name="Pushing Printer")
    assert secret is not None
    pkce = Pkce.new()
    response = await _push(http, client.client_id, secret, authorize_params(client.client_id, pkce=pkce))
    assert response.status == 201
    assert response.headers["Cache-Control"] == "no-store"
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"request_uri", "expires_in"}
    assert body["expires_in"] == 60
    assert body["request_uri"].startswith(URN)
    assert len(body["request_uri"]) - len(URN) >= 43  # 256 random bits, base64url

    # the browser: no session yet, so the login page, to come back to a request_uri of its own
    first = await http.get(_by_reference(client.client_id, body["request_uri"]), allow_redirects=False)
    assert first.status == 302 and first.headers["Location"].startswith("/login?")
    return_to = query_of(first.headers["Location"])["return_to"]
    resumed = query_of(return_to)
    assert resumed["request_uri"].startswith(URN) and resumed["request_uri"] != body["request_uri"]
    # what was pushed stays on the server: not the scope, state or challenge, only what the login
    # page shows or allows (the app's name, its redirect URI)
    assert set(resumed) == {"client_id", "request_uri", "redirect_uri"}
    assert resumed["redirect_uri"] == REDIRECT_URI
    login_page = await http.get("/login", params={"return_to": return_to})
    assert "Pushing Printer" in await login_page.text()
    assert await sign_in(http, user.username, PASSWORD, return_to) == 303

    consent_page = await http.get(return_to, allow_redirects=False)
    assert consent_page.status == 200
    redirect = await _consent(http, await consent_page.text())
    assert redirect["state"] == "state-123"
    assert redirect["iss"] == "http://localhost:8000"

    token = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": redirect["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": pkce.verifier,
        },
        headers=basic(client.client_id, secret),
    )
    assert token.status == 200, await token.text()
    tokens = await token.json()
    assert tokens["scope"] == "photos:read"
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["sub"] == user.subject and claims["client_id"] == client.client_id

    # every request_uri of the flow was good once
    for spent in (body["request_uri"], resumed["request_uri"]):
        assert "invalid_request_uri" in await _refused_page(http, _by_reference(client.client_id, spent))


async def test_a_public_client_pushes_with_its_id_alone(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client(public=True)
    pkce = Pkce.new()
    params = {**authorize_params(client.client_id, pkce=pkce)}
    request_uri = await _pushed(http, client.client_id, None, params)
    redirect = await obtain_code(
        http, {"client_id": client.client_id, "request_uri": request_uri}, user.username, PASSWORD
    )
    token = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": redirect["code"],
            "redirect_uri": REDIRECT_URI,
            "client_id": client.client_id,
            "code_verifier": pkce.verifier,
        },
    )
    assert token.status == 200, await token.text()


async def test_only_the_pushed_parameters_count(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    """RFC 9126 §4, RFC 9101 §6.3: what the query says besides client_id and request_uri is ignored."""
    client, secret = await new_client(redirect_uris=[REDIRECT_URI, "https://printer.example/other"])
    assert secret is not None
    pkce = Pkce.new()
    request_uri = await _pushed(http, client.client_id, secret, authorize_params(client.client_id, pkce=pkce))
    assert await sign_in(http, user.username, PASSWORD) == 303
    page = await http.get(
        _by_reference(
            client.client_id,
            request_uri,
            scope="photos:write",
            state="forged",
            redirect_uri="https://printer.example/other",
            code_challenge=Pkce.new().challenge,
            prompt="none",
        ),
        allow_redirects=False,
    )
    assert page.status == 200  # the consent page: prompt=none was not the request's
    text = await page.text()
    assert "Upload new photos" not in text  # photos:write was not pushed
    redirect = await _consent(http, text)
    assert redirect["state"] == "state-123"
    token = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": redirect["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": pkce.verifier,
        },
        headers=basic(client.client_id, secret),
    )
    assert token.status == 200, await token.text()
    assert (await token.json())["scope"] == "photos:read"


async def test_a_fresh_sign_in_asked_for_by_a_pushed_request_is_asked_once(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    """prompt=login survives the login page's round trip, and is then satisfied: the mark of when
    the sign-in was asked for is kept with the pushed parameters, not in the browser's URL."""
    client, secret = await new_client()
    assert await sign_in(http, user.username, PASSWORD) == 303
    request_uri = await _pushed(
        http, client.client_id, secret, {**authorize_params(client.client_id), "prompt": "login"}
    )
    first = await http.get(_by_reference(client.client_id, request_uri), allow_redirects=False)
    assert first.status == 302
    login = query_of(first.headers["Location"])
    assert login["reauthenticate"] == "1"
    assert set(query_of(login["return_to"])) == {"client_id", "request_uri", "redirect_uri"}
    form = await http.get(first.headers["Location"], allow_redirects=False)  # as the browser opens it
    assert form.status == 200
    signed_in = await http.post(
        "/login",
        data={
            "username": user.username,
            "password": PASSWORD,
            "csrf_token": hidden(await form.text(), "csrf_token"),
            "return_to": login["return_to"],
        },
        allow_redirects=False,
    )
    assert signed_in.status == 303 and signed_in.headers["Location"] == login["return_to"]
    again = await http.get(login["return_to"], allow_redirects=False)
    assert again.status == 200, again.headers.get("Location")  # the consent page, not the login again


async def test_repeated_resources_are_pushed_and_kept(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    """RFC 8707 ``resource`` may repeat in a pushed request as in a query."""
    apis = [f"https://{name}-{uuid.uuid4().hex[:8]}.example/api" for name in ("albums", "prints")]
    for api in apis:
        await registry.resources.create(api, "API", ("photos:read",), service_client_id=None)
    client, secret = await new_client()
    assert secret is not None
    pkce = Pkce.new()
    params = [*authorize_params(client.client_id, pkce=pkce).items(), *(("resource", api) for api in apis)]
    response = await _push(http, client.client_id, secret, params)
    assert response.status == 201, await response.text()
    request_uri = (await response.json())["request_uri"]
    redirect = await obtain_code(
        http, {"client_id": client.client_id, "request_uri": request_uri}, user.username, PASSWORD
    )
    token = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": redirect["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": pkce.verifier,
            "resource": apis[1],
        },
        headers=basic(client.client_id, secret),
    )
    assert token.status == 200, await token.text()
    assert (
        jwt.decode((await token.json())["access_token"], options={"verify_signature": False})["aud"]
        == apis[1]
    )


async def test_a_dpop_proof_sent_with_the_push_binds_the_code_to_its_key(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    """RFC 9449 §10.1: the key of a DPoP proof sent to the PAR endpoint is the request's dpop_jkt."""
    client, _ = await new_client(public=True)
    key, pkce = DPoPKey(), Pkce.new()
    response = await http.post(
        PAR,
        data=authorize_params(client.client_id, pkce=pkce),
        headers={"DPoP": key.proof("POST", "http://localhost:8000/oauth2/par")},
    )
    assert response.status == 201, await response.text()
    request_uri = (await response.json())["request_uri"]
    redirect = await obtain_code(
        http, {"client_id": client.client_id, "request_uri": request_uri}, user.username, PASSWORD
    )
    form = {
        "grant_type": "authorization_code",
        "code": redirect["code"],
        "redirect_uri": REDIRECT_URI,
        "client_id": client.client_id,
        "code_verifier": pkce.verifier,
    }
    token_url = "http://localhost:8000/oauth2/token"
    for headers in ({}, {"DPoP": DPoPKey().proof("POST", token_url)}):  # no proof, another key
        refused = await http.post("/oauth2/token", data=form, headers=headers)
        assert refused.status == 400 and (await refused.json())["error"] == "invalid_grant"
    token = await http.post("/oauth2/token", data=form, headers={"DPoP": key.proof("POST", token_url)})
    assert token.status == 200, await token.text()
    body = await token.json()
    assert body["token_type"] == "DPoP"
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["cnf"]["jkt"] == key.jkt


async def test_a_dpop_proof_at_the_push_must_be_good_and_agree_with_dpop_jkt(
    http: TestClient, new_client: ClientFactory
) -> None:
    client, _ = await new_client(public=True)
    key = DPoPKey()
    params = authorize_params(client.client_id, pkce=Pkce.new())
    for extra, proof, error in (
        (
            {"dpop_jkt": DPoPKey().jkt},
            key.proof("POST", "http://localhost:8000/oauth2/par"),
            "invalid_request",
        ),
        ({}, key.proof("POST", "http://localhost:8000/oauth2/token"), "invalid_dpop_proof"),
    ):
        response = await http.post(PAR, data={**params, **extra}, headers={"DPoP": proof})
        assert response.status == 400
        assert (await response.json())["error"] == error
    # a dpop_jkt without a proof is taken as it is (RFC 9449 §10)
    response = await http.post(PAR, data={**params, "dpop_jkt": key.jkt})
    assert response.status == 201


# --- the request_uri: one use, one client, a short life ---


async def test_a_request_uri_is_good_once(http: TestClient, new_client: ClientFactory, user: User) -> None:
    client, secret = await new_client()
    request_uri = await _pushed(http, client.client_id, secret, authorize_params(client.client_id))
    assert await sign_in(http, user.username, PASSWORD) == 303
    first = await http.get(_by_reference(client.client_id, request_uri), allow_redirects=False)
    assert first.status == 200  # the consent page
    page = await _refused_page(http, _by_reference(client.client_id, request_uri))
    assert "invalid_request_uri" in page
    assert "This page has expired" in page  # what the person reads: start again at the app


async def test_two_uses_at_once_answer_one(http: TestClient, new_client: ClientFactory, user: User) -> None:
    client, secret = await new_client()
    request_uri = await _pushed(http, client.client_id, secret, authorize_params(client.client_id))
    assert await sign_in(http, user.username, PASSWORD) == 303
    url = _by_reference(client.client_id, request_uri)
    answers = await asyncio.gather(*(http.get(url, allow_redirects=False) for _ in range(5)))
    assert sorted(answer.status for answer in answers) == [200, 400, 400, 400, 400]


async def test_another_client_cannot_use_or_spend_a_request_uri(
    http: TestClient, new_client: ClientFactory
) -> None:
    owner, secret = await new_client()
    other, _ = await new_client()
    request_uri = await _pushed(http, owner.client_id, secret, authorize_params(owner.client_id))
    assert "invalid_request_uri" in await _refused_page(http, _by_reference(other.client_id, request_uri))
    without = f"/oauth2/authorize?{urlencode({'request_uri': request_uri})}"
    assert "client_id parameter is required" in await _refused_page(http, without)
    # neither attempt spent it: the client that pushed it still can
    used = await http.get(_by_reference(owner.client_id, request_uri), allow_redirects=False)
    assert used.status == 302 and used.headers["Location"].startswith("/login?")


async def test_an_expired_request_uri_is_refused(
    app_with: AppFactory, backing: Services, new_client: ClientFactory
) -> None:
    http = await app_with(par_ttl=5)
    client, secret = await new_client()
    response = await _push(http, client.client_id, secret, authorize_params(client.client_id))
    assert response.status == 201
    body = await response.json()
    assert body["expires_in"] == 5
    redis = Redis.from_url(backing.redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{registry_of(http).settings.redis_prefix}par:*")]
        assert len(keys) == 1
        assert 0 < await redis.ttl(keys[0]) <= 5
        await redis.pexpire(keys[0], 1)  # as if its five seconds had passed
    finally:
        await redis.aclose()
    await asyncio.sleep(0.05)
    assert "invalid_request_uri" in await _refused_page(
        http, _by_reference(client.client_id, body["request_uri"])
    )


async def test_a_pushed_request_is_checked_again_when_used(
    http: TestClient, registry: Registry, new_client: ClientFactory
) -> None:
    """RFC 9126 §4: validated as any other request: a client suspended since the push is refused."""
    client, secret = await new_client()
    request_uri = await _pushed(http, client.client_id, secret, authorize_params(client.client_id))
    await registry.clients.review(client.client_id, "suspended", note="test")
    assert "unauthorized_client" in await _refused_page(http, _by_reference(client.client_id, request_uri))


async def test_a_request_object_url_is_still_not_supported(
    http: TestClient, new_client: ClientFactory
) -> None:
    """Only the PAR endpoint's request_uri values are accepted: a request object's URL (OpenID
    Connect Core §6.2) is still refused, with request_uri_not_supported sent back to the client."""
    client, _ = await new_client()
    params = {**authorize_params(client.client_id), "request_uri": "https://printer.example/request.jwt"}
    response = await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
    assert response.status == 302
    answer = query_of(response.headers["Location"])
    assert answer["error"] == "request_uri_not_supported" and answer["state"] == "state-123"


# --- the PAR endpoint's refusals: JSON, never a redirect ---


async def test_the_client_must_authenticate(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await new_client()
    assert secret is not None
    params = authorize_params(client.client_id)
    for headers in ({}, basic(client.client_id, "wrong-secret")):
        response = await http.post(PAR, data=params, headers=headers)
        assert response.status == 401
        assert response.content_type == "application/json"
        assert (await response.json())["error"] == "invalid_client"
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    posted = await http.post(PAR, data={**params, "client_secret": secret})  # not its registered method
    assert posted.status == 401


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"redirect_uri": "https://evil.example/callback"}, "invalid_request", "not registered"),
        ({"response_type": None}, "invalid_request", "response_type"),
        ({"response_type": "token"}, "unsupported_response_type", "token"),
        ({"scope": "photos:admin"}, "invalid_scope", "photos:admin"),
        ({"code_challenge_method": "plain", "code_challenge": "x" * 43}, "invalid_request", "S256"),
        ({"prompt": "sometimes"}, "invalid_request", "prompt"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported", "request"),
        ({"resource": "https://nowhere.example/api"}, "invalid_target", "resource"),
        ({"client_id": None}, "invalid_request", "client_id"),
        ({"request_uri": f"{URN}abc"}, "invalid_request", "request_uri"),
        ({"request_uri": "https://printer.example/request.jwt"}, "invalid_request", "request_uri"),
    ],
)
async def test_a_wrong_request_is_refused_in_json(
    http: TestClient, new_client: ClientFactory, change: dict[str, str | None], error: str, words: str
) -> None:
    client, secret = await new_client(require_pkce=True)
    params = {**authorize_params(client.client_id, pkce=Pkce.new()), **change}
    response = await _push(http, client.client_id, secret, {k: v for k, v in params.items() if v is not None})
    assert response.status == 400
    assert "Location" not in response.headers
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["error"] == error, body
    assert words in body["error_description"]


async def test_client_id_must_be_the_authenticated_client(
    http: TestClient, new_client: ClientFactory
) -> None:
    client, secret = await new_client()
    other, _ = await new_client()
    response = await _push(http, client.client_id, secret, authorize_params(other.client_id))
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_only_post(http: TestClient) -> None:
    assert (await http.get(PAR)).status == 405  # RFC 9126 §2.3


# --- requiring PAR (RFC 9126 §4-6) ---


async def test_a_client_that_must_push_is_refused_without(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, secret = await new_client(require_pushed_authorization_requests=True)
    assert client.require_pushed_authorization_requests
    assert client.registration()["require_pushed_authorization_requests"] is True
    for params in (
        authorize_params(client.client_id),
        {**authorize_params(client.client_id), "request_uri": "https://printer.example/request.jwt"},
    ):
        response = await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
        assert response.status == 302
        answer = query_of(response.headers["Location"])
        assert answer["error"] == "invalid_request" and "push" in answer["error_description"]
        assert answer["state"] == "state-123"
    request_uri = await _pushed(http, client.client_id, secret, authorize_params(client.client_id))
    redirect = await obtain_code(
        http, {"client_id": client.client_id, "request_uri": request_uri}, user.username, PASSWORD
    )
    assert redirect["code"]


async def test_the_server_can_require_par_of_every_client(
    app_with: AppFactory, new_client: ClientFactory
) -> None:
    http = await app_with(require_par="on")
    document = await (await http.get("/.well-known/oauth-authorization-server")).json()
    assert document["require_pushed_authorization_requests"] is True
    client, secret = await new_client()
    response = await http.get(
        f"/oauth2/authorize?{urlencode(authorize_params(client.client_id))}", allow_redirects=False
    )
    assert query_of(response.headers["Location"])["error"] == "invalid_request"
    request_uri = await _pushed(http, client.client_id, secret, authorize_params(client.client_id))
    used = await http.get(_by_reference(client.client_id, request_uri), allow_redirects=False)
    assert used.status == 302 and used.headers["Location"].startswith("/login?")


async def test_metadata(http: TestClient) -> None:
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        document = await (await http.get(path)).json()
        assert document["pushed_authorization_request_endpoint"] == "http://localhost:8000/oauth2/par"
        assert document["require_pushed_authorization_requests"] is False


async def test_the_cli_sets_require_par(database_url: str, backing: Services, redis_prefix: str) -> None:
    env = {
        **os.environ,
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_REDIS_URL": backing.redis_url,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_REDIS_PREFIX": redis_prefix,
    }

    def tessera(*args: str) -> Any:
        result = subprocess.run(
            [sys.executable, "-m", "auth_server.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    created = tessera(
        *("client", "create", "--name", "Bank app", "--redirect-uri", REDIRECT_URI),
        *("--scope", "photos:read", "--require-par", "--json"),
    )
    assert created["require_pushed_authorization_requests"] is True
    updated = tessera("client", "update", created["client_id"], "--require-par", "no")
    assert "require_pushed_authorization_requests" not in updated
    again = tessera("client", "update", created["client_id"], "--require-par", "yes")
    assert again["require_pushed_authorization_requests"] is True


# --- a standard client library: panva/oauth4webapi (npm) ---


@pytest.fixture(scope="session")
def oauth4webapi() -> list[str]:
    """``node par_flow.mjs``, with oauth4webapi installed."""
    return oauth4webapi_command("par_flow.mjs")


@pytest.fixture
async def browser(live_server: LiveServer) -> AsyncIterator[ClientSession]:
    async with ClientSession(base_url=live_server.url, cookie_jar=CookieJar(unsafe=True)) as session:
        yield session


async def test_oauth4webapi_runs_the_flow_with_par(
    oauth4webapi: list[str], live_server: LiveServer, browser: ClientSession
) -> None:
    registry = live_server.registry
    user = await registry.users.create(f"par-{uuid.uuid4().hex[:8]}", hash_password(PASSWORD))
    client, secret, _ = await register(
        registry,
        ClientMetadata(
            client_name="oauth4webapi",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code"],
            scope=["photos:read"],
            require_pushed_authorization_requests=True,
        ),
    )
    assert secret is not None
    process = await asyncio.create_subprocess_exec(
        *oauth4webapi,
        live_server.url,
        client.client_id,
        secret,
        REDIRECT_URI,
        "photos:read",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=programs.node_environment(),
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, (await process.stderr.read()).decode()
        pushed = json.loads(line)
        assert pushed["request_uri"].startswith(URN) and pushed["expires_in"] == 60
        query = query_of(pushed["authorization_url"])
        assert set(query) == {"client_id", "request_uri"}
        redirect = await obtain_code(browser, query, user.username, PASSWORD)
        process.stdin.write(f"{REDIRECT_URI}?{urlencode(redirect)}\n".encode())
        await process.stdin.drain()
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, (await process.stderr.read()).decode()
        tokens = json.loads(line)
    finally:
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert tokens["token_type"].lower() == "bearer" and tokens["scope"] == "photos:read"
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["sub"] == user.subject and claims["client_id"] == client.client_id


# --- what a push may keep, and for how long (review 17) ---

# the parameters the checks read, by the three ways checks.py reads them
_READ = re.compile(r"""params\.get\("(\w+)"|_single\(checking\.query, "(\w+)"\)|getall\("(\w+)\"""")


def test_every_parameter_the_checks_read_is_kept() -> None:
    """A parameter /authorize acts on is kept by the PAR endpoint (a new check reading a new one
    must add it to the list, or pushed requests would silently lose it)."""
    source = Path(checks.__file__).read_text()
    read = {name for match in _READ.finditer(source) for name in match.groups() if name}
    assert {"client_id", "redirect_uri", "nonce", "resource", "claims", "id_token_hint"} <= read
    refused = {"request", "request_uri", "registration"}  # checks.py refuses these: never kept
    assert read - refused <= par.AUTHORIZATION_PARAMETERS
    assert {"login_hint", "ui_locales"} <= par.AUTHORIZATION_PARAMETERS  # the pages read these


async def test_only_authorization_request_parameters_are_kept(
    http: TestClient, registry: Registry, new_client: ClientFactory
) -> None:
    """Anything else a client sends is dropped, as /authorize ignores it: a stranger pushing for a
    public client parks nothing but a request (and cannot set Tessera's own markers)."""
    client, _ = await new_client(public=True)
    params = [
        *authorize_params(client.client_id, pkce=Pkce.new()).items(),
        ("nonce", "n-1"),
        ("ui_locales", "fr"),
        ("junk", "A" * 30_000),
        ("tessera_signed_in_after", "9999999999"),
        ("tessera_pushed_at", "9999999999999"),
    ]
    response = await _push(http, client.client_id, None, params)
    assert response.status == 201, await response.text()
    request_uri = (await response.json())["request_uri"]
    kept = await registry.pushed_requests.take(request_uri, client.client_id)
    assert kept is not None
    names = {name for name, _ in kept}
    assert "junk" not in names and "tessera_signed_in_after" not in names
    assert {
        "client_id",
        "response_type",
        "redirect_uri",
        "state",
        "code_challenge",
        "nonce",
        "ui_locales",
    } <= names
    assert dict(kept)["tessera_pushed_at"] != "9999999999999"  # the store's own clock, not the client's


async def test_a_pushed_request_too_big_to_keep_is_refused(
    http: TestClient, new_client: ClientFactory
) -> None:
    client, _ = await new_client(public=True)
    params = {**authorize_params(client.client_id, pkce=Pkce.new()), "login_hint": "a" * 9000}
    response = await _push(http, client.client_id, None, params)
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid_request"
    assert "too large" in body["error_description"] and str(par.MAX_KEPT_BYTES) in body["error_description"]


def test_few_pushes_per_address_by_default() -> None:
    """A public client authenticates with its id alone, so the address's budget is what bounds
    what a stranger parks in Redis (at most MAX_KEPT_BYTES a push, for TESSERA_PAR_TTL)."""
    settings = Settings.from_env({})
    assert settings.rate_par_per_ip <= 60
    assert settings.rate_par_per_ip * par.MAX_KEPT_BYTES <= 1024 * 1024  # a MiB a minute at most


async def test_a_request_uri_cannot_be_kept_alive_by_visits(
    http: TestClient, new_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each visit to /authorize without a session spends the request_uri and pushes the request
    again for the sign-in; however many visits, the request lasts SIGN_IN_WAIT from its first push."""
    client, secret = await new_client()
    request_uri = await _pushed(http, client.client_id, secret, authorize_params(client.client_id))
    pushed_at = time.time()

    def clock(late: float) -> None:
        fake = SimpleNamespace(time=lambda: pushed_at + late)
        monkeypatch.setattr(pushed_requests, "time", fake, raising=False)

    for late in (0, 300, SIGN_IN_WAIT - 10):  # a stranger, no cookies, visiting again and again
        clock(late)
        http.session.cookie_jar.clear()
        response = await http.get(_by_reference(client.client_id, request_uri), allow_redirects=False)
        assert response.status == 302 and response.headers["Location"].startswith("/login?")
        request_uri = query_of(query_of(response.headers["Location"])["return_to"])["request_uri"]
    clock(SIGN_IN_WAIT + 1)
    http.session.cookie_jar.clear()
    assert "invalid_request_uri" in await _refused_page(http, _by_reference(client.client_id, request_uri))
