"""The queue of outgoing mail in Redis (issue 18), built like the back-channel logout deliveries:
a :class:`~auth_server.stores.due_queue.DueQueue` under ``outbox:{queue}`` (the schedule) and
``outbox-data:{queue}`` (the data), so that a mail queued by a replica that then dies is sent by
another, and a mail server that is down is retried with back-off.

A queued mail is what the worker (:mod:`auth_server.mail.outbox`) needs to write it *when it sends
it*, never the mail itself: its kind, and the user it concerns or what someone typed into a form.
Links are made at sending, so no token ever waits in Redis in the clear, and a retry sends a fresh
one. A request typed into a form (a reset, a new verification mail) is looked up by the worker,
not by the page, which therefore answers and costs the same whether or not an account matched.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, replace

from redis.asyncio import Redis

from auth_server.stores.due_queue import DEFAULT_LEASE, Backoff, DueQueue
from shared.redis import Keys

# The kinds of mail. A user's: the user id. A request's: what was typed (a username or an address).
SIGNUP = "signup"  # welcome: the link to verify the address, or "you already have an account"
VERIFY = "verify"  # a new link to verify the address (or that notice)
PASSWORD_RESET = "password_reset"  # noqa: S105 - a kind of mail: the link to set a new password
PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a kind of mail: "your password was reset"
VERIFY_REQUEST = "verify_request"  # someone asked for a new verification mail: VERIFY to each match
RESET_REQUEST = "reset_request"  # someone asked to reset a password: PASSWORD_RESET to each match
KINDS = (SIGNUP, VERIFY, PASSWORD_RESET, PASSWORD_CHANGED, VERIFY_REQUEST, RESET_REQUEST)


@dataclass(frozen=True, slots=True)
class Mail:
    """One mail to write and send (or one request to look up), and the attempts so far."""

    kind: str
    user_id: str | None = None  # a user's mail
    typed: str | None = None  # a request's: the username or email address typed
    attempts: int = 0
    id: str = ""  # set by enqueue

    def fields(self) -> dict[str, object]:
        fields = asdict(self)
        del fields["id"]
        return fields


@dataclass(frozen=True, slots=True)
class ClaimedMail:
    """A mail claimed by this worker until its lease ends; ``token`` fences later writes."""

    mail: Mail
    token: str


class OutboxStore:
    def __init__(self, redis: Redis, keys: Keys, *, backoff: Backoff | None = None) -> None:
        self._queue = DueQueue(redis, keys("outbox", "queue"), keys("outbox-data", "queue"))
        self.backoff = backoff or Backoff()

    @property
    def enqueued(self) -> asyncio.Event:
        """Set when this process enqueues, so its worker sends at once rather than at its next poll."""
        return self._queue.enqueued

    async def enqueue(self, mail: Mail) -> Mail:
        """Queue ``mail``, due now; return it with its id."""
        assert mail.kind in KINDS
        return replace(mail, id=await self._queue.enqueue(mail.fields()))

    async def claim(self, *, limit: int = 20, lease: float = DEFAULT_LEASE) -> list[ClaimedMail]:
        """Take up to ``limit`` due mails for ``lease`` seconds: unless finished or rescheduled by
        then, they are due again for any worker."""
        token, jobs = await self._queue.claim(limit=limit, lease=lease)
        return [ClaimedMail(Mail(**job.fields, id=job.id), token) for job in jobs]

    async def retry_later(self, claimed: ClaimedMail, delay: float) -> bool:
        """Count one more failed attempt and make the mail due in ``delay`` seconds; ``False`` (and
        nothing written) if another worker claimed it since this one did."""
        failed = replace(claimed.mail, attempts=claimed.mail.attempts + 1)
        return await self._queue.reschedule(failed.id, claimed.token, delay, failed.fields())

    async def finish(self, mail: Mail) -> None:
        """Forget ``mail``: sent, or given up."""
        await self._queue.finish(mail.id)

    async def pending(self) -> list[tuple[Mail, float]]:
        """Every queued mail with when it is due (seconds since the epoch); for tests and operators."""
        return [(Mail(**job.fields, id=job.id), due) for job, due in await self._queue.pending()]
