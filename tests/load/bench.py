"""The benchmark: Tessera's servers, their limits and a peer, measured side by side in one run.

Everything is started here, against real PostgreSQL and Redis (found as the test suite finds them:
``TESSERA_TEST_DATABASE_URL``/``TESSERA_TEST_REDIS_URL``, else testcontainers, else the embedded
servers), in a throwaway database and Redis prefix that are removed afterwards. Servers run on
one core and wrk on another (``taskset``); each scenario runs ``runs`` times, interleaved with its
limit, and the median run (by throughput) is reported.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from redis.asyncio import Redis

from tests.load import processes, tools, wrk
from tests.load.processes import Server
from tests.support.flow import Pkce, basic, obtain_code
from tests.support.servers import free_port
from tests.support.services import services, throwaway_database

ROOT = Path(__file__).resolve().parents[2]
TESSERA = [sys.executable, "-m", "auth_server.cli"]
PASSWORD = "bench-password-not-secret"
REDIRECT_URI = "http://127.0.0.1:9/callback"


@dataclass(frozen=True)
class Options:
    seconds: float = 10
    runs: int = 3
    connections: int = 64
    memory_tokens: int = 1_000_000
    peer: bool = True
    output: Path | None = None
    quick: bool = False


@dataclass
class Measured:
    """One scenario's runs; the median run (by units per second) stands for it."""

    name: str
    title: str
    unit: str
    expected: list[int]
    runs: list[dict[str, Any]] = field(default_factory=list)

    def add(self, result: wrk.WrkResult, cpu_seconds: float | None) -> None:
        units = result.flows_per_second
        # a run that completed nothing measured nothing: as bad as an unexpected answer
        unexpected = result.unexpected(frozenset(self.expected)) + (1 if result.flows == 0 else 0)
        self.runs.append(
            {
                "units_per_s": round(units, 1),
                "requests_per_s": round(result.rps, 1),
                "p50_ms": result.p50_ms,
                "p99_ms": result.p99_ms,
                "max_ms": result.max_ms,
                "requests": result.requests,
                "unexpected": unexpected,
                "statuses": dict(sorted(result.statuses.items())),
                "server_cpu_us_per_unit": (
                    round(cpu_seconds * 1e6 / result.flows, 1) if cpu_seconds and result.flows else None
                ),
            }
        )

    @property
    def median(self) -> dict[str, Any]:
        ordered = sorted(self.runs, key=lambda run: run["units_per_s"])
        return ordered[(len(ordered) - 1) // 2]

    @property
    def unexpected(self) -> int:
        return sum(run["unexpected"] for run in self.runs)

    def summary(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "unit": self.unit,
            "median": self.median,
            "all_units_per_s": [run["units_per_s"] for run in self.runs],
            "unexpected_responses": self.unexpected,
        }


@dataclass
class Seed:
    partner_id: str = ""
    partner_secret: str = ""
    web_id: str = ""
    web_secret: str = ""
    ropc_id: str = ""
    ropc_secret: str = ""
    login_id: str = ""
    login_secret: str = ""
    username: str = ""
    # OpenID Connect relying parties: ID tokens signed RS256 (the default) and ES256
    rp_rs256_id: str = ""
    rp_rs256_secret: str = ""
    rp_es256_id: str = ""
    rp_es256_secret: str = ""


class Bench:
    def __init__(self, options: Options, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.server_core, self.load_core = processes.cores()
        self.results: dict[str, Measured] = {}
        self.extra: dict[str, Any] = {}
        self.servers: dict[str, Server] = {}
        self.seed = Seed()
        self.locust_failures = 0
        self.memory_unexpected = 0

    # ---- setting up -------------------------------------------------------------------------

    def env(self, database_url: str, redis_url: str, prefix: str, issuer: str) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
        return {
            **inherited,
            "PYTHONPATH": str(ROOT),
            "TESSERA_ISSUER": issuer,
            "TESSERA_DATABASE_URL": database_url,
            "TESSERA_REDIS_URL": redis_url,
            "TESSERA_REDIS_PREFIX": prefix,
            # the limits stay on (their counting is part of the cost), set above what the load reaches
            "TESSERA_RATE_TOKEN_PER_CLIENT": "1000000000",
            "TESSERA_RATE_TOKEN_PER_IP": "1000000000",
            "TESSERA_RATE_AUTHORIZE_PER_IP": "1000000000",
            "TESSERA_RATE_LOGIN_PER_IP": "1000000000",
            "TESSERA_ACCESS_LOG": "off",
            "TESSERA_LOG_LEVEL": "WARNING",
        }

    def cli(self, env: dict[str, str], *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*TESSERA, *args], env=env, input=stdin, capture_output=True, text=True, cwd=ROOT
        )
        if done.returncode != 0:
            raise RuntimeError(f"tessera {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def client(self, env: dict[str, str], name: str, *args: str) -> tuple[str, str]:
        made = json.loads(self.cli(env, "client", "create", "--name", name, "--json", *args))
        return made["client_id"], made.get("client_secret") or ""

    def seed_records(self, env: dict[str, str]) -> None:
        self.cli(env, "migrate")
        s = self.seed
        s.partner_id, s.partner_secret = self.client(
            env,
            "partner",
            "--grant-type",
            "client_credentials",
            "--scope",
            "warehouse:stats",
            "--allow-introspection",
        )
        s.web_id, s.web_secret = self.client(
            env,
            "web",
            "--redirect-uri",
            REDIRECT_URI,
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "photos:read",
        )
        s.ropc_id, s.ropc_secret = self.client(
            env, "ropc", "--grant-type", "password", "--grant-type", "refresh_token", "--scope", "photos:read"
        )
        s.login_id, s.login_secret = self.client(
            env, "login", "--grant-type", "password", "--scope", "photos:read openid profile"
        )
        for alg in ("RS256", "ES256"):
            relying_party = {
                "client_name": f"relying party {alg}",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid profile photos:read",
                "id_token_signed_response_alg": alg,
                "require_pkce": False,
            }
            made = json.loads(
                self.cli(
                    env, "client", "create", "--metadata-file", "-", "--json", stdin=json.dumps(relying_party)
                )
            )
            setattr(s, f"rp_{alg.lower()}_id", made["client_id"])
            setattr(s, f"rp_{alg.lower()}_secret", made["client_secret"])
        s.username = f"bench-{uuid.uuid4().hex[:8]}"
        self.cli(env, "user", "create", "--username", s.username, "--password-stdin", stdin=PASSWORD)

    async def start(self, name: str, url: str, command: list[str], env: dict[str, str], ready: str) -> Server:
        server = Server(name, url, command, env, self.workdir / f"{name}.log", ready_path=ready)
        self.servers[name] = server
        await server.start()
        return server

    # ---- measuring --------------------------------------------------------------------------

    async def measure(
        self,
        name: str,
        title: str,
        unit: str,
        server: Server,
        script: str,
        args: dict[str, str],
        *,
        expected: tuple[int, ...] = (200,),
        connections: int | None = None,
        core: int | str | None = "load",
    ) -> wrk.WrkResult:
        measured = self.results.setdefault(name, Measured(name, title, unit, list(expected)))
        before = processes.cpu_seconds(server.pid)
        result = await wrk.run(
            server.url,
            script,
            args,
            seconds=self.options.seconds,
            connections=connections or self.options.connections,
            core=self.load_core if core == "load" else (core if isinstance(core, int) else None),
        )
        measured.add(result, processes.cpu_seconds(server.pid) - before)
        print(
            f"  {name:<28} {result.flows_per_second:>9.0f} {unit:<11} p99 {result.p99_ms:6.1f} ms"
            f"  unexpected {result.unexpected(frozenset(expected))}",
            flush=True,
        )
        return result

    async def tokens(self, url: str, form: dict[str, str], auth: dict[str, str], count: int) -> list[str]:
        """``count`` token responses from the token endpoint, 16 at a time."""
        async with aiohttp.ClientSession() as session:
            semaphore = asyncio.Semaphore(16)

            async def one() -> dict[str, Any]:
                async with (
                    semaphore,
                    session.post(f"{url}/oauth2/token", data=form, headers=auth) as response,
                ):
                    body: dict[str, Any] = await response.json()
                    if response.status != 200:
                        raise RuntimeError(f"seeding a token failed: {response.status} {body}")
                    return body

            bodies = await asyncio.gather(*(one() for _ in range(count)))
        return [b.get("refresh_token") or b["access_token"] for b in bodies]

    def lines(self, name: str, values: list[str]) -> str:
        path = self.workdir / name
        path.write_text("\n".join(values) + "\n")
        return str(path)

    async def run(self) -> dict[str, Any]:
        with services() as backing:
            async with throwaway_database(backing.admin_database_url) as database_url:
                prefix = f"tessera-bench-{uuid.uuid4().hex[:8]}:"
                try:
                    return await self._run(database_url, backing.redis_url, prefix)
                finally:
                    for server in self.servers.values():
                        server.stop()
                    redis = Redis.from_url(backing.redis_url)
                    try:
                        batch: list[bytes] = []
                        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
                            batch.append(key)
                            if len(batch) >= 1000:
                                await redis.unlink(*batch)
                                batch.clear()
                        if batch:
                            await redis.unlink(*batch)
                    finally:
                        await redis.aclose()

    async def _run(self, database_url: str, redis_url: str, prefix: str) -> dict[str, Any]:
        o, s = self.options, self.seed
        tools.ensure_wrk()
        peer_command = tools.ensure_peer() if o.peer else None
        auth_port, resource_port, uncached_port, workers_port = (free_port() for _ in range(4))
        bare_port, hello_port, peer_port = free_port(), free_port(), free_port()
        auth_url = f"http://127.0.0.1:{auth_port}"
        env = self.env(database_url, redis_url, prefix, auth_url)
        self.seed_records(env)
        core = self.server_core
        print(
            f"servers on core {core}, wrk on core {self.load_core}; "
            f"{o.runs} run(s) of {o.seconds:g} s, {o.connections} connections",
            flush=True,
        )

        auth = await self.start(
            "auth",
            auth_url,
            processes.pinned([*TESSERA, "auth-server", "--port", str(auth_port)], core),
            env,
            "/readyz",
        )
        resource_env = {**env, "TESSERA_RESOURCE_PORT": str(resource_port)}
        resource = await self.start(
            "resource",
            f"http://127.0.0.1:{resource_port}",
            processes.pinned([*TESSERA, "resource-server"], core),
            resource_env,
            "/readyz",
        )
        uncached = await self.start(
            "resource-uncached",
            f"http://127.0.0.1:{uncached_port}",
            processes.pinned([*TESSERA, "resource-server"], core),
            {**env, "TESSERA_RESOURCE_PORT": str(uncached_port), "TESSERA_TOKEN_CACHE_SIZE": "0"},
            "/readyz",
        )
        baseline = [sys.executable, "-m", "tests.load.baselines"]
        bare = await self.start(
            "bare-form-sign",
            f"http://127.0.0.1:{bare_port}",
            processes.pinned([*baseline, "form-sign", str(bare_port)], core),
            env,
            "/oauth2/token",
        )
        hello = await self.start(
            "bare-hello",
            f"http://127.0.0.1:{hello_port}",
            processes.pinned([*baseline, "hello", str(hello_port)], core),
            env,
            "/api/hello",
        )
        peer = None
        if peer_command is not None:
            peer = await self.start(
                "oidc-provider",
                f"http://127.0.0.1:{peer_port}",
                processes.pinned([*peer_command, str(peer_port), s.partner_id, s.partner_secret], core),
                {**os.environ, "NODE_ENV": "production"},
                "/.well-known/openid-configuration",
            )

        partner = basic(s.partner_id, s.partner_secret)["Authorization"]
        cc_args = {
            "path": "/oauth2/token",
            "body": "grant_type=client_credentials&scope=warehouse:stats",
            "auth": partner,
        }

        # seeded tokens: access tokens for the API and introspection, a signed-in browser for SSO
        user_tokens = await self.tokens(
            auth_url,
            {"grant_type": "password", "username": s.username, "password": PASSWORD, "scope": "photos:read"},
            basic(s.login_id, s.login_secret),
            max(8, o.connections),
        )
        bearer_file = self.lines("bearer.txt", user_tokens)
        partner_token = (
            await self.tokens(auth_url, {"grant_type": "client_credentials"}, {"Authorization": partner}, 1)
        )[0]
        sso = await self.signed_in_browser(auth_url, s.web_id, s.web_secret, "photos:read")
        signed_in = {
            alg: await self.signed_in_browser(
                auth_url,
                getattr(s, f"rp_{alg.lower()}_id"),
                getattr(s, f"rp_{alg.lower()}_secret"),
                "openid profile photos:read",
                nonce="bench-nonce",
            )
            for alg in ("RS256", "ES256")
        }
        userinfo_tokens = await self.tokens(
            auth_url,
            {
                "grant_type": "password",
                "username": s.username,
                "password": PASSWORD,
                "scope": "openid profile",
            },
            basic(s.login_id, s.login_secret),
            max(8, o.connections),
        )
        userinfo_file = self.lines("userinfo-bearer.txt", userinfo_tokens)

        print("measuring", flush=True)
        for round_ in range(o.runs):
            print(f"round {round_ + 1} of {o.runs}", flush=True)
            await self.measure(
                "bare-form-sign",
                "bare aiohttp: parse form, sign ES256 JWT",
                "tokens/s",
                bare,
                "post_form.lua",
                cc_args,
            )
            await self.measure(
                "client_credentials",
                "client_credentials, ES256 JWT, client_secret_basic",
                "tokens/s",
                auth,
                "post_form.lua",
                cc_args,
            )
            if peer is not None:
                await self.measure(
                    "oidc-provider",
                    "oidc-provider: client_credentials, ES256 JWT",
                    "tokens/s",
                    peer,
                    "post_form.lua",
                    cc_args,
                )
            await self.measure(
                "refresh_rotation",
                "refresh_token rotation (a Postgres write each)",
                "rotations/s",
                auth,
                "refresh.lua",
                {
                    "tokens": await self.refresh_tokens(auth_url),
                    "auth": basic(s.ropc_id, s.ropc_secret)["Authorization"],
                },
            )
            await self.measure(
                "sso_flow",
                "SSO flow: /authorize (signed in, consented) -> code -> /token",
                "flows/s",
                auth,
                "sso.lua",
                sso,
                expected=(200, 302),
            )
            for alg, browser in signed_in.items():
                await self.measure(
                    f"oidc_flow_{alg.lower()}",
                    f"OpenID Connect SSO flow: /authorize -> code -> /token with an {alg} ID token",
                    "flows/s",
                    auth,
                    "sso.lua",
                    browser,
                    expected=(200, 302),
                )
            await self.measure(
                "userinfo",
                "OpenID Connect userinfo: GET /oauth2/userinfo (profile claims from PostgreSQL)",
                "answers/s",
                auth,
                "bearer_get.lua",
                {"path": "/oauth2/userinfo", "tokens": userinfo_file},
            )
            await self.measure(
                "introspection",
                "introspection of one JWT access token, again and again (verified-token cache)",
                "answers/s",
                auth,
                "post_form.lua",
                {"path": "/oauth2/introspect", "body": f"token={partner_token}", "auth": partner},
            )
            await self.measure(
                "introspection_distinct",
                "introspection of distinct tokens, more than the cache holds (every one verified)",
                "answers/s",
                auth,
                "post_each.lua",
                {
                    "path": "/oauth2/introspect",
                    "tokens": await self.distinct_tokens(auth_url, partner),
                    "field": "token",
                    "auth": partner,
                },
            )
            await self.measure(
                "password_argon2id",
                "password grant: one argon2id verify + token",
                "logins/s",
                auth,
                "post_form.lua",
                {
                    "path": "/oauth2/token",
                    "body": urlencode(
                        {"grant_type": "password", "username": s.username, "password": PASSWORD}
                    ),
                    "auth": basic(s.login_id, s.login_secret)["Authorization"],
                },
                connections=min(16, o.connections),
            )
            await self.measure(
                "bare-hello",
                "bare aiohttp: hello world",
                "requests/s",
                hello,
                "get.lua",
                {"path": "/api/hello"},
            )
            await self.measure(
                "resource_cached",
                "resource server GET /api/me, verified-token cache",
                "requests/s",
                resource,
                "bearer_get.lua",
                {"path": "/api/me", "tokens": bearer_file},
            )
            await self.measure(
                "resource_uncached",
                "resource server GET /api/me, every token verified",
                "requests/s",
                uncached,
                "bearer_get.lua",
                {"path": "/api/me", "tokens": bearer_file},
            )
            await self.login_storm(auth, cc_args, s)

        await self.locust(env, auth_url, resource.url)
        await self.workers(env, workers_port, cc_args)
        self.extra["argon2id_verify_ms"] = self.argon2_verify_ms()
        await self.memory(auth, cc_args)
        return self.report()

    async def distinct_tokens(self, auth_url: str, partner: str) -> str:
        """Fresh client_credentials tokens, more than the verified-token cache holds (10,000), so a
        cycle through them never hits it."""
        count = 200 if self.options.quick else 12_000
        tokens = await self.tokens(
            auth_url, {"grant_type": "client_credentials"}, {"Authorization": partner}, count
        )
        return self.lines("distinct.txt", tokens)

    async def refresh_tokens(self, auth_url: str) -> str:
        """Fresh rotation chains for one run: twice as many as connections."""
        s = self.seed
        tokens = await self.tokens(
            auth_url,
            {"grant_type": "password", "username": s.username, "password": PASSWORD, "scope": "photos:read"},
            basic(s.ropc_id, s.ropc_secret),
            2 * self.options.connections,
        )
        return self.lines("refresh.txt", tokens)

    async def signed_in_browser(
        self, auth_url: str, client_id: str, secret: str, scope: str, *, nonce: str | None = None
    ) -> dict[str, str]:
        """A browser that has signed in and consented once to ``client_id``; wrk replays its cookie."""
        s, pkce = self.seed, Pkce.new()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "state": "bench-state",
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }
        if nonce is not None:
            params["nonce"] = nonce
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=auth_url, cookie_jar=jar) as browser:
            answer = await obtain_code(browser, params, s.username, PASSWORD)
            assert "code" in answer, answer
            cookie = "; ".join(f"{morsel.key}={morsel.value}" for morsel in jar)
        return {
            "authorize": f"/oauth2/authorize?{urlencode(params)}",
            "cookie": cookie,
            "redirect_uri": quote(REDIRECT_URI, safe=""),
            "verifier": pkce.verifier,
            "auth": basic(client_id, secret)["Authorization"],
        }

    async def login_storm(self, auth: Server, cc_args: dict[str, str], s: Seed) -> None:
        """client_credentials latency while password logins (argon2id) keep the process busy,
        beside the same client_credentials load with no storm, in the same round."""
        storm = {
            "path": "/oauth2/token",
            "body": urlencode({"grant_type": "password", "username": s.username, "password": PASSWORD}),
            "auth": basic(s.login_id, s.login_secret)["Authorization"],
        }
        await self.measure(
            "cc_8_connections",
            "client_credentials, 8 connections, no storm",
            "tokens/s",
            auth,
            "post_form.lua",
            cc_args,
            connections=8,
        )
        seconds = self.options.seconds
        logins, tokens = await asyncio.gather(
            wrk.run(auth.url, "post_form.lua", storm, seconds=seconds, connections=16, core=self.load_core),
            wrk.run(auth.url, "post_form.lua", cc_args, seconds=seconds, connections=8, core=self.load_core),
        )
        measured = self.results.setdefault(
            "cc_during_login_storm",
            Measured(
                "cc_during_login_storm",
                "client_credentials (8 connections) during a login storm (16 connections)",
                "tokens/s",
                [200],
            ),
        )
        measured.add(tokens, None)
        run = measured.runs[-1]
        run["storm_logins_per_s"] = round(logins.flows_per_second, 1)
        run["storm_login_p50_ms"], run["storm_login_p99_ms"] = logins.p50_ms, logins.p99_ms
        run["unexpected"] += logins.unexpected(frozenset({200})) + (1 if logins.flows == 0 else 0)
        print(
            f"  {'cc_during_login_storm':<28} {tokens.flows_per_second:>9.0f} tokens/s   "
            f" p99 {tokens.p99_ms:6.1f} ms"
            f"  (logins {logins.flows_per_second:.0f}/s, p99 {logins.p99_ms:.0f} ms)",
            flush=True,
        )

    async def locust(self, env: dict[str, str], auth_url: str, api_url: str) -> None:
        """Realistic mixed traffic (tests/load/locustfile.py): simulated people through the whole
        browser flow, API calls and refreshes, and partners on client_credentials."""
        o = self.options
        users, seconds = (10, 5) if o.quick else (200, 60)
        seed_file = self.workdir / "locust-seed.json"
        await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "tests.load.locust_seed",
                "--users",
                "20",
                "--partners",
                "3",
                "--out",
                str(seed_file),
            ],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        csv_prefix = self.workdir / "locust"
        command = processes.pinned(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(ROOT / "tests" / "load" / "locustfile.py"),
                "--headless",
                "-u",
                str(users),
                "-r",
                str(max(1, users // 5)),
                "-t",
                f"{seconds}s",
                "--host",
                auth_url,
                "--csv",
                str(csv_prefix),
                "--only-summary",
                "--stop-timeout",
                "5",
            ],
            self.load_core,
        )
        locust_env = {
            **env,
            "TESSERA_BENCH_ISSUER": auth_url,
            "TESSERA_BENCH_API": api_url,
            "TESSERA_BENCH_SEED": str(seed_file),
        }
        done = await asyncio.to_thread(
            subprocess.run, command, env=locust_env, cwd=ROOT, capture_output=True, text=True
        )
        rows = {row["Name"]: row for row in _csv_rows(csv_prefix.with_name("locust_stats.csv"))}
        total = rows.get("Aggregated")
        if total is None:
            raise RuntimeError(f"locust produced no statistics:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        failures = int(total["Failure Count"])
        exceptions = _csv_rows(csv_prefix.with_name("locust_exceptions.csv"))
        failures += sum(int(row.get("Count", 1)) for row in exceptions)
        if done.returncode != 0 and failures == 0:
            failures = 1  # locust itself failed (an exception in a task, a crash)
            print(done.stdout[-2000:], done.stderr[-2000:], flush=True)
        self.extra["locust_mixed"] = {
            "users": users,
            "seconds": seconds,
            "requests": int(total["Request Count"]),
            "failures": failures,
            "requests_per_s": round(float(total["Requests/s"]), 1),
            "p50_ms": float(total["50%"]),
            "p99_ms": float(total["99%"]),
            "by_name": {
                name: {"requests": int(row["Request Count"]), "p99_ms": float(row["99%"])}
                for name, row in rows.items()
                if name != "Aggregated"
            },
        }
        self.locust_failures = failures
        print(
            f"  {'locust_mixed':<28} {float(total['Requests/s']):>9.0f} requests/s "
            f" p99 {float(total['99%']):6.1f} ms  failures {failures} ({users} users, {seconds} s)",
            flush=True,
        )

    async def workers(self, env: dict[str, str], port: int, cc_args: dict[str, str]) -> None:
        """Scale-up on one host: ``--workers 2`` sharing the port; the whole machine, wrk included."""
        url = f"http://127.0.0.1:{port}"
        server = await self.start(
            "auth-2-workers",
            url,
            [*TESSERA, "auth-server", "--port", str(port), "--workers", "2"],
            env,
            "/readyz",
        )
        await asyncio.sleep(1)  # both workers listening
        for _ in range(self.options.runs):
            await self.measure(
                "client_credentials_2_workers",
                "client_credentials, 2 worker processes, unpinned (wrk shares the 2 cores)",
                "tokens/s",
                server,
                "post_form.lua",
                cc_args,
                core=None,
            )
        server.stop()

    def argon2_verify_ms(self) -> float:
        """One argon2id verify with Tessera's parameters, timed on the server core."""
        code = (
            "import asyncio, time\n"
            "from auth_server.crypto import hash_password, verify_password\n"
            "async def main() -> float:\n"
            "    h = hash_password('x'); await verify_password(h, 'x'); t = time.perf_counter()\n"
            "    for _ in range(20): await verify_password(h, 'x')\n"
            "    return (time.perf_counter() - t) / 20 * 1000\n"
            "print(asyncio.run(main()))"
        )
        out = subprocess.run(
            processes.pinned([sys.executable, "-c", code], self.server_core),
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        return round(float(out.stdout.strip()), 2)

    async def memory(self, auth: Server, cc_args: dict[str, str]) -> None:
        """Issue tokens until ``memory_tokens`` have been issued by the process, then read its RSS."""
        target = self.options.memory_tokens
        issued = await self.issued(auth.url)
        started, rss_before, issued_before = time.monotonic(), processes.rss_bytes(auth.pid), issued
        while issued < target:
            result = await wrk.run(
                auth.url,
                "post_form.lua",
                cc_args,
                seconds=10,
                connections=self.options.connections,
                core=self.load_core,
            )
            self.memory_unexpected += result.unexpected(frozenset({200}))
            before, issued = issued, await self.issued(auth.url)
            if issued <= before:
                raise RuntimeError(f"the auth server stopped issuing tokens at {issued:,}")
            print(
                f"  memory: {issued:,} tokens issued, RSS {processes.rss_bytes(auth.pid) / 2**20:.1f} MiB",
                flush=True,
            )
        self.extra["memory"] = {
            "rss_mib_when_the_phase_began": round(rss_before / 2**20, 1),
            "tokens_issued_when_the_phase_began": issued_before,
            "tokens_issued": issued,
            "rss_mib": round(processes.rss_bytes(auth.pid) / 2**20, 1),
            "seconds": round(time.monotonic() - started, 1),
        }

    async def issued(self, url: str) -> int:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
            text = await response.text()
        return int(
            sum(
                float(m.group(1))
                for m in re.finditer(r"^tessera_tokens_issued_total\{[^}]*\} (\S+)$", text, re.M)
            )
        )

    # ---- reporting --------------------------------------------------------------------------

    def round_ratios(self, name: str, limit: str) -> list[float]:
        """``name`` over ``limit`` within each round: both measured minutes apart, never across rounds."""
        if name not in self.results or limit not in self.results:
            return []
        pairs = zip(self.results[name].runs, self.results[limit].runs, strict=False)
        return [round(a["units_per_s"] / b["units_per_s"], 3) for a, b in pairs if b["units_per_s"]]

    def ratio(self, name: str, limit: str) -> float | None:
        """The median of the per-round ratios."""
        ratios = sorted(self.round_ratios(name, limit))
        return ratios[(len(ratios) - 1) // 2] if ratios else None

    def ratio_summary(self, name: str, limit: str) -> dict[str, Any] | None:
        ratios = self.round_ratios(name, limit)
        if not ratios:
            return None
        return {"median": self.ratio(name, limit), "min": min(ratios), "per_round": ratios}

    def checks(self) -> list[dict[str, Any]]:
        """The issue's targets beside what was measured (reported, never a reason to fail the run)."""
        r = self.results

        def units(name: str) -> float | None:
            return r[name].median["units_per_s"] if name in r else None

        def p99(name: str) -> float | None:
            return r[name].median["p99_ms"] if name in r else None

        verify_ms = self.extra.get("argon2id_verify_ms")
        memory = self.extra.get("memory", {})
        rows: list[tuple[str, float | None, str, float]] = [
            ("client_credentials tokens/s", units("client_credentials"), ">=", 6000),
            (
                "client_credentials / bare form+sign",
                self.ratio("client_credentials", "bare-form-sign"),
                ">=",
                0.7,
            ),
            ("client_credentials p99 ms", p99("client_credentials"), "<=", 25),
            (
                "client_credentials / oidc-provider",
                self.ratio("client_credentials", "oidc-provider"),
                ">=",
                1.2,
            ),
            ("refresh rotations/s", units("refresh_rotation"), ">=", 2000),
            ("SSO flows/s", units("sso_flow"), ">=", 1200),
            (
                "password logins/s / (1 / argon2id verify)",
                round(units("password_argon2id") * verify_ms / 1000, 3)
                if units("password_argon2id") and verify_ms
                else None,
                ">=",
                0.9,
            ),
            ("client_credentials p99 ms during a login storm", p99("cc_during_login_storm"), "<=", 50),
            ("introspections/s, one token (cache)", units("introspection"), ">=", 5000),
            ("introspections/s, distinct tokens (no cache)", units("introspection_distinct"), ">=", 5000),
            ("resource GET (cached) / hello world", self.ratio("resource_cached", "bare-hello"), ">=", 0.6),
            ("resource GET, every token verified, requests/s", units("resource_uncached"), ">=", 6000),
            ("auth-server RSS MiB after the tokens issued", memory.get("rss_mib"), "<=", 100),
        ]
        out = []
        for what, value, op, target in rows:
            met = None if value is None else (value >= target if op == ">=" else value <= target)
            out.append({"check": what, "measured": value, "target": f"{op} {target:g}", "met": met})
        return out

    def report(self) -> dict[str, Any]:
        o = self.options
        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "cpu": _cpu_model(),
                "python": platform.python_version(),
                "kernel": platform.release(),
                "server_core": self.server_core,
                "load_core": self.load_core,
            },
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(o).items()},
            "scenarios": {name: m.summary() for name, m in self.results.items()},
            "ratios": {
                f"{name} / {limit}": self.ratio_summary(name, limit)
                for name, limit in (
                    ("client_credentials", "bare-form-sign"),
                    ("client_credentials", "oidc-provider"),
                    ("refresh_rotation", "bare-form-sign"),
                    ("sso_flow", "bare-form-sign"),
                    ("oidc_flow_rs256", "sso_flow"),
                    ("oidc_flow_es256", "sso_flow"),
                    ("userinfo", "bare-hello"),
                    ("introspection", "bare-form-sign"),
                    ("introspection_distinct", "bare-form-sign"),
                    ("resource_cached", "bare-hello"),
                    ("resource_uncached", "bare-hello"),
                    ("client_credentials_2_workers", "client_credentials"),
                )
            },
            "extra": self.extra,
            "checks": self.checks(),
            "unexpected_responses": sum(m.unexpected for m in self.results.values())
            + self.locust_failures
            + self.memory_unexpected,
        }


def _csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{'scenario':<30} {'median':>10} {'unit':<12} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'unexpected':>10} {'cpu us':>8}",
        "-" * 92,
    ]
    for name, s in report["scenarios"].items():
        m = s["median"]
        cpu = m["server_cpu_us_per_unit"]
        lines.append(
            f"{name:<30} {m['units_per_s']:>10.0f} {s['unit']:<12} {m['p50_ms']:>7.2f} {m['p99_ms']:>7.2f}"
            f" {s['unexpected_responses']:>10} {cpu if cpu is not None else '-':>8}"
        )
    lines.append("")
    for name, value in report["ratios"].items():
        if value is not None:
            rounds = " ".join(f"{r:.3f}" for r in value["per_round"])
            lines.append(f"ratio {name:<52} {value['median']:.3f}  (rounds: {rounds})")
    for name, value in report["extra"].items():
        lines.append(f"{name}: {value}")
    lines.append("")
    lines.append(f"{'target (issue 6)':<52} {'measured':>10} {'target':>10}  met")
    for check in report["checks"]:
        met = {True: "yes", False: "NO", None: "-"}[check["met"]]
        measured = "-" if check["measured"] is None else f"{check['measured']:g}"
        lines.append(f"{check['check']:<52} {measured:>10} {check['target']:>10}  {met}")
    return "\n".join(lines)


async def main(options: Options) -> int:
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as folder:
        bench = Bench(options, Path(folder))
        report = await bench.run()
    print()
    print(table(report))
    if options.output is not None:
        options.output.parent.mkdir(parents=True, exist_ok=True)
        options.output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nresults written to {options.output}")
    if report["unexpected_responses"]:
        print(f"\nFAILED: {report['unexpected_responses']} unexpected responses (see 'unexpected' above)")
        return 1
    return 0
