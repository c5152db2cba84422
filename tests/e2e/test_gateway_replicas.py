"""The repository's own gateway config (nginx) in front of two auth and two resource processes.

A full authorization-code flow goes through the gateway, its requests spread over both auth
replicas (codes, sessions and consent live in Redis and Postgres, not in a process); then a
signing key rotated at the database is served by both replicas' JWKS and accepted by both
resource servers, without a restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import jwt
import pytest

from auth_server.crypto import hash_password
from tests.support.flow import Pkce, basic, hidden, query_of
from tests.support.servers import PASSWORD, TEST_KEK, free_port
from tests.support.services import Services

pytestmark = pytest.mark.e2e
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@dataclass
class Gateway:
    url: str
    env: dict[str, str]
    logs: dict[str, Path]
    resource_ports: list[int]


def _wait(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def render_gateway(listen: str, auth_ports: list[int], resource_ports: list[int]) -> str:
    """What the nginx image's envsubst does with NGINX_ENVSUBST_FILTER=^TESSERA_: only ${TESSERA_*}."""
    values = {
        "TESSERA_GATEWAY_LISTEN": listen,
        "TESSERA_AUTH_SERVERS": " ".join(f"server 127.0.0.1:{p};" for p in auth_ports),
        "TESSERA_RESOURCE_SERVERS": " ".join(f"server 127.0.0.1:{p};" for p in resource_ports),
    }
    template = (DEPLOY / "nginx" / "tessera.conf.template").read_text()
    return re.sub(r"\$\{(TESSERA_[A-Z_]+)\}", lambda m: values[m.group(1)], template)


