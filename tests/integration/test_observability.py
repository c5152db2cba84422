"""Request ids, JSON logs without secrets, Prometheus metrics, liveness and readiness."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from auth_server.app import create_app
from auth_server.settings import Settings
from auth_server.stores.users import User
from shared.observability import RequestIdFilter, json_formatter
from tests.support.flow import REDIRECT_URI, Pkce, authorize_params, basic, hidden, obtain_code
from tests.support.servers import PASSWORD, ClientFactory, make_settings

Factory = Callable[..., Awaitable[TestClient]]


async def test_request_id_is_taken_or_made_and_returned(http: TestClient) -> None:
    given = await http.get("/healthz", headers={"X-Request-ID": "gw-1234.abc"})
    assert given.headers["X-Request-ID"] == "gw-1234.abc"
    made = await http.get("/healthz", headers={"X-Request-ID": "bad id with spaces\\"})
    assert made.headers["X-Request-ID"] not in ("", "bad id with spaces\\")
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", made.headers["X-Request-ID"])  # 128 random bits
    errored = await http.post("/oauth2/token", data={"grant_type": "x"})
    assert errored.status == 401 and errored.headers["X-Request-ID"]


async def test_access_lines_are_json_with_the_request_id_and_no_query(
    http: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tessera.access"):
        await http.get(
            "/oauth2/authorize?client_id=x&state=secret-state-value", headers={"X-Request-ID": "rid-77"}
        )
    (record,) = [r for r in caplog.records if r.name == "tessera.access"]
    RequestIdFilter().filter(record)
    line = json.loads(json_formatter().format(record))
    assert line["request_id"] == "rid-77"
    assert (line["route"], line["status"], line["method"]) == ("/oauth2/authorize", 400, "GET")
    assert "secret-state-value" not in json.dumps(line)


async def test_a_full_flow_logs_no_secret(
    http: TestClient, new_client: ClientFactory, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    client, secret = await new_client()
    assert secret
    pkce = Pkce.new()
    with caplog.at_level(logging.DEBUG):
        redirect = await obtain_code(
            http, authorize_params(client.client_id, pkce=pkce), user.username, PASSWORD
        )
        response = await http.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": redirect["code"],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": pkce.verifier,
            },
            headers=basic(client.client_id, secret),
        )
        tokens = await response.json()
        refreshed = await (
            await http.post(
                "/oauth2/token",
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                headers=basic(client.client_id, secret),
            )
        ).json()
    assert response.status == 200 and "access_token" in refreshed
    secrets = [
        PASSWORD,
        secret,
        redirect["code"],
        pkce.verifier,
        tokens["access_token"],
        tokens["refresh_token"],
    ]
    secrets += [refreshed["access_token"], refreshed["refresh_token"]]
    formatter = json_formatter()
    for record in caplog.records:
        RequestIdFilter().filter(record)
        text = formatter.format(record)
        for value in secrets:
            assert value not in text, f"a secret reached the log via {record.name}"
    assert any(r.name == "tessera.access" for r in caplog.records)


async def test_metrics_count_requests_tokens_and_errors(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await new_client(grant_types=["client_credentials"], scope="warehouse:stats")
    assert secret
    for _ in range(3):
        await http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers=basic(client.client_id, secret),
        )
    await http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic(client.client_id, "bad")
    )
    text = await (await http.get("/metrics")).text()
    assert 'tessera_tokens_issued_total{grant_type="client_credentials"} 3.0' in text
    assert 'tessera_oauth_errors_total{error="invalid_client"}' in text
    assert (
        'tessera_http_requests_total{method="POST",route="/oauth2/token",service="auth",status="200"} 3.0'
        in text
    )
    assert "tessera_http_request_seconds_bucket" in text
    assert 'tessera_db_pool_connections{service="auth"}' in text
    assert 'tessera_db_pool_connections_in_use{service="auth"}' in text


async def test_ready_when_postgres_redis_and_keys_are(http: TestClient) -> None:
    response = await http.get("/readyz")
    assert response.status == 200
    body = await response.json()
    assert body == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok", "signing_key": "ok"}}
    assert (await http.get("/healthz")).status == 200


async def test_not_ready_without_redis_and_pages_answer_503(
    aiohttp_client: Factory, database_url: str, settings: Settings, redis_prefix: str
) -> None:
    broken = make_settings(database_url, "redis://127.0.0.1:1/0", redis_prefix)
    http = await aiohttp_client(create_app(broken))
    response = await http.get("/readyz")
    assert response.status == 503
    assert (await response.json())["checks"]["redis"].startswith("failing")
    # the login page itself stores nothing (issue 11), but signing in needs Redis for the lockout
    # and the session: a clear 503 page, and the process stays up
    form = await http.get("/login")
    assert form.status == 200
    page = await http.post(
        "/login",
        data={
            "username": "someone",
            "password": "anything",
            "csrf_token": hidden(await form.text(), "csrf_token"),
        },
    )
    assert page.status == 503
    assert "temporarily_unavailable" in await page.text()
    assert (await http.get("/healthz")).status == 200  # alive, just not ready
