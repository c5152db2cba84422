"""Auth-server replicas as real processes (``tessera auth-server``), as they run in production.

Running them as processes, not in the soak's event loop, is the point: each has its own pool and
Redis connections that must recover on their own, and the soak can check afterwards that neither
process exited (so none was restarted) and count the unhandled errors each one logged.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp

READY_TIMEOUT = 60  # seconds for a replica to migrate-check, create or load keys, and answer


def tessera_command() -> list[str]:
    """The ``tessera`` script of this virtualenv, or the module it runs when the script is missing."""
    script = Path(sys.executable).with_name("tessera")
    return [str(script)] if script.exists() else [sys.executable, "-m", "auth_server.cli"]


@dataclass
class Replica:
    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]
    handle: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def logged_errors(self) -> list[str]:
        """Messages the replica logged at ERROR or above (an unhandled error is logged there)."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("level") in ("ERROR", "CRITICAL"):
                found.append(str(record.get("message", "")))
        return found


def start_replica(name: str, port: int, env: dict[str, str], folder: Path) -> Replica:
    log = folder / f"{name}.log"
    handle = log.open("wb")
    process = subprocess.Popen(
        [*tessera_command(), "auth-server", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **env},
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    return Replica(name, port, log, process, handle)


async def wait_ready(replicas: list[Replica]) -> None:
    """Until every replica's /readyz says 200 (its database, Redis and signing key all answer)."""
    async with (
        asyncio.timeout(READY_TIMEOUT),
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
    ):
        for replica in replicas:
            while not await _ready(session, replica):
                if not replica.running:
                    raise RuntimeError(f"{replica.name} exited; see {replica.log}")
                await asyncio.sleep(0.1)


async def _ready(session: aiohttp.ClientSession, replica: Replica) -> bool:
    try:
        async with session.get(f"{replica.url}/readyz") as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


def stop_replicas(replicas: list[Replica], grace: float = 20) -> None:
    """SIGTERM, as an orchestrator would; SIGKILL whatever is still running after ``grace``."""
    for replica in replicas:
        if replica.process.poll() is None:
            replica.process.send_signal(signal.SIGTERM)
    for replica in replicas:
        try:
            replica.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait(timeout=10)
        replica.handle.close()
