"""The one worker loop of Tessera's queues in Redis (``stores/due_queue.py``): back-channel logout
deliveries (``oidc/logout.py``) and mail (``mail/outbox.py``) each give it their store and what one
attempt does.

It claims due jobs in batches and attempts them concurrently; a claim not finished is due again when
its lease ends, for whichever replica looks first, so cancelling the loop is safe at any point. While
Redis is away it waits longer each time (up to ``max_wait``), and it wakes at once when this process
enqueues a job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

J = TypeVar("J")
J_co = TypeVar("J_co", covariant=True)


class Claiming(Protocol[J_co]):
    """A typed store over a due queue: what the loop needs of it."""

    @property
    def enqueued(self) -> asyncio.Event: ...

    async def claim(self, *, limit: int, lease: float) -> Sequence[J_co]: ...


async def work_forever(
    store: Claiming[J],
    attempt: Callable[[J], Awaitable[None]],
    stop: asyncio.Event,
    *,
    what: str,
    log: logging.Logger,
    batch: int,
    poll: float,
    lease: float,
    max_wait: float = 30.0,
) -> None:
    """Attempt the jobs of ``store`` as they fall due, until ``stop`` is set. ``attempt`` handles
    its own failures (a failed attempt leaves its claim to lapse, or reschedules it)."""
    failures = 0  # in a row: the wait grows while Redis is away, and so do the warnings' intervals
    while not stop.is_set():
        store.enqueued.clear()
        try:
            claimed = await store.claim(limit=batch, lease=lease)
            failures = 0
            await asyncio.gather(*(attempt(job) for job in claimed))
            if len(claimed) == batch:
                continue  # there may be more due now
        except Exception as exc:
            if stop.is_set():
                return
            failures += 1
            log.warning("%s queue unreachable (%s); retrying", what, type(exc).__name__)
        await _sleep(min(poll * 2 ** min(failures, 5), max_wait), stop, store.enqueued)


async def _sleep(seconds: float, *events: asyncio.Event) -> None:
    """Wait ``seconds``, or until one of ``events`` is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
