"""Running wrk with one of the Lua scripts in ``lua/`` and reading the JSON line its ``done()`` prints."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.load.processes import pinned

LUA = Path(__file__).parent / "lua"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    flows: int  # completed units: tokens, rotations, SSO flows, API answers
    statuses: dict[str, int]  # "200", "302", … and what scripts track: "302-without-code", "400-pending"
    socket_errors: int
    timeouts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def flows_per_second(self) -> float:
        return self.flows / self.seconds

    def unexpected(self, expected: frozenset[int | str]) -> int:
        """Responses outside ``expected``, plus socket errors and timeouts."""
        wanted = {str(status) for status in expected}
        odd = sum(count for status, count in self.statuses.items() if status not in wanted)
        return odd + self.socket_errors + self.timeouts


def parse(output: str) -> WrkResult:
    line = next((ln for ln in output.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result line:\n{output[-2000:]}")
    raw: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        flows=raw["flows"],
        statuses={str(status): count for status, count in raw["statuses"].items()},
        socket_errors=raw["socket_errors"],
        timeouts=raw["timeouts"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )


async def run(
    url: str,
    script: str,
    args: dict[str, str],
    *,
    seconds: float,
    connections: int,
    core: int | None,
    threads: int = 1,
) -> WrkResult:
    """One wrk run of ``seconds`` with ``connections`` connections; the script's arguments as key=value."""
    command = pinned(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            script,
            url,
            "--",
            f"threads={threads}",
            *(f"{key}={value}" for key, value in args.items()),
        ],
        core,
    )
    process = await asyncio.create_subprocess_exec(
        *command, cwd=LUA, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await process.communicate()
    except asyncio.CancelledError:  # the run was abandoned: wrk must not keep loading the server
        process.kill()
        await process.wait()
        raise
    text = out.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{text[-2000:]}")
    return parse(text)
