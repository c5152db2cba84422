"""The run itself: workers looping over the flows while Redis, then PostgreSQL, is restarted.

The restarts come at one third and two thirds of the duration, so each has a stretch of normal
traffic before and after it. Each restart is an :class:`Outage` window from the moment the
service is told to stop to the moment it answers again.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from tests.soak.driver import Driver, Outcome
from tests.soak.flows import Flows

FlowRunner = Callable[[Flows], Awaitable[None]]
# the mix: each worker runs one kind, in this rotation (so any concurrency of 3 or more has all three)
KINDS: tuple[tuple[str, FlowRunner], ...] = (
    ("password", Flows.password),
    ("authorization_code", Flows.authorization_code),
    ("client_credentials", Flows.client_credentials),
)


class Restartable(Protocol):
    async def stop(self) -> None: ...

    async def start(self) -> str: ...


@dataclass(frozen=True)
class Outage:
    service: str
    stopped: float  # monotonic: the stop was asked for
    back: float  # monotonic: the service answers again


async def run(
    flows: Flows,
    concurrency: int,
    duration: float,
    outage: float,
    services: list[tuple[str, Restartable]],
) -> list[Outage]:
    """Run the load for ``duration`` seconds, restarting each service in turn; the outage windows."""
    driver = flows.driver
    workers = [asyncio.create_task(_worker(flows, KINDS[n % len(KINDS)][1])) for n in range(concurrency)]
    progress = asyncio.create_task(_progress(driver))
    windows: list[Outage] = []
    try:
        for n, (name, service) in enumerate(services, start=1):
            await _sleep_until(driver.started + duration * n / (len(services) + 1))
            windows.append(await _restart(driver, name, service, outage))
        await _sleep_until(driver.started + duration)
    finally:
        driver.stop.set()
        progress.cancel()
        # a worker finishes its flow: a rotation in retry keeps retrying until it settles
        done, pending = await asyncio.wait(workers, timeout=flows.settle + driver.timeout + 10)
    for task in pending:
        task.cancel()
        driver.problem("-", "worker", "a worker did not finish its flow in time (hung)")
    for task in done:
        task.result()
    return windows


async def _worker(flows: Flows, flow: FlowRunner) -> None:
    while not flows.driver.stop.is_set():
        await flow(flows)
        await asyncio.sleep(flows.driver.rng.random() * 0.02)  # a little think time, and fairness


async def _restart(driver: Driver, name: str, service: Restartable, outage: float) -> Outage:
    stopped = time.monotonic()
    _say(driver, f"stopping {name}")
    await service.stop()
    await asyncio.sleep(outage)
    await service.start()
    back = time.monotonic()
    _say(driver, f"{name} is back after {back - stopped:.1f} s")
    return Outage(name, stopped, back)


async def _progress(driver: Driver, every: float = 10) -> None:
    while True:
        await asyncio.sleep(every)
        failed = sum(s.outcome is not Outcome.OK for s in driver.samples)
        _say(driver, f"{len(driver.samples)} requests, {failed} not ok")


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


def _say(driver: Driver, message: str) -> None:
    print(f"[{driver.since_start(time.monotonic()):6.1f} s] {message}", file=sys.stderr, flush=True)
