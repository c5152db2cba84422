"""The queue of back-channel logout deliveries in Redis (OpenID Connect Back-Channel Logout 1.0 §2.5).

A delivery is what is needed to sign a *fresh* logout token at each attempt (a token lives two
minutes; retries last much longer): the client, the ``sub`` that client sees, the session's
``sid``, and how many attempts failed. It is a job of a :class:`~auth_server.stores.due_queue.DueQueue`
under the keys ``logout-deliveries:{queue}`` (the schedule) and ``logout-delivery-data:{queue}``
(the data): claimed with a lease, so that a replica dying mid-delivery leaves it to another, and
rescheduled only by the worker that still holds its claim. Entries are bounded: only a signed-in
user's logout creates them, one per client that got an ID token in that session.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, replace

from redis.asyncio import Redis

from auth_server.stores.due_queue import DEFAULT_LEASE, Backoff, DueQueue
from shared.redis import Keys

__all__ = ["DEFAULT_LEASE", "Backoff", "Claimed", "Delivery", "LogoutDeliveryStore"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One logout token to deliver: what signing a fresh one needs, and the attempts so far."""

    client_id: str
    sub: str
    sid: str | None
    user_id: str | None = None  # the user's own id, for the audit trail
    attempts: int = 0
    id: str = ""  # set by enqueue

    def failed_once_more(self) -> Delivery:
        return replace(self, attempts=self.attempts + 1)

    def fields(self) -> dict[str, object]:
        fields = asdict(self)
        del fields["id"]
        return fields


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed by this worker until its lease ends; ``token`` fences later writes."""

    delivery: Delivery
    token: str


class LogoutDeliveryStore:
    def __init__(self, redis: Redis, keys: Keys, *, backoff: Backoff | None = None) -> None:
        self._queue = DueQueue(
            redis, keys("logout-deliveries", "queue"), keys("logout-delivery-data", "queue")
        )
        self.backoff = backoff or Backoff()

    @property
    def enqueued(self) -> asyncio.Event:
        """Set when this process enqueues, so its worker delivers at once rather than at its next poll."""
        return self._queue.enqueued

    async def enqueue(self, delivery: Delivery) -> Delivery:
        """Queue ``delivery``, due now; return it with its id."""
        return replace(delivery, id=await self._queue.enqueue(delivery.fields()))

    async def claim(self, *, limit: int = 20, lease: float = DEFAULT_LEASE) -> list[Claimed]:
        """Take up to ``limit`` due deliveries for ``lease`` seconds: unless finished or rescheduled
        by then, they are due again for any worker."""
        token, jobs = await self._queue.claim(limit=limit, lease=lease)
        return [Claimed(Delivery(**job.fields, id=job.id), token) for job in jobs]

    async def retry_later(self, claimed: Claimed, delay: float) -> bool:
        """Count one more failed attempt and make the delivery due in ``delay`` seconds; ``False``
        (and nothing written) if another worker claimed it since this one did."""
        failed = claimed.delivery.failed_once_more()
        return await self._queue.reschedule(failed.id, claimed.token, delay, failed.fields())

    async def finish(self, delivery: Delivery) -> None:
        """Forget ``delivery``: delivered, or given up."""
        await self._queue.finish(delivery.id)

    async def pending(self) -> list[tuple[Delivery, float]]:
        """Every queued delivery with when it is due (seconds since the epoch); for tests and
        operators."""
        return [(Delivery(**job.fields, id=job.id), due) for job, due in await self._queue.pending()]
