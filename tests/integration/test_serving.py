"""The server process itself: slow clients are cut off (slow-loris), and ``--workers`` share one port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.integration.test_process_lifecycle import _wait_healthy
from tests.support.servers import TEST_KEK, free_port
from tests.support.services import Services


def _environment(
    port: int, database_url: str, redis_url: str, prefix: str, **settings: str
) -> dict[str, str]:
    """What ``tessera auth-server`` on ``port`` reads; ``settings`` are extra TESSERA_* values."""
    return {
        **os.environ,
        "TESSERA_ISSUER": f"http://127.0.0.1:{port}",
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_REDIS_URL": redis_url,
        "TESSERA_REDIS_PREFIX": prefix,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_SHUTDOWN_GRACE": "5",
        **{f"TESSERA_{name.upper()}": value for name, value in settings.items()},
    }


@pytest.fixture
async def auth_process(
    database_url: str, backing: Services, redis_prefix: str
) -> AsyncIterator[Callable[..., object]]:
    """Start ``tessera auth-server`` with extra settings and arguments; stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    async def start(*args: str, **settings: str) -> tuple[int, subprocess.Popen[bytes]]:
        port = free_port()
        env = _environment(port, database_url, backing.redis_url, redis_prefix, **settings)
        process = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "auth_server.cli", "auth-server", "--port", str(port), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        started.append(process)
        await asyncio.to_thread(_wait_healthy, port, process)
        return port, process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await reader.read(1024) == b""
    except ConnectionResetError:
        return True


async def test_headers_trickled_slowly_are_cut_off(auth_process: Callable[..., object]) -> None:
    """Slow-loris: a request's headers must be complete within TESSERA_HEADER_TIMEOUT."""
    port, _ = await auth_process(header_timeout="1")  # type: ignore[misc]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        closed_after = await _trickle_headers(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert closed_after is not None and closed_after < 40, "the trickling client was never cut off"


async def _trickle_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int | None:
    """How many header lines went out before the server hung up (None: it never did)."""
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    for sent in range(40):  # one header line every 0.25 s: 10 s of trickling if never cut off
        if reader.at_eof():
            return sent
        try:
            writer.write(f"X-Slow-{sent}: a\r\n".encode())
            await writer.drain()
        except ConnectionError:
            return sent
        await asyncio.sleep(0.25)
    return None


async def test_body_trickled_slowly_gets_408(auth_process: Callable[..., object]) -> None:
    """A body that does not arrive within TESSERA_BODY_TIMEOUT: 408 invalid_request, connection closed."""
    port, _ = await auth_process(body_timeout="1")  # type: ignore[misc]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await _trickle_a_body(reader, writer)
    finally:
        writer.close()
        await writer.wait_closed()


async def _trickle_a_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\ngrant_type"
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    assert status_line.startswith("HTTP/1.1 408"), status_line
    assert b'"error": "invalid_request"' in body or b'"error":"invalid_request"' in body
    assert headers.get("connection", "").lower() == "close"
    # aiohttp drains an unread body for up to 10 s (its lingering time), then hangs up
    assert await asyncio.wait_for(_closed(reader), 15)


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def _children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").glob("*/children") for c in task.read_text().split()]


async def test_workers_share_one_port_and_stop_together(auth_process: Callable[..., object]) -> None:
    """``--workers 2``: two processes behind one port (SO_REUSEPORT); SIGTERM stops both, exit 0."""
    port, process = await auth_process("--workers", "2")  # type: ignore[misc]
    for _ in range(50):
        if len(_children(process.pid)) == 2:
            break
        await asyncio.sleep(0.1)
    workers = _children(process.pid)
    assert len(workers) == 2
    async with aiohttp.ClientSession() as session:
        for _ in range(20):
            async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                assert response.status == 200
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 20) == 0
    assert not await asyncio.to_thread(_alive, workers)  # reaped by the parent before it exited


async def test_workers_stopped_by_a_signal_to_the_whole_group_exit_cleanly(
    database_url: str, backing: Services, redis_prefix: str
) -> None:
    """Ctrl-C or systemd signal every process of the group: each worker takes its first signal
    only, drains once, and the supervisor exits 0."""
    port = free_port()
    env = _environment(port, database_url, backing.redis_url, redis_prefix)
    process = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "auth_server.cli", "auth-server", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        await asyncio.to_thread(_wait_healthy, port, process)
        for _ in range(50):
            if len(_children(process.pid)) == 2:
                break
            await asyncio.sleep(0.1)
        os.killpg(process.pid, signal.SIGINT)
        os.killpg(process.pid, signal.SIGTERM)  # and a second signal, straight to every worker too
        assert await asyncio.to_thread(process.wait, 20) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


async def test_a_worker_that_cannot_start_says_why(empty_database: str, backing: Services) -> None:
    """A worker failing at start-up (here: migrations not applied) prints its reason, exit non-zero."""
    port = free_port()
    env = _environment(port, empty_database, backing.redis_url, "tessera-test-unused:")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "auth_server.cli", "auth-server", "--port", str(port), "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "tessera migrate" in done.stderr, done.stderr[-2000:]