@pytest.fixture
def gateway(database_url: str, backing: Services, redis_prefix: str, tmp_path: Path) -> Iterator[Gateway]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    gateway_port = free_port()
    auth_ports, resource_ports = [free_port(), free_port()], [free_port(), free_port()]
    issuer = f"http://127.0.0.1:{gateway_port}"
    env = {
        **os.environ,
        "TESSERA_ISSUER": issuer,
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_REDIS_URL": backing.redis_url,
        "TESSERA_REDIS_PREFIX": redis_prefix,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_KEY_REFRESH_INTERVAL": "1",
        "TESSERA_JWKS_MIN_REFETCH_INTERVAL": "0",
        "TESSERA_TRUSTED_PROXIES": "127.0.0.1",
        # as deploy/ sets it: the warehouse's URL through the gateway (what DPoP proofs name)
        "TESSERA_RESOURCE_URL": f"{issuer}/api",
    }
    processes: list[subprocess.Popen[bytes]] = []
    logs: dict[str, Path] = {}
    handles = []
    try:
        for kind, ports in (("auth-server", auth_ports), ("resource-server", resource_ports)):
            for port in ports:
                log = tmp_path / f"{kind}-{port}.log"
                handle = log.open("wb")
                handles.append(handle)
                logs[f"{kind}-{port}"] = log
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "auth_server.cli", kind, "--port", str(port)],
                        env=env,
                        stdout=handle,
                        stderr=subprocess.STDOUT,
                    )
                )
                _wait(f"http://127.0.0.1:{port}/healthz")
        conf = tmp_path / "nginx.conf"
        site = render_gateway(f"127.0.0.1:{gateway_port}", auth_ports, resource_ports)
        conf.write_text(
            f"worker_processes 1;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/nginx-error.log;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n access_log off;\n client_body_temp_path {tmp_path}/body;\n"
            f" proxy_temp_path {tmp_path}/proxy;\n fastcgi_temp_path {tmp_path}/fcgi;\n"
            f" uwsgi_temp_path {tmp_path}/uwsgi;\n scgi_temp_path {tmp_path}/scgi;\n{site}\n}}\n"
        )
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf.write_text(user + conf.read_text())
        processes.append(subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"]))
        _wait(f"{issuer}/gateway/healthz")
        yield Gateway(issuer, env, logs, resource_ports)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for handle in handles:
            handle.close()


def _routes_served(log: Path) -> list[str]:
    routes = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("logger") == "tessera.access":
            routes.append(record["route"])
    return routes


async def test_flow_and_key_rotation_across_replicas_behind_the_gateway(gateway: Gateway) -> None:
    from auth_server.commands import open_registry
    from auth_server.settings import Settings

    settings = Settings.from_env(gateway.env)
    async with open_registry(settings) as registry:
        client, secret = await registry.clients.create(
            name="Photo Printer",
            redirect_uris=["https://printer.example/callback"],
            grant_types=["authorization_code", "refresh_token"],
            scope=["photos:read"],
            auth_method="client_secret_basic",
        )
        user = await registry.users.create(f"gw-{client.client_id[:8]}", hash_password(PASSWORD))
    assert secret
    pkce = Pkce.new()
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": "https://printer.example/callback",
        "scope": "photos:read",
        "state": "s-1",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(gateway.url, cookie_jar=jar) as browser:
        response = await browser.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
        return_to = query_of(response.headers["Location"])["return_to"]
        page = await (await browser.get("/login", params={"return_to": return_to})).text()
        form = {
            "username": user.username,
            "password": PASSWORD,
            "csrf_token": hidden(page, "csrf_token"),
            "return_to": return_to,
        }
        assert (await browser.post("/login", data=form, allow_redirects=False)).status == 303
        consent = await (await browser.get(return_to, allow_redirects=False)).text()
        answer = await browser.post(
            "/consent",
            data={
                "csrf_token": hidden(consent, "csrf_token"),
                "request_id": hidden(consent, "request_id"),
                "consent": "allow",
            },
            allow_redirects=False,
        )
        redirect = query_of(answer.headers["Location"])
        assert redirect["iss"] == gateway.url and redirect["state"] == "s-1"
        token = await browser.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": redirect["code"],
                "redirect_uri": "https://printer.example/callback",
                "code_verifier": pkce.verifier,
            },
            headers=basic(client.client_id, secret),
        )
        tokens = await token.json()
        assert token.status == 200, tokens
        # the steps landed on both replicas
        auth_logs = [p for name, p in gateway.logs.items() if name.startswith("auth-server")]
        served = [set(_routes_served(log)) for log in auth_logs]
        assert all(routes & {"/oauth2/authorize", "/login", "/consent", "/oauth2/token"} for routes in served)

        # a key rotated at the database: both replicas publish it and sign with it, within seconds
        rotate = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "auth_server.cli", "keys", "rotate", "--prepublication", "0"],
            env=gateway.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        new_kid = json.loads(rotate.stdout)["kid"]
        for _ in range(60):
            kids = [
                {k["kid"] for k in (await (await browser.get("/oauth2/jwks")).json())["keys"]}
                for _ in range(4)
            ]
            if all(new_kid in k for k in kids):
                break
            await asyncio.sleep(0.25)
        else:
            raise AssertionError("the rotated key never reached both replicas' JWKS")
        await asyncio.sleep(1.5)  # both replicas have reloaded: the new key signs
        fresh = await (
            await browser.post(
                "/oauth2/token",
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                headers=basic(client.client_id, secret),
            )
        ).json()
        assert jwt.get_unverified_header(fresh["access_token"])["kid"] == new_kid
        # both resource servers accept it (directly, and through the gateway)
        for port in gateway.resource_ports:
            async with aiohttp.ClientSession() as direct:
                headers = {"Authorization": f"Bearer {fresh['access_token']}"}
                async with direct.get(f"http://127.0.0.1:{port}/api/photos", headers=headers) as r:
                    assert r.status == 200, await r.text()
        through = await browser.get(
            "/api/photos", headers={"Authorization": f"Bearer {fresh['access_token']}"}
        )
        assert through.status == 200
        # /metrics is not exposed through the gateway
        assert (await browser.get("/metrics")).status == 404
        # every path of auth_server/paths.py reaches a replica (which tags its answers with an
        # X-Request-ID; the gateway's own 404 has none), whatever the replica answers to a bare GET
        for path in _auth_paths():
            response = await browser.get(path, allow_redirects=False)
            assert "X-Request-ID" in response.headers, f"the gateway does not route {path}"
        for path in ("/metrics", "/readyz", "/clients"):
            response = await browser.get(path, allow_redirects=False)
            assert response.status == 404 and "X-Request-ID" not in response.headers, path


def _auth_paths() -> list[str]:
    """The auth server's paths (auth_server/paths.py), a ``{client_id}`` filled in, and one below
    /account and /login (their pages under them are routed by prefix)."""
    from auth_server import paths

    found = {
        re.sub(r"\{\w+\}", "some-client", value)
        for name, value in vars(paths).items()
        if name.isupper() and isinstance(value, str) and value.startswith("/")
    }
    return sorted(found | {f"{paths.ACCOUNT}/x", f"{paths.LOGIN}/x"})


def test_the_warehouse_metadata_is_served_through_the_gateway(gateway: Gateway) -> None:
    """RFC 9728 §3.1: the metadata of the warehouse's identifier (``<issuer>/api``, as deploy/ sets
    it) is at ``/.well-known/oauth-protected-resource/api``, which the gateway sends to the warehouse."""
    url = f"{gateway.url}/.well-known/oauth-protected-resource/api"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        document = json.loads(response.read())
    assert document["resource"] == f"{gateway.url}/api"
    assert document["authorization_servers"] == [gateway.url]
