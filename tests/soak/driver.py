"""One HTTP request of the load: sent to a random replica, bounded in time, judged and recorded.

Every request becomes a :class:`Sample` with one of three outcomes. ``ok``: what the step
expects. ``unavailable``: a clean refusal while a backing service is away (503
``temporarily_unavailable`` as JSON, the HTML error page, or a redirect carrying that error).
``error``: anything else, a timeout or a broken connection included. The report then asks
whether every ``error`` and ``unavailable`` falls inside an outage window.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.support.flow import REDIRECT_URI


class Outcome(enum.Enum):
    OK = "ok"
    UNAVAILABLE = "unavailable"
    ERROR = "error"


@dataclass(frozen=True)
class Sample:
    flow: str
    step: str
    replica: str
    outcome: Outcome
    detail: str  # "200", "503 temporarily_unavailable", "500 server_error", "timeout", ...
    started: float
    ended: float


@dataclass(frozen=True)
class Reply:
    status: int  # 0 when no HTTP answer came
    body: Any  # the parsed JSON, or None
    text: str
    location: str
    outcome: Outcome

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


NO_ANSWER = Reply(0, None, "", "", Outcome.ERROR)  # a timeout or a broken connection

# A step's own judgement of an expected status: a problem to report, or None when all is well.
Validator = Callable[[Reply], str | None]


@dataclass
class Driver:
    """What every worker shares: the replicas, the HTTP connector, the record, the stop signal."""

    replicas: Mapping[str, str]  # name -> base URL
    issuer: str
    timeout: float
    connector: aiohttp.TCPConnector
    rng: random.Random = field(default_factory=random.Random)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    samples: list[Sample] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @contextlib.asynccontextmanager
    async def browser(self) -> AsyncIterator[aiohttp.ClientSession]:
        """A session with its own cookie jar (a person's browser); ``unsafe``: cookies for an IP host."""
        async with aiohttp.ClientSession(
            connector=self.connector, connector_owner=False, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as session:
            yield session

    async def call(
        self,
        session: aiohttp.ClientSession,
        flow: str,
        step: str,
        method: str,
        path: str,
        *,
        expect: Collection[int],
        validate: Validator | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send one request to a random replica, within the timeout; judge it and record the sample."""
        name = self.rng.choice(sorted(self.replicas))
        started = time.monotonic()
        try:
            async with (
                asyncio.timeout(self.timeout),
                session.request(
                    method, self.replicas[name] + path, data=data, headers=headers, allow_redirects=False
                ) as response,
            ):
                raw = await response.read()
                status, location = response.status, response.headers.get("Location", "")
        except TimeoutError:
            return self._record(flow, step, name, started, NO_ANSWER, "timeout")
        except aiohttp.ClientError as exc:
            return self._record(flow, step, name, started, NO_ANSWER, type(exc).__name__)
        reply, detail = _judge(status, raw, location, expect, validate)
        return self._record(flow, step, name, started, reply, detail)

    def _record(self, flow: str, step: str, replica: str, started: float, reply: Reply, detail: str) -> Reply:
        self.samples.append(Sample(flow, step, replica, reply.outcome, detail, started, time.monotonic()))
        return reply

    def problem(self, flow: str, step: str, detail: str) -> None:
        """An error found by a flow itself, beyond any single response (e.g. a wrong ``state``)."""
        now = time.monotonic()
        self.samples.append(Sample(flow, step, "-", Outcome.ERROR, detail, now, now))

    def since_start(self, moment: float) -> float:
        return moment - self.started


def _judge(
    status: int, raw: bytes, location: str, expect: Collection[int], validate: Validator | None
) -> tuple[Reply, str]:
    text = raw.decode("utf-8", errors="replace")
    body = _json(text)
    page_error = _page_error(text)
    code = body.get("error") if isinstance(body, dict) else page_error
    redirected_error = _redirected_error(location)
    detail = " ".join(str(part) for part in (status, code or redirected_error) if part)
    detail += " (page)" if page_error else ""
    if _unavailable(status, code, redirected_error):
        outcome = Outcome.UNAVAILABLE
    elif status in expect and redirected_error is None:
        outcome = Outcome.OK
    else:
        outcome = Outcome.ERROR
    reply = Reply(status, body, text, location, outcome)
    if outcome is Outcome.OK and validate is not None:
        problem = validate(reply)
        if problem is not None:
            return Reply(status, body, text, location, Outcome.ERROR), f"{status} {problem}"
    return reply, detail


def _unavailable(status: int, code: str | None, redirected_error: str | None) -> bool:
    return redirected_error == "temporarily_unavailable" or (
        status == 503 and code == "temporarily_unavailable"
    )


def _page_error(text: str) -> str | None:
    """The error code on Tessera's HTML error page (shown to a person instead of JSON)."""
    match = re.search(r'<code id="error-code">([a-z_]+)</code>', text)
    return match.group(1) if match else None


def _redirected_error(location: str) -> str | None:
    """The ``error`` an authorization response carries back to the client's redirect URI."""
    if not location.startswith(REDIRECT_URI):
        return None
    errors = parse_qs(urlsplit(location).query).get("error")
    return errors[0] if errors else None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
