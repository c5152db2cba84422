"""Request ids, JSON logs without secrets, Prometheus metrics on a listener of their own (never
the public app, issue 12), liveness and readiness."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from auth_server.app import create_app
from auth_server.settings import Settings
from auth_server.stores.users import User
from shared.observability import RequestIdFilter, json_formatter
from tests.integration.test_process_lifecycle import _wait_healthy
from tests.integration.test_serving import _environment
from tests.support.flow import REDIRECT_URI, Pkce, authorize_params, basic, hidden, obtain_code
from tests.support.metrics import scrape
from tests.support.servers import PASSWORD, ClientFactory, free_port, make_settings
from tests.support.services import Services

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


async def test_metrics_count_requests_tokens_and_errors(
    aiohttp_client: Factory, http: TestClient, new_client: ClientFactory
) -> None:
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
    text = await scrape(aiohttp_client, http)
    assert 'tessera_tokens_issued_total{grant_type="client_credentials"} 3.0' in text
    assert 'tessera_oauth_errors_total{error="invalid_client"}' in text
    assert (
        'tessera_http_requests_total{method="POST",route="/oauth2/token",service="auth",status="200"} 3.0'
        in text
    )
    assert "tessera_http_request_seconds_bucket" in text
    assert 'tessera_db_pool_connections{service="auth"}' in text
    assert 'tessera_db_pool_connections_in_use{service="auth"}' in text
    # the public app has no /metrics: it is served on a listener of its own
    assert (await http.get("/metrics")).status == 404


def _two_free_ports() -> int:
    """A port P such that P and P + 1 are both free (the metrics ports of two workers)."""
    for _ in range(50):
        first = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", first + 1))
            except OSError:
                continue
        return first
    raise AssertionError("no two adjacent free ports")


async def _scrape_port(session: aiohttp.ClientSession, port: int) -> str:
    """/metrics on ``port``, waiting for its listener (a worker starts it once its resources are open)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.status == 200
                return await response.text()
        except aiohttp.ClientConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def _healthz_requests(text: str) -> float:
    pattern = (
        r'^tessera_http_requests_total\{method="GET",route="/healthz",service="auth",status="200"\} (\S+)$'
    )
    return sum(float(found) for found in re.findall(pattern, text, re.M))


async def test_each_worker_serves_its_metrics_on_a_port_of_its_own(
    database_url: str, backing: Services, redis_prefix: str
) -> None:
    """``--workers 2 --metrics-port P``: worker i serves its own metrics on P + i, so that a scrape
    of one port always reaches the same worker; the public port serves no /metrics."""
    port, metrics = free_port(), _two_free_ports()
    env = _environment(port, database_url, backing.redis_url, redis_prefix)
    command = ["auth-server", "--port", str(port), "--workers", "2", "--metrics-port", str(metrics)]
    process = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "auth_server.cli", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await asyncio.to_thread(_wait_healthy, port, process)
        async with aiohttp.ClientSession() as session:
            before = [await _scrape_port(session, metrics + i) for i in range(2)]
            for _ in range(20):
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.status == 404
            after = [await _scrape_port(session, metrics + i) for i in range(2)]
        for text in after:
            assert "# TYPE tessera_tokens_issued_total counter" in text
        # every request counted once, by the worker that served it; no worker's count went back
        counted = [_healthz_requests(a) - _healthz_requests(b) for a, b in zip(after, before, strict=True)]
        assert all(count >= 0 for count in counted) and sum(counted) == 20, counted
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


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
