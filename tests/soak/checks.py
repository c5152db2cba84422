"""What must hold after the run, checked in the database and by using the tokens.

* Nothing half-done: every refresh-token family has exactly one unused token, and every used one
  points at a successor in the same family (rotation is one transaction).
* Nothing lost: every refresh token a flow last received is still usable, or its family was
  revoked on purpose (by the client, or as a reuse after an answer that never arrived); every
  access token revoked during the run is still inactive (the deny-list survived the restarts).
* Recovery without restart: both replicas still run, and every request outside the outage
  windows (plus a recovery margin) was answered as expected.
* Clean failures: inside the windows, a request either succeeded or got a clean
  ``temporarily_unavailable``: no other 5xx, no timeout, no broken connection.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import asyncpg

from auth_server.crypto import digest
from tests.soak.driver import Outcome, Sample
from tests.soak.flows import Family, Flows, Held
from tests.soak.load import Outage
from tests.soak.replicas import Replica
from tests.support.refresh_families import family_shapes, held_tokens

REASONS = {Held.REVOKED: "revoked by the client", Held.REUSED: "refresh token reused"}


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""


def inside(sample: Sample, windows: list[Outage], margin: float) -> bool:
    return any(sample.ended >= w.stopped and sample.started <= w.back + margin for w in windows)


def traffic(samples: list[Sample], windows: list[Outage], margin: float) -> list[Check]:
    outside = [s for s in samples if not inside(s, windows, margin) and s.outcome is not Outcome.OK]
    unclean = [s for s in samples if inside(s, windows, margin) and s.outcome is Outcome.ERROR]
    return [
        Check("every request outside the outage windows answered as expected", not outside, _tally(outside)),
        Check(
            "inside the windows, every failure a clean temporarily_unavailable", not unclean, _tally(unclean)
        ),
    ]


def replicas_survived(replicas: list[Replica]) -> list[Check]:
    exited = [r.name for r in replicas if not r.running]
    errors = {r.name: r.logged_errors() for r in replicas}
    logged = {name: Counter(found).most_common(3) for name, found in errors.items() if found}
    return [
        Check("both replicas ran throughout (no restart)", not exited, ", ".join(exited)),
        Check("the replicas logged no unhandled error", not logged, str(logged)),
    ]


async def database(database_url: str, families: list[Family]) -> list[Check]:
    conn = await asyncpg.connect(database_url)
    try:
        return [await _no_half_rotated_family(conn, families), await _held_tokens(conn, families)]
    finally:
        await conn.close()


async def _no_half_rotated_family(conn: asyncpg.Connection, families: list[Family]) -> Check:
    rows = await family_shapes(conn)
    problems: Counter[str] = Counter()
    for row in rows:
        if row["unused"] != 1 or row["dangling"]:
            problems[f"{row['unused']} unused and {row['dangling']} dangling tokens"] += 1
        if row["revoked_reason"] not in (None, *REASONS.values()):
            problems[f"revoked as {row['revoked_reason']!r}"] += 1
    reused = sum(r["revoked_reason"] == REASONS[Held.REUSED] for r in rows)
    expected = sum(f.held is Held.REUSED for f in families)
    if reused != expected:
        problems[f"{reused} families revoked as reused, {expected} expected"] += 1
    detail = f"{len(rows)} families; " + (
        ", ".join(f"{k} (x{n})" for k, n in problems.items()) or "all whole"
    )
    return Check("no refresh-token family half-rotated or revoked unexplained", not problems, detail)


async def _held_tokens(conn: asyncpg.Connection, families: list[Family]) -> Check:
    found = await held_tokens(conn, (f.token for f in families))
    problems: Counter[str] = Counter()
    for family in families:
        row = found.get(digest(family.token))
        if row is None:
            problems["a received token is missing"] += 1
        elif family.held is Held.LIVE and (row["rotated_at"] is not None or row["revoked_reason"]):
            problems[f"a live token is {'revoked' if row['revoked_reason'] else 'rotated'}"] += 1
        elif family.held in REASONS and row["revoked_reason"] != REASONS[family.held]:
            problems[f"{family.held.value}, but the database says {row['revoked_reason']!r}"] += 1
        elif family.held in (Held.REFUSED, Held.UNSETTLED):
            problems[family.held.value] += 1
    held = Counter(f.held.value for f in families)
    detail = ", ".join(f"{n} {state}" for state, n in held.items())
    if problems:
        detail += "; " + ", ".join(f"{k} (x{n})" for k, n in problems.items())
    return Check(
        "every refresh token last received is live, or its family revoked on purpose", not problems, detail
    )


async def tokens_still_answer(flows: Flows) -> list[Check]:
    """Use every live refresh token once more, and introspect every revoked access token."""
    driver = flows.driver
    first = len(driver.samples)
    live = [f for f in flows.ledger.families if f.held is Held.LIVE]
    for family in live:
        form = {"grant_type": "refresh_token", "refresh_token": family.token}
        await driver.call(
            flows.session, "final", "refresh", "POST", "/oauth2/token",
            expect={200}, data=form, headers=family.client.basic,
        )  # fmt: skip
    used = driver.samples[first:]
    revoked = flows.ledger.revoked_access
    for token in revoked:
        await driver.call(
            flows.session, "final", "introspect", "POST", "/oauth2/introspect",
            expect={200}, data={"token": token}, headers=flows.seed.introspector.basic,
            validate=lambda r: None if r.body == {"active": False} else "a revoked access token is active",
        )  # fmt: skip
    introspected = driver.samples[first + len(used) :]
    bad_refresh = [s for s in used if s.outcome is not Outcome.OK]
    bad_access = [s for s in introspected if s.outcome is not Outcome.OK]
    return [
        Check(
            f"each of the {len(live)} live refresh tokens still works", not bad_refresh, _tally(bad_refresh)
        ),
        Check(
            f"each of the {len(revoked)} revoked access tokens stays revoked",
            not bad_access,
            _tally(bad_access),
        ),
    ]


def _tally(samples: list[Sample]) -> str:
    counts = Counter(f"{s.flow}/{s.step}: {s.detail}" for s in samples)
    return ", ".join(f"{k} (x{n})" for k, n in counts.most_common(8))
