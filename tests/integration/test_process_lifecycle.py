"""Both servers as real processes: they start, answer, and on SIGTERM finish in-flight work and exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request

import aiohttp

from tests.support.servers import TEST_KEK, free_port
from tests.support.services import Services


def _serve(command: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "auth_server.cli", command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the server did not come up")


async def test_sigterm_drains_and_exits_zero(database_url: str, backing: Services, redis_prefix: str) -> None:
    auth_port, resource_port = free_port(), free_port()
    env = {
        **os.environ,
        "TESSERA_ISSUER": f"http://127.0.0.1:{auth_port}",
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_REDIS_URL": backing.redis_url,
        "TESSERA_REDIS_PREFIX": redis_prefix,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_SHUTDOWN_GRACE": "5",
    }
    auth = _serve("auth-server", auth_port, env)
    resource = _serve("resource-server", resource_port, env)
    try:
        await asyncio.to_thread(_wait_healthy, auth_port, auth)
        await asyncio.to_thread(_wait_healthy, resource_port, resource)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{auth_port}/readyz") as response:
                assert response.status == 200
            # ready once it holds the issuer's keys: polled, as an orchestrator's readiness probe does
            for _ in range(100):
                async with session.get(f"http://127.0.0.1:{resource_port}/readyz") as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.1)
            assert response.status == 200, await response.text()
            async with session.get(
                f"http://127.0.0.1:{auth_port}/.well-known/oauth-authorization-server"
            ) as r:
                assert (await r.json())["issuer"] == f"http://127.0.0.1:{auth_port}"
        for process in (auth, resource):
            process.send_signal(signal.SIGTERM)
        for process in (auth, resource):
            assert await asyncio.to_thread(process.wait, 20) == 0
    finally:
        for process in (auth, resource):
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stderr is not None:
                process.stderr.close()
