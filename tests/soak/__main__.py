"""Soak Tessera under mixed load while its Redis and then its PostgreSQL are restarted.

    python -m tests.soak [--duration 120] [--concurrency 12] [--outage 3] ...

Why: issue 7, "Faults: nothing lost, recovery without restart". The integration tests restart one
service under one in-process app; this runs the real thing for minutes. It

1. starts a disposable PostgreSQL (the embedded pgserver) and its own ``redis-server`` on a free
   port, in a temporary folder, so restarting them disturbs nothing else on the machine;
2. applies the migrations and seeds four clients and a few users through the stores;
3. starts two ``tessera auth-server`` processes on the same database, Redis and key prefix;
4. runs a mixed load against both replicas (every request to a random one): client_credentials
   with introspection and revocation, the password grant and refresh-token rotations, and the
   authorization-code flow with PKCE through /authorize, login and consent, then rotations;
5. at a third of ``--duration`` restarts Redis, at two thirds PostgreSQL, each down for
   ``--outage`` seconds, and records both outage windows;
6. afterwards checks, in the database and by using the tokens, that no refresh-token family is
   half-rotated, that every refresh token the load last received still works or was revoked on
   purpose, that revoked access tokens stay revoked, that both replicas ran throughout, that
   outside the windows (plus ``--recovery-margin``) every request was answered as expected, and
   that inside them every failure was a clean ``temporarily_unavailable``.

It prints a summary (requests, failures by status inside and outside the windows, recovery after
each restart, the checks) and exits 1 when a check fails, keeping the folder with the replicas'
logs and ``samples.jsonl`` (every request: flow, step, replica, outcome, status, times); it exits
0 and removes the folder otherwise (``--keep`` keeps it anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import logging
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from auth_server.settings import Settings
from tests.soak import checks, load, report
from tests.soak.driver import Driver, Sample
from tests.soak.flows import Flows, Ledger
from tests.soak.replicas import Replica, start_replica, stop_replicas, wait_ready
from tests.soak.seed import Seed, migrate_and_seed
from tests.soak.services import DisposablePostgres, DisposableRedis, free_port

REPLICAS = 2


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=120, help="seconds of load (default 120)")
    parser.add_argument("--concurrency", type=int, default=12, help="concurrent workers (default 12)")
    parser.add_argument("--outage", type=float, default=3, help="seconds each service stays down (default 3)")
    parser.add_argument(
        "--recovery-margin",
        type=float,
        default=5,
        help="seconds after a service is back during which failures still count as the outage's (default 5)",
    )
    parser.add_argument("--request-timeout", type=float, default=15, help="per request, seconds (default 15)")
    parser.add_argument(
        "--settle",
        type=float,
        default=30,
        help="how long a rotation is retried through failures (default 30)",
    )
    parser.add_argument("--users", type=int, default=8, help="users to sign in as (default 8)")
    parser.add_argument("--seed", type=int, help="random seed, to repeat a run's choices")
    parser.add_argument("--workdir", type=Path, help="folder for data and logs (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the folder even when every check passes")
    args = parser.parse_args(argv)
    if args.duration < 10 or args.outage * 3 > args.duration or args.concurrency < 3:
        parser.error("need --duration >= 10, --outage <= duration / 3 and --concurrency >= 3")
    return args


def replica_env(issuer: str, database_url: str, redis_url: str) -> dict[str, str]:
    """The replicas' settings: one issuer, database, Redis and prefix; per-IP limits off (one host)."""
    return {
        "TESSERA_ISSUER": issuer,
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_REDIS_URL": redis_url,
        "TESSERA_REDIS_PREFIX": "soak:",
        "TESSERA_KEY_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        # every request comes from 127.0.0.1: per-IP limits would measure the soak, not Tessera
        "TESSERA_RATE_TOKEN_PER_IP": "0",
        "TESSERA_RATE_AUTHORIZE_PER_IP": "0",
        "TESSERA_RATE_LOGIN_PER_IP": "0",
        "TESSERA_LOGIN_MAX_FAILURES_PER_IP": "1000000",
        "TESSERA_SHUTDOWN_GRACE": "5",
    }


@dataclass(frozen=True)
class Stack:
    """Everything the load runs against, and what it may restart."""

    workdir: Path
    issuer: str
    postgres: DisposablePostgres
    redis: DisposableRedis
    replicas: list[Replica]
    seed: Seed


async def soak(args: argparse.Namespace, workdir: Path) -> bool:
    postgres = DisposablePostgres(workdir / "pg", "tessera_soak")
    redis = DisposableRedis(workdir / "redis", free_port())
    replicas: list[Replica] = []
    try:
        database_url, redis_url = await postgres.start(), await redis.start()
        ports = [free_port() for _ in range(REPLICAS)]
        env = replica_env(f"http://127.0.0.1:{ports[0]}", database_url, redis_url)
        seed = await migrate_and_seed(Settings.from_env(env), args.users)
        replicas = [start_replica(f"auth-{n + 1}", port, env, workdir) for n, port in enumerate(ports)]
        await wait_ready(replicas)
        return await _load_and_check(
            args, Stack(workdir, env["TESSERA_ISSUER"], postgres, redis, replicas, seed)
        )
    finally:
        await asyncio.to_thread(stop_replicas, replicas)
        await redis.stop()
        await postgres.stop()


async def _load_and_check(args: argparse.Namespace, stack: Stack) -> bool:
    """Run the load against the ready replicas, then every check; print the summary."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, connector_owner=False) as session:
        replicas = {r.name: r.url for r in stack.replicas}
        driver = Driver(replicas, stack.issuer, args.request_timeout, connector)
        rng_seed = args.seed if args.seed is not None else random.randrange(2**32)
        driver.rng.seed(rng_seed)
        flows = Flows(driver, session, stack.seed, Ledger(), args.settle)
        services: list[tuple[str, load.Restartable]] = [("redis", stack.redis), ("postgres", stack.postgres)]
        windows = await load.run(flows, args.concurrency, args.duration, args.outage, services)
        samples = list(driver.samples)
        _dump(samples, driver, stack.workdir / "samples.jsonl")
        found = checks.traffic(samples, windows, args.recovery_margin)
        found += await checks.database(stack.postgres.url, flows.ledger.families)
        found += await checks.tokens_still_answer(flows)
        found += checks.replicas_survived(stack.replicas)
        print(
            f"soak: {len(replicas)} replicas, {args.concurrency} workers, {args.duration:g} s,"
            f" each outage {args.outage:g} s, --seed {rng_seed}"
        )
        print(report.summary(driver, samples, windows, args.recovery_margin, found))
    await connector.close()
    return all(c.passed for c in found)


def _dump(samples: list[Sample], driver: Driver, path: Path) -> None:
    """Every request of the run, one JSON line each (times in seconds since the load began)."""
    with path.open("w") as out:
        for sample in samples:
            record = dataclasses.asdict(sample) | {
                "outcome": sample.outcome.value,
                "started": round(driver.since_start(sample.started), 4),
                "ended": round(driver.since_start(sample.ended), 4),
            }
            out.write(json.dumps(record) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tessera-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    passed = False
    try:
        passed = asyncio.run(soak(args, workdir))
    finally:
        if passed and not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"data and replica logs kept in {workdir}", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
