"""The benchmark: Tessera's servers, their limits and a peer, measured side by side in one run.

Everything is started here, against real PostgreSQL and Redis (found as the test suite finds them:
``TESSERA_TEST_DATABASE_URL``/``TESSERA_TEST_REDIS_URL``, else testcontainers, else the embedded
servers), in a throwaway database and Redis prefix that are removed afterwards. Servers run on
one core and wrk on another (``taskset``), Tessera with the settings a user gets (its access log
on, JSON lines to a file), only the rate limits raised above what the load reaches.

The scenarios come in groups: a group's members (a scenario, its limit, the peer answering the same
requests) run one after the other, A, B, C, and then again, A, B, C, ``runs`` times, so that the
machine's drift cancels out in the ratios, which are taken within each round. Each scenario's
median run (by throughput) is reported; each ratio by its median and its per-round spread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
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
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
from redis.asyncio import Redis

from tests.load import chart, processes, tools, wrk
from tests.load.processes import Server
from tests.support.dpop import DPoPKey
from tests.support.flow import Pkce, basic, obtain_code
from tests.support.servers import free_port
from tests.support.services import services, throwaway_database

ROOT = Path(__file__).resolve().parents[2]
TESSERA = [sys.executable, "-m", "auth_server.cli"]
PASSWORD = "bench-password-not-secret"
REDIRECT_URI = "http://127.0.0.1:9/callback"
# token exchange (RFC 8693): a gateway API whose service calls the photo API for the user
GATEWAY_API = "https://gateway.bench.example/mcp"
PHOTOS_API = "https://photos.bench.example/api"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
# the locustfile's row of sign-ins shed as busy and retried (its BUSY_NAME: that file imports only
# locust, which must never be imported here)
BUSY_LOGINS = "/login [503 busy: retried after Retry-After]"
DEVICE_POLL_INTERVAL = 5  # TESSERA_DEVICE_POLL_INTERVAL's default: a code polled sooner gets slow_down
# what a client registers with (RFC 7591), the same document each time
REGISTRATION = {
    "client_name": "bench registered app",
    "redirect_uris": ["https://app.bench.example/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_basic",
    "scope": "photos:read",
}
PEER = "oidc-provider"
LOGIN_USERS = 8  # the password scenarios' users: 16 connections, 2 logins in flight each
# the ratios reported: each scenario over its limit and over the peer, measured in the same rounds
RATIOS = (
    ("client_credentials", "bare-form-sign"),
    ("client_credentials", PEER),
    ("client_credentials_access_log_off", "bare-form-sign"),
    ("client_credentials", "client_credentials_access_log_off"),
    ("client_credentials_dpop", "bare-form-proof-sign"),
    ("client_credentials_dpop", f"{PEER}:client_credentials_dpop"),
    ("refresh_rotation", "bare-form-sign"),
    ("token_exchange", "bare-form-sign"),
    ("introspection", "bare-form-sign"),
    ("introspection_distinct", "bare-form-sign"),
    ("sso_flow", "bare-flow"),
    ("oidc_flow_rs256", "bare-flow-rs256"),
    ("oidc_flow_rs256", f"{PEER}:oidc_flow_rs256"),
    ("oidc_flow_es256", "bare-flow-es256"),
    ("oidc_flow_es256", f"{PEER}:oidc_flow_es256"),
    ("oidc_flow_rs256", "sso_flow"),
    ("oidc_flow_es256", "sso_flow"),
    ("par_flow", "bare-par-flow"),
    ("par_flow", f"{PEER}:par_flow"),
    ("device_pending", "bare-hello"),
    ("device_pending", f"{PEER}:device_pending"),
    ("userinfo", "bare-hello"),
    ("userinfo", f"{PEER}:userinfo"),
    ("registration", "bare-json-insert"),
    ("registration", f"{PEER}:registration"),
    ("resource_cached", "bare-hello"),
    ("resource_uncached", "bare-verify"),
    ("resource_uncached", "bare-hello"),
    ("resource_dpop", "bare-dpop-verify"),
    ("client_credentials_2_workers", "client_credentials"),
)


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
    expected: list[int | str]  # statuses, or what a script tracks ("400-pending")
    runs: list[dict[str, Any]] = field(default_factory=list)

    def add(self, result: wrk.WrkResult, cpu_seconds: float | None, round_: str = "") -> None:
        units = result.flows_per_second
        # a run that completed nothing measured nothing: as bad as an unexpected answer
        unexpected = result.unexpected(frozenset(self.expected)) + (1 if result.flows == 0 else 0)
        self.runs.append(
            {
                "round": round_,  # group and round: the runs a ratio pairs are those of one round
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
    # the gateway's service client, which exchanges users' tokens (RFC 8693)
    exchange_id: str = ""
    exchange_secret: str = ""
    # a TV's public client polling the device grant (RFC 8628)
    device_id: str = ""
    # an initial access token for dynamic registration (RFC 7591)
    registration_token: str = ""
    login_users: list[str] = field(default_factory=list)


Args = dict[str, str] | Callable[[], Awaitable[dict[str, str]]]  # fixed, or made afresh for each run
FRESH_FOR = 300  # seconds: half TESSERA_ACCESS_TOKEN_TTL; seeded access tokens older are made again
T = TypeVar("T")


def fresh(make: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """``make``'s value, made on first use and again once :data:`FRESH_FOR` seconds old (a run
    that starts with it has five minutes of token lifetime to spare)."""
    made: list[tuple[float, T]] = []

    async def get() -> T:
        if not made or time.monotonic() - made[0][0] > FRESH_FOR:
            made[:] = [(time.monotonic(), await make())]
        return made[0][1]

    return get


@dataclass(frozen=True)
class Step:
    """One member of a group: a scenario, a limit or the peer, measured once per round."""

    name: str
    run: Callable[[str], Awaitable[Any]]  # given the round ("group#n")


@dataclass(frozen=True)
class Group:
    """Measurements whose ratios are taken within each round: the members run A, B, C, A, B, C…"""

    name: str
    steps: list[Step]


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
        self.auth_metrics_url = ""  # the auth server's metrics listener, once it runs
        self.peer_cookie = ""  # the peer's signed-in browser

    # ---- setting up -------------------------------------------------------------------------

    def env(self, database_url: str, redis_url: str, prefix: str, issuer: str) -> dict[str, str]:
        """Tessera's environment: its defaults (issue 19: measured as shipped), the rate limits raised
        (their counting stays part of the cost)."""
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
            "TESSERA_RATE_PAR_PER_CLIENT": "1000000000",
            "TESSERA_RATE_PAR_PER_IP": "1000000000",
            "TESSERA_RATE_DEVICE_AUTHORIZATION_PER_CLIENT": "1000000000",
            "TESSERA_RATE_DEVICE_AUTHORIZATION_PER_IP": "1000000000",
            "TESSERA_RATE_REGISTER_PER_IP": "1000000000",
            # everything else as a user gets it: the access log on, at INFO, JSON lines to a file
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
        s.exchange_id, s.exchange_secret = self.client(
            env, "gateway service", "--grant-type", TOKEN_EXCHANGE, "--scope", "photos:read"
        )
        for identifier, name, service in (
            (GATEWAY_API, "gateway", s.exchange_id),
            (PHOTOS_API, "photos", None),
        ):
            extra = () if service is None else ("--service-client", service)
            self.cli(
                env,
                "resource",
                "create",
                "--identifier",
                identifier,
                "--name",
                name,
                "--scope",
                "photos:read",
                *extra,
            )
        s.device_id, _ = self.client(
            env, "living room tv", "--public", "--grant-type", DEVICE_CODE, "--scope", "photos:read"
        )
        s.registration_token = json.loads(self.cli(env, "registration-token", "create"))[
            "initial_access_token"
        ]
        s.username = f"bench-{uuid.uuid4().hex[:8]}"
        # the password scenarios' users, a few logins in flight each: one user's attempts in flight
        # are bounded (the lockout buckets), and 16 connections on one user would wait on them
        s.login_users = [f"{s.username}-{i}" for i in range(LOGIN_USERS)]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(
                pool.map(
                    lambda name: self.cli(
                        env, "user", "create", "--username", name, "--password-stdin", stdin=PASSWORD
                    ),
                    [s.username, *s.login_users],
                )
            )

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
        expected: tuple[int | str, ...] = (200,),
        connections: int | None = None,
        core: int | str | None = "load",
        round_: str = "",
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
        measured.add(result, processes.cpu_seconds(server.pid) - before, round_)
        print(
            f"  {name:<32} {result.flows_per_second:>9.0f} {unit:<11} p99 {result.p99_ms:6.1f} ms"
            f"  unexpected {result.unexpected(frozenset(expected))}",
            flush=True,
        )
        return result

    async def groups(self, groups: list[Group]) -> None:
        """Each group's members in turn, A, B, C, then again, ``runs`` times (issue 19: the
        machine's drift cancels out in ratios taken within a round)."""
        for group in groups:
            print(f"{group.name}: {', '.join(step.name for step in group.steps)}", flush=True)
            for round_ in range(self.options.runs):
                for step in group.steps:
                    await step.run(f"{group.name}#{round_ + 1}")

    def step(
        self,
        name: str,
        title: str,
        unit: str,
        server: Server | None,
        script: str,
        args: Args,
        *,
        expected: tuple[int | str, ...] = (200,),
        connections: int | None = None,
    ) -> list[Step]:
        """A wrk measurement as a group member; none when its server is not running (no peer)."""
        if server is None:
            return []
        running = server

        async def run(round_: str) -> None:
            made = args if isinstance(args, dict) else await args()
            await self.measure(
                name,
                title,
                unit,
                running,
                script,
                made,
                expected=expected,
                connections=connections,
                round_=round_,
            )

        return [Step(name, run)]

    def best(self, *names: str) -> float:
        """The highest rate measured so far of any of ``names`` (0 before any run)."""
        return max(
            (run["units_per_s"] for name in names if name in self.results for run in self.results[name].runs),
            default=0.0,
        )

    async def tokens(
        self,
        url: str,
        form: dict[str, str],
        auth: dict[str, str],
        count: int,
        *,
        proof: Callable[[], str] | None = None,
    ) -> list[str]:
        """``count`` token responses from the token endpoint, 16 at a time (each with a new DPoP
        proof from ``proof``, if given: the tokens are bound to its key)."""
        async with aiohttp.ClientSession() as session:
            semaphore = asyncio.Semaphore(16)

            async def one() -> dict[str, Any]:
                async with semaphore:
                    for _ in range(30):  # a busy password queue answers 503 with Retry-After
                        headers = auth if proof is None else {**auth, "DPoP": proof()}
                        async with session.post(
                            f"{url}/oauth2/token", data=form, headers=headers
                        ) as response:
                            body: dict[str, Any] = await response.json()
                            if response.status == 200:
                                return body
                            if response.status != 503:
                                break
                            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    raise RuntimeError(f"seeding a token failed: {response.status} {body}")

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
        ports = {
            name: free_port() for name in ("auth", "quiet", "resource", "uncached", "workers", "metrics")
        }
        auth_url = f"http://127.0.0.1:{ports['auth']}"
        self.auth_metrics_url = f"http://127.0.0.1:{ports['metrics']}"  # never on the public port
        env = self.env(database_url, redis_url, prefix, auth_url)
        self.seed_records(env)
        core = self.server_core
        print(
            f"servers on core {core}, wrk on core {self.load_core}; "
            f"{o.runs} round(s) of {o.seconds:g} s runs, {o.connections} connections",
            flush=True,
        )

        def tessera(*args: str) -> list[str]:
            return processes.pinned([*TESSERA, *args], core)

        auth = await self.start(
            "auth",
            auth_url,
            tessera("auth-server", "--port", str(ports["auth"]), "--metrics-port", str(ports["metrics"])),
            env,
            "/readyz",
        )
        # the production tuning the README documents beside a gateway that logs every request
        quiet_url = f"http://127.0.0.1:{ports['quiet']}"
        quiet = await self.start(
            "auth-access-log-off",
            quiet_url,
            tessera("auth-server", "--port", str(ports["quiet"])),
            {**env, "TESSERA_ISSUER": quiet_url, "TESSERA_ACCESS_LOG": "off"},
            "/readyz",
        )
        resource = await self.start(
            "resource",
            f"http://127.0.0.1:{ports['resource']}",
            tessera("resource-server"),
            {**env, "TESSERA_RESOURCE_PORT": str(ports["resource"])},
            "/readyz",
        )
        uncached = await self.start(
            "resource-uncached",
            f"http://127.0.0.1:{ports['uncached']}",
            tessera("resource-server"),
            {**env, "TESSERA_RESOURCE_PORT": str(ports["uncached"]), "TESSERA_TOKEN_CACHE_SIZE": "0"},
            "/readyz",
        )
        # the API's URL as clients call it: the htu of their DPoP proofs (its RFC 9728 identifier)
        api_url = f"http://localhost:{ports['resource']}/api/me"

        async def baseline(name: str, ready: str, *args: str) -> Server:
            port = free_port()
            command = processes.pinned(
                [sys.executable, "-m", "tests.load.baselines", name, str(port), *args], core
            )
            return await self.start(f"bare-{name}", f"http://127.0.0.1:{port}", command, env, ready)

        bare = await baseline("form-sign", "/oauth2/token")
        hello = await baseline("hello", "/api/hello")
        flow = await baseline("flow", "/oauth2/token")
        verify = await baseline("verify", "/api/me", auth_url)
        dpop_verify = await baseline("dpop-verify", "/api/me", auth_url, api_url)
        json_insert = await baseline("json-insert", "/oauth2/register", database_url)

        peer: Server | None = None
        if peer_command is not None:
            peer_port = free_port()
            peer_config = self.workdir / "peer.json"
            peer_config.write_text(json.dumps(self.peer_config()))
            peer = await self.start(
                PEER,
                f"http://127.0.0.1:{peer_port}",
                processes.pinned([*peer_command, str(peer_port), str(peer_config)], core),
                {**os.environ, "NODE_ENV": "production"},
                "/.well-known/openid-configuration",
            )

        partner = basic(s.partner_id, s.partner_secret)["Authorization"]
        cc_args = {
            "path": "/oauth2/token",
            "body": "grant_type=client_credentials&scope=warehouse:stats",
            "auth": partner,
        }

        # seeded state: signed-in browsers for the flows (sessions last hours), and access tokens,
        # made again before a run once half their lifetime old (TESSERA_ACCESS_TOKEN_TTL, 600 s)
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
        peer_flows = await self.peer_browsers(peer) if peer is not None else {}

        def user_tokens(name: str, **form: str) -> Callable[[], Awaitable[str]]:
            """A file of a user's access tokens (one per connection), made afresh when old."""

            async def make() -> str:
                tokens = await self.tokens(
                    auth_url,
                    {"grant_type": "password", "username": s.username, "password": PASSWORD, **form},
                    basic(s.login_id, s.login_secret),
                    max(8, o.connections),
                )
                return self.lines(name, tokens)

            return fresh(make)

        bearer_file = user_tokens("bearer.txt", scope="photos:read")
        userinfo_file = user_tokens("userinfo-bearer.txt", scope="openid profile")
        gateway_file = user_tokens("gateway-bearer.txt", scope="photos:read", resource=GATEWAY_API)

        async def make_partner_token() -> str:
            form = {"grant_type": "client_credentials"}
            return (await self.tokens(auth_url, form, {"Authorization": partner}, 1))[0]

        partner_token = fresh(make_partner_token)
        # DPoP (RFC 9449): a client's key, and access tokens bound to it
        dpop_key = DPoPKey("ES256")

        async def make_bound_tokens() -> list[str]:
            return await self.tokens(
                auth_url,
                {
                    "grant_type": "password",
                    "username": s.username,
                    "password": PASSWORD,
                    "scope": "photos:read",
                },
                basic(s.login_id, s.login_secret),
                8,
                proof=lambda: dpop_key.proof("POST", f"{auth_url}/oauth2/token"),
            )

        bound_tokens = fresh(make_bound_tokens)
        peer_userinfo = fresh(lambda: self.peer_userinfo_tokens(peer)) if peer is not None else None

        async def bearer(path: str, tokens: Callable[[], Awaitable[str]]) -> dict[str, str]:
            return {"path": path, "tokens": await tokens()}

        def flow_limit(alg: str, browser: dict[str, str]) -> dict[str, str]:
            """The same script against the bare flow handler, whose codes name the ID token's alg."""
            return {**browser, "authorize": f"{browser['authorize']}&bench_id_alg={alg}"}

        def proofs(url: str, *rates_of: str, method: str = "POST") -> Callable[[], Awaitable[dict[str, str]]]:
            """A file of fresh proofs for one run (each jti works once), made just before it: more
            than the fastest of ``rates_of`` sends in a run."""

            async def make() -> dict[str, str]:
                count = self.proof_count(*rates_of)
                made = await asyncio.to_thread(lambda: [dpop_key.proof(method, url) for _ in range(count)])
                return {"proofs": self.lines("proofs.txt", made)}

            return make

        def bound_pairs(url: str, *rates_of: str) -> Callable[[], Awaitable[dict[str, str]]]:
            async def make() -> dict[str, str]:
                count = self.proof_count(*rates_of)

                tokens = await bound_tokens()

                def pairs() -> list[str]:
                    made = []
                    for i in range(count):
                        token = tokens[i % len(tokens)]
                        made.append(f"{token} {dpop_key.proof('GET', url, access_token=token)}")
                    return made

                return {"path": "/api/me", "pairs": self.lines("pairs.txt", await asyncio.to_thread(pairs))}

            return make

        cc_dpop_args = {"path": "/oauth2/token", "body": cc_args["body"], "auth": partner}

        async def cc_dpop(url: str, *rates_of: str) -> dict[str, str]:
            return {**cc_dpop_args, **await proofs(f"{url}/oauth2/token", *rates_of)()}

        def par_args(browser: dict[str, str], auth: str) -> dict[str, str]:
            query = dict(pair.split("=", 1) for pair in browser["authorize"].split("?", 1)[1].split("&"))
            return {
                "push": browser["authorize"].split("?", 1)[1],
                "auth": auth,
                "client_id": query["client_id"],
                "cookie": browser["cookie"],
            }

        device_codes: dict[str, list[str]] = {}

        async def devices(server: Server, name: str) -> dict[str, str]:
            """Device codes no poll has touched for an interval: enough that a run never comes back
            to a code sooner (it would be answered slow_down), made once and reused in later rounds."""
            client_id = "bench-tv" if server is peer else s.device_id
            wanted = self.device_count(name)
            have = device_codes.setdefault(server.name, [])
            if len(have) < wanted:
                have += await self.device_authorizations(server.url, client_id, wanted - len(have))
            return {
                "path": "/oauth2/token",
                "codes": self.lines(f"device-{server.name}.txt", have),
                "client_id": client_id,
            }

        async def with_tokens(args: dict[str, str], tokens: Callable[[], Awaitable[str]]) -> dict[str, str]:
            return {**args, "tokens": await tokens()}

        async def introspect_one() -> dict[str, str]:
            return {"path": "/oauth2/introspect", "body": f"token={await partner_token()}", "auth": partner}

        registration_file = self.workdir / "registration.json"
        registration_file.write_text(json.dumps(REGISTRATION))
        registration_args = {
            "path": "/oauth2/register",
            "body_file": str(registration_file),
            "auth": f"Bearer {s.registration_token}",
        }
        exchange_args = {
            "path": "/oauth2/token",
            "field": "subject_token",
            "body": urlencode(
                {
                    "grant_type": TOKEN_EXCHANGE,
                    "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "resource": PHOTOS_API,
                }
            ),
            "auth": basic(s.exchange_id, s.exchange_secret)["Authorization"],
        }
        peer_browser = peer_flows.get

        groups = [
            Group(
                "client_credentials",
                [
                    *self.step(
                        "bare-form-sign",
                        "bare aiohttp: parse form, sign ES256 JWT",
                        "tokens/s",
                        bare,
                        "post_form.lua",
                        cc_args,
                    ),
                    *self.step(
                        "client_credentials",
                        "client_credentials, ES256 JWT, client_secret_basic",
                        "tokens/s",
                        auth,
                        "post_form.lua",
                        cc_args,
                    ),
                    *self.step(
                        "client_credentials_access_log_off",
                        "client_credentials, TESSERA_ACCESS_LOG=off (production tuning: the gateway logs)",
                        "tokens/s",
                        quiet,
                        "post_form.lua",
                        cc_args,
                    ),
                    *self.step(
                        PEER,
                        "oidc-provider: client_credentials, ES256 JWT",
                        "tokens/s",
                        peer,
                        "post_form.lua",
                        cc_args,
                    ),
                ],
            ),
            Group(
                "client_credentials_dpop",
                [
                    *self.step(
                        "bare-form-proof-sign",
                        "bare aiohttp: parse form, verify a DPoP proof, sign an ES256 JWT bound to its key",
                        "tokens/s",
                        bare,
                        "dpop_post.lua",
                        lambda: cc_dpop(bare.url, "bare-form-sign"),
                    ),
                    *self.step(
                        "client_credentials_dpop",
                        "client_credentials with a DPoP proof (RFC 9449): a token bound to the client's key",
                        "tokens/s",
                        auth,
                        "dpop_post.lua",
                        lambda: cc_dpop(auth_url, "bare-form-proof-sign", "client_credentials_dpop"),
                    ),
                    *self.step(
                        f"{PEER}:client_credentials_dpop",
                        "oidc-provider: client_credentials with a DPoP proof",
                        "tokens/s",
                        peer,
                        "dpop_post.lua",
                        lambda: cc_dpop(
                            peer.url if peer else "",
                            "bare-form-proof-sign",
                            f"{PEER}:client_credentials_dpop",
                        ),
                    ),
                ],
            ),
            Group(
                "token_endpoint",
                [
                    *self.step(
                        "bare-form-sign",
                        "bare aiohttp: parse form, sign ES256 JWT",
                        "tokens/s",
                        bare,
                        "post_form.lua",
                        cc_args,
                    ),
                    *self.step(
                        "refresh_rotation",
                        "refresh_token rotation (a Postgres write each)",
                        "rotations/s",
                        auth,
                        "refresh.lua",
                        lambda: self.refresh_args(auth_url),
                    ),
                    *self.step(
                        "token_exchange",
                        "token exchange (RFC 8693): a user's gateway token for a photo-API token, ES256",
                        "tokens/s",
                        auth,
                        "post_each.lua",
                        lambda: with_tokens(exchange_args, gateway_file),
                    ),
                    *self.step(
                        "introspection",
                        "introspection of one JWT access token, again and again (verified-token cache)",
                        "answers/s",
                        auth,
                        "post_form.lua",
                        introspect_one,
                    ),
                    *self.step(
                        "introspection_distinct",
                        "introspection of distinct tokens, more than the cache holds (every one verified)",
                        "answers/s",
                        auth,
                        "post_each.lua",
                        lambda: self.distinct_args(auth_url, partner),
                    ),
                ],
            ),
            Group(
                "browser_flows",
                [
                    *self.step(
                        "bare-flow",
                        "bare aiohttp: /authorize 302 + code, /token signs an ES256 JWT",
                        "flows/s",
                        flow,
                        "sso.lua",
                        flow_limit("none", sso),
                        expected=(200, 302),
                    ),
                    *self.step(
                        "sso_flow",
                        "SSO flow: /authorize (signed in, consented) -> code -> /token",
                        "flows/s",
                        auth,
                        "sso.lua",
                        sso,
                        expected=(200, 302),
                    ),
                    *(
                        member
                        for alg, browser in signed_in.items()
                        for member in (
                            *self.step(
                                f"bare-flow-{alg.lower()}",
                                f"bare aiohttp: /authorize 302, /token signs ES256 JWT + {alg} ID token",
                                "flows/s",
                                flow,
                                "sso.lua",
                                flow_limit(alg, browser),
                                expected=(200, 302),
                            ),
                            *self.step(
                                f"oidc_flow_{alg.lower()}",
                                f"OpenID Connect SSO flow: /authorize -> code -> /token, {alg} ID token",
                                "flows/s",
                                auth,
                                "sso.lua",
                                browser,
                                expected=(200, 302),
                            ),
                            *self.step(
                                f"{PEER}:oidc_flow_{alg.lower()}",
                                f"oidc-provider: OpenID Connect SSO flow with an {alg} ID token",
                                "flows/s",
                                peer if peer_browser(alg) else None,
                                "sso.lua",
                                peer_browser(alg) or {},
                                expected=(200, 303),
                            ),
                        )
                    ),
                ],
            ),
            Group(
                "par",
                [
                    *self.step(
                        "bare-par-flow",
                        "bare aiohttp: PAR 201 + request_uri, /authorize 302 + code",
                        "flows/s",
                        flow,
                        "par.lua",
                        par_args(sso, sso["auth"]),
                        expected=(201, 302),
                    ),
                    *self.step(
                        "par_flow",
                        "PAR (RFC 9126): push, then /authorize with the request_uri (signed in, consented)",
                        "flows/s",
                        auth,
                        "par.lua",
                        par_args(sso, sso["auth"]),
                        expected=(201, 302),
                    ),
                    *self.step(
                        f"{PEER}:par_flow",
                        "oidc-provider: PAR push, then /authorize with its request_uri",
                        "flows/s",
                        peer if peer_browser("par") else None,
                        "par.lua",
                        par_args(peer_browser("par") or sso, (peer_browser("par") or sso)["auth"]),
                        expected=(201, 303),
                    ),
                ],
            ),
            Group(
                "polled",
                [
                    *self.step(
                        "bare-hello",
                        "bare aiohttp: hello world",
                        "requests/s",
                        hello,
                        "get.lua",
                        {"path": "/api/hello"},
                    ),
                    *self.step(
                        "device_pending",
                        "device grant (RFC 8628): a poll answered authorization_pending",
                        "answers/s",
                        auth,
                        "device_poll.lua",
                        lambda: devices(auth, "device_pending"),
                        expected=("400-pending",),
                    ),
                    *self.step(
                        f"{PEER}:device_pending",
                        "oidc-provider: a device-grant poll answered authorization_pending",
                        "answers/s",
                        peer,
                        "device_poll.lua",
                        lambda: devices(peer, f"{PEER}:device_pending") if peer else devices(auth, ""),
                        expected=("400-pending",),
                    ),
                    *self.step(
                        "userinfo",
                        "OpenID Connect userinfo: GET /oauth2/userinfo (profile claims from PostgreSQL)",
                        "answers/s",
                        auth,
                        "bearer_get.lua",
                        lambda: bearer("/oauth2/userinfo", userinfo_file),
                    ),
                    *self.step(
                        f"{PEER}:userinfo",
                        "oidc-provider: GET userinfo (opaque token, in-memory store)",
                        "answers/s",
                        peer,
                        "bearer_get.lua",
                        lambda: bearer("/oauth2/userinfo", peer_userinfo or userinfo_file),
                    ),
                ],
            ),
            Group(
                "registration",
                [
                    *self.step(
                        "bare-json-insert",
                        "bare aiohttp: parse a JSON document, insert one row in PostgreSQL",
                        "registrations/s",
                        json_insert,
                        "post_json.lua",
                        registration_args,
                        expected=(201,),
                    ),
                    *self.step(
                        "registration",
                        "dynamic registration (RFC 7591) with an initial access token",
                        "registrations/s",
                        auth,
                        "post_json.lua",
                        registration_args,
                        expected=(201,),
                    ),
                    *self.step(
                        f"{PEER}:registration",
                        "oidc-provider: dynamic registration with an initial access token (in-memory store)",
                        "registrations/s",
                        peer,
                        "post_json.lua",
                        {**registration_args, "auth": "Bearer bench-initial-access-token"},
                        expected=(201,),
                    ),
                ],
            ),
            Group(
                "password",
                self.step(
                    "password_argon2id",
                    "password grant: one argon2id verify + token",
                    "logins/s",
                    auth,
                    "post_each.lua",
                    self.logins(),
                    connections=min(16, o.connections),
                ),
            ),
            Group(
                "resource_cached",
                [
                    *self.step(
                        "bare-hello",
                        "bare aiohttp: hello world",
                        "requests/s",
                        hello,
                        "get.lua",
                        {"path": "/api/hello"},
                    ),
                    *self.step(
                        "resource_cached",
                        "resource server GET /api/me, verified-token cache",
                        "requests/s",
                        resource,
                        "bearer_get.lua",
                        lambda: bearer("/api/me", bearer_file),
                    ),
                ],
            ),
            Group(
                "resource_uncached",
                [
                    *self.step(
                        "bare-verify",
                        "bare aiohttp: verify one ES256 access token",
                        "requests/s",
                        verify,
                        "bearer_get.lua",
                        lambda: bearer("/api/me", bearer_file),
                    ),
                    *self.step(
                        "resource_uncached",
                        "resource server GET /api/me, every token verified",
                        "requests/s",
                        uncached,
                        "bearer_get.lua",
                        lambda: bearer("/api/me", bearer_file),
                    ),
                ],
            ),
            Group(
                "resource_dpop",
                [
                    *self.step(
                        "bare-dpop-verify",
                        "bare aiohttp: verify one DPoP proof and one ES256 access token bound to its key",
                        "requests/s",
                        dpop_verify,
                        "dpop_get.lua",
                        bound_pairs(api_url, "bare-verify"),
                    ),
                    *self.step(
                        "resource_dpop",
                        "resource server GET /api/me with a DPoP-bound token and a proof (token cache on)",
                        "requests/s",
                        resource,
                        "dpop_get.lua",
                        bound_pairs(api_url, "bare-verify", "resource_dpop"),
                    ),
                ],
            ),
            Group(
                "login_storm",
                [Step("cc_during_login_storm", lambda round_: self.login_storm(auth, cc_args, s, round_))],
            ),
        ]
        print("measuring", flush=True)
        await self.groups(groups)

        await self.locust(env, auth_url, resource.url)
        await self.workers(env, ports["workers"], cc_args)
        self.extra["argon2id_verify_ms"] = self.argon2_verify_ms()
        await self.memory(auth, cc_args)
        return self.report()

    def logins(self) -> dict[str, str]:
        """Password grants (post_each.lua), each for the next of the login users in turn."""
        s = self.seed
        return {
            "path": "/oauth2/token",
            "body": urlencode({"grant_type": "password", "password": PASSWORD}),
            "tokens": self.lines("login-users.txt", s.login_users),
            "field": "username",
            "auth": basic(s.login_id, s.login_secret)["Authorization"],
        }

    def proof_count(self, *rates_of: str) -> int:
        """DPoP proofs for one run: a third more than the fastest of ``rates_of`` sent in one (wrk
        would come back to a spent one after that: a replay, answered 400/401, unexpected)."""
        rate = max(self.best(*rates_of), 1000.0)
        return int(rate * 1.35 * max(self.options.seconds, 1)) + 500

    def device_count(self, name: str) -> int:
        """Device codes enough that a run at the measured rate (or the hello-world limit's, before
        the first) comes back to one only after the polling interval."""
        rate = self.best(name) or 0.4 * self.best("bare-hello") or 5000.0
        return int(rate * 1.3 * min(max(self.options.seconds, 1), DEVICE_POLL_INTERVAL + 1)) + 200

    async def distinct_args(self, auth_url: str, partner: str) -> dict[str, str]:
        """Fresh client_credentials tokens, more than the verified-token cache holds (10,000), so a
        cycle through them never hits it (made again only when old: a new cycle never hits either)."""
        path = self.workdir / "distinct.txt"
        if not path.exists() or time.time() - path.stat().st_mtime > FRESH_FOR:
            count = 200 if self.options.quick else 12_000
            tokens = await self.tokens(
                auth_url, {"grant_type": "client_credentials"}, {"Authorization": partner}, count
            )
            self.lines(path.name, tokens)
        return {"path": "/oauth2/introspect", "tokens": str(path), "field": "token", "auth": partner}

    async def refresh_args(self, auth_url: str) -> dict[str, str]:
        """Fresh rotation chains for one run: twice as many as connections."""
        s = self.seed
        tokens = await self.tokens(
            auth_url,
            {"grant_type": "password", "username": s.username, "password": PASSWORD, "scope": "photos:read"},
            basic(s.ropc_id, s.ropc_secret),
            2 * self.options.connections,
        )
        return {
            "tokens": self.lines("refresh.txt", tokens),
            "auth": basic(s.ropc_id, s.ropc_secret)["Authorization"],
        }

    async def device_authorizations(self, url: str, client_id: str, count: int) -> list[str]:
        """``count`` new device codes (RFC 8628 §3.2) of a public client, 32 requests at a time."""
        async with aiohttp.ClientSession() as session:
            semaphore = asyncio.Semaphore(32)

            async def one() -> str:
                form = {"client_id": client_id, "scope": "photos:read"}
                async with (
                    semaphore,
                    session.post(f"{url}/oauth2/device_authorization", data=form) as response,
                ):
                    body: dict[str, Any] = await response.json()
                    if response.status != 200:
                        raise RuntimeError(f"a device authorization failed: {response.status} {body}")
                    return str(body["device_code"])

            started = time.monotonic()
            codes = await asyncio.gather(*(one() for _ in range(count)))
        print(f"  ({count} device codes from {url} in {time.monotonic() - started:.0f} s)", flush=True)
        return list(codes)

    def peer_config(self) -> dict[str, Any]:
        """oidc-provider's configuration (peer/server.mjs): the same clients as Tessera's, by role."""
        s = self.seed
        return {
            "partner": {"client_id": s.partner_id, "client_secret": s.partner_secret},
            "relying_parties": [
                {
                    "client_id": f"bench-rp-{alg.lower()}",
                    "client_secret": f"peer-secret-{alg}-{uuid.uuid4().hex}",
                    "alg": alg,
                }
                for alg in ("RS256", "ES256")
            ],
            "web": {"client_id": "bench-web", "client_secret": f"peer-secret-web-{uuid.uuid4().hex}"},
            "device": {"client_id": "bench-tv"},
            "redirect_uri": REDIRECT_URI,
            "initial_access_token": "bench-initial-access-token",
            "account": "bench-user",
        }

    async def peer_browsers(self, peer: Server) -> dict[str, dict[str, str]]:
        """The peer's signed-in browser for each relying party (by ID token alg) and for the web
        client (``par``): its session cookie, and how each asks for a code."""
        config = json.loads((self.workdir / "peer.json").read_text())
        browsers: dict[str, dict[str, str]] = {}
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=peer.url, cookie_jar=jar) as browser:
            clients = [(rp["alg"], rp, "openid profile photos:read") for rp in config["relying_parties"]]
            clients.append(("par", config["web"], "photos:read"))
            for name, client, scope in clients:
                params, pkce = self.peer_params(client["client_id"], scope)
                code = await self.peer_code(browser, params)
                assert code, f"oidc-provider gave no code to {name}"
                browsers[name] = {
                    "authorize": f"/oauth2/authorize?{urlencode(params)}",
                    "redirect_uri": quote(REDIRECT_URI, safe=""),
                    "verifier": pkce.verifier,
                    "auth": basic(client["client_id"], client["client_secret"])["Authorization"],
                }
            cookie = "; ".join(f"{morsel.key}={morsel.value}" for morsel in jar if morsel["path"] == "/")
            self.peer_cookie = cookie
            for each in browsers.values():
                each["cookie"] = cookie
        return browsers

    async def peer_userinfo_tokens(self, peer: Server) -> str:
        """A file of the peer's opaque access tokens for userinfo, from its code flow in the
        signed-in browser (the RS256 relying party's, scope ``openid profile``)."""
        config = json.loads((self.workdir / "peer.json").read_text())
        rp = config["relying_parties"][0]
        tokens = []
        cookie = {"Cookie": self.peer_cookie}
        async with aiohttp.ClientSession(base_url=peer.url, headers=cookie) as browser:
            for _ in range(max(8, self.options.connections)):
                params, pkce = self.peer_params(rp["client_id"], "openid profile")
                code = await self.peer_code(browser, params)
                form = {
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": pkce.verifier,
                }
                headers = basic(rp["client_id"], rp["client_secret"])
                async with browser.post("/oauth2/token", data=form, headers=headers) as answer:
                    body = await answer.json()
                    assert answer.status == 200, body
                    tokens.append(body["access_token"])
        return self.lines("peer-userinfo.txt", tokens)

    @staticmethod
    def peer_params(client_id: str, scope: str) -> tuple[dict[str, str], Pkce]:
        pkce = Pkce.new()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "state": "bench-state",
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }
        if "openid" in scope.split():
            params["nonce"] = "bench-nonce"
        return params, pkce

    @staticmethod
    async def peer_code(browser: aiohttp.ClientSession, params: dict[str, str]) -> str:
        """Follow the peer's redirects (its interaction signs in and consents) to the code."""
        location = f"/oauth2/authorize?{urlencode(params)}"
        for _ in range(10):
            async with browser.get(location, allow_redirects=False) as answer:
                if answer.status not in (302, 303):
                    raise RuntimeError(
                        f"oidc-provider answered {answer.status}: {(await answer.text())[:500]}"
                    )
                location = answer.headers["Location"]
            if location.startswith(REDIRECT_URI):
                code = dict(pair.split("=", 1) for pair in location.split("?", 1)[1].split("&")).get("code")
                if code is None:
                    raise RuntimeError(f"oidc-provider sent no code: {location}")
                return code
            location = location.removeprefix(str(browser._base_url).rstrip("/"))
        raise RuntimeError("oidc-provider redirected too often")

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

    async def login_storm(self, auth: Server, cc_args: dict[str, str], s: Seed, round_: str) -> None:
        """client_credentials latency while password logins (argon2id) keep the process busy,
        beside the same client_credentials load with no storm, in the same round."""
        storm = self.logins()
        await self.measure(
            "cc_8_connections",
            "client_credentials, 8 connections, no storm",
            "tokens/s",
            auth,
            "post_form.lua",
            cc_args,
            connections=8,
            round_=round_,
        )
        seconds = self.options.seconds
        logins, tokens = await asyncio.gather(
            wrk.run(auth.url, "post_each.lua", storm, seconds=seconds, connections=16, core=self.load_core),
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
        measured.add(tokens, None, round_)
        run = measured.runs[-1]
        run["storm_logins_per_s"] = round(logins.flows_per_second, 1)
        run["storm_login_p50_ms"], run["storm_login_p99_ms"] = logins.p50_ms, logins.p99_ms
        run["unexpected"] += logins.unexpected(frozenset({200})) + (1 if logins.flows == 0 else 0)
        print(
            f"  {'cc_during_login_storm':<32} {tokens.flows_per_second:>9.0f} tokens/s   "
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
        # what failed, grouped as the locustfile words it: a failure count is never left unexplained
        kinds: list[dict[str, Any]] = [
            {
                "request": f"{row['Method']} {row['Name']}",
                "error": row["Error"],
                "count": int(row["Occurrences"]),
            }
            for row in _csv_rows(csv_prefix.with_name("locust_failures.csv"))
        ]
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
            "failures_by_kind": kinds,
            "by_name": {
                name: {"requests": int(row["Request Count"]), "p99_ms": float(row["99%"])}
                for name, row in rows.items()
                if name != "Aggregated"
            },
        }
        self.locust_failures = failures
        busy = rows.get(BUSY_LOGINS)
        shed = "" if busy is None else f", {busy['Request Count']} sign-ins shed as busy and retried"
        print(
            f"  {'locust_mixed':<28} {float(total['Requests/s']):>9.0f} requests/s "
            f" p99 {float(total['99%']):6.1f} ms  failures {failures} ({users} users, {seconds} s){shed}",
            flush=True,
        )
        for kind in kinds:
            print(f"    {kind['count']} times {kind['request']}: {kind['error'][:200]}", flush=True)

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
        issued = await self.issued()
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
            before, issued = issued, await self.issued()
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

    async def issued(self) -> int:
        """The tokens the auth server has issued, from its metrics listener."""
        url = f"{self.auth_metrics_url}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
        return int(
            sum(
                float(m.group(1))
                for m in re.finditer(r"^tessera_tokens_issued_total\{[^}]*\} (\S+)$", text, re.M)
            )
        )

    # ---- reporting --------------------------------------------------------------------------

    def round_ratios(self, name: str, limit: str) -> list[float]:
        """``name`` over ``limit`` within each round: the two runs of a group's round, measured
        seconds apart; for two measured in different groups, their runs in order."""
        if name not in self.results or limit not in self.results:
            return []
        runs, limits = self.results[name].runs, self.results[limit].runs
        by_round = {run["round"]: run for run in limits if run.get("round")}
        paired = [(a, by_round[a["round"]]) for a in runs if a.get("round") in by_round]
        if not paired:
            paired = list(zip(runs, limits, strict=False))
        return [round(a["units_per_s"] / b["units_per_s"], 3) for a, b in paired if b["units_per_s"]]

    def ratio(self, name: str, limit: str) -> float | None:
        """The median of the per-round ratios."""
        ratios = sorted(self.round_ratios(name, limit))
        return ratios[(len(ratios) - 1) // 2] if ratios else None

    def ratio_summary(self, name: str, limit: str) -> dict[str, Any] | None:
        ratios = self.round_ratios(name, limit)
        if not ratios:
            return None
        return {
            "median": self.ratio(name, limit),
            "min": min(ratios),
            "max": max(ratios),
            "per_round": ratios,
        }

    def checks(self) -> list[dict[str, Any]]:
        """The issues' targets beside what was measured (reported, never a reason to fail the run):
        issue 19's ratios, taken within each round, and what is left of issue 6's."""
        r = self.results

        def units(name: str) -> float | None:
            return r[name].median["units_per_s"] if name in r else None

        def p99(name: str) -> float | None:
            return r[name].median["p99_ms"] if name in r else None

        verify_ms = self.extra.get("argon2id_verify_ms")
        memory = self.extra.get("memory", {})
        rows: list[tuple[int, str, float | None, str, float]] = [
            (
                19,
                "client_credentials / bare form+sign",
                self.ratio("client_credentials", "bare-form-sign"),
                ">=",
                0.7,
            ),
            (19, "client_credentials / oidc-provider", self.ratio("client_credentials", PEER), ">=", 1.2),
            (
                19,
                "OIDC flow, RS256 ID token / oidc-provider",
                self.ratio("oidc_flow_rs256", f"{PEER}:oidc_flow_rs256"),
                ">=",
                1.2,
            ),
            (
                19,
                "resource GET (cached) / hello world",
                self.ratio("resource_cached", "bare-hello"),
                ">=",
                0.6,
            ),
            (
                19,
                "resource GET, every token new / bare verify",
                self.ratio("resource_uncached", "bare-verify"),
                ">=",
                0.8,
            ),
            (
                19,
                "DPoP-bound resource GET / bare proof+token verify",
                self.ratio("resource_dpop", "bare-dpop-verify"),
                ">=",
                0.7,
            ),
            (
                19,
                "device polling, pending / hello world",
                self.ratio("device_pending", "bare-hello"),
                ">=",
                0.8,
            ),
            (19, "auth-server RSS MiB after the tokens issued", memory.get("rss_mib"), "<=", 100),
            (6, "client_credentials p99 ms", p99("client_credentials"), "<=", 25),
            (6, "refresh rotations/s", units("refresh_rotation"), ">=", 2000),
            (6, "SSO flows/s", units("sso_flow"), ">=", 1200),
            (
                6,
                "password logins/s / (1 / argon2id verify)",
                round(units("password_argon2id") * verify_ms / 1000, 3)
                if units("password_argon2id") and verify_ms
                else None,
                ">=",
                0.9,
            ),
            (6, "client_credentials p99 ms during a login storm", p99("cc_during_login_storm"), "<=", 50),
        ]
        out = []
        for issue, what, value, op, target in rows:
            met = None if value is None else (value >= target if op == ">=" else value <= target)
            out.append(
                {"issue": issue, "check": what, "measured": value, "target": f"{op} {target:g}", "met": met}
            )
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
            "ratios": {f"{name} / {limit}": self.ratio_summary(name, limit) for name, limit in RATIOS},
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
        f"{'scenario':<36} {'median':>10} {'unit':<15} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'unexpected':>10} {'cpu us':>8}",
        "-" * 101,
    ]
    for name, s in report["scenarios"].items():
        m = s["median"]
        cpu = m["server_cpu_us_per_unit"]
        lines.append(
            f"{name:<36} {m['units_per_s']:>10.0f} {s['unit']:<15} {m['p50_ms']:>7.2f} {m['p99_ms']:>7.2f}"
            f" {s['unexpected_responses']:>10} {cpu if cpu is not None else '-':>8}"
        )
    lines.append("")
    for name, value in report["ratios"].items():
        if value is not None:
            rounds = " ".join(f"{r:.3f}" for r in value["per_round"])
            lines.append(
                f"ratio {name:<62} {value['median']:.3f}  ({value['min']:.3f}-{value['max']:.3f};"
                f" rounds: {rounds})"
            )
    for name, value in report["extra"].items():
        lines.append(f"{name}: {value}")
    lines.append("")
    lines.append(f"{'target':<58} {'measured':>10} {'target':>10}  met")
    for check in report["checks"]:
        met = {True: "yes", False: "NO", None: "-"}[check["met"]]
        measured = "-" if check["measured"] is None else f"{check['measured']:g}"
        what = f"{check['check']} (issue {check['issue']})"
        lines.append(f"{what:<58} {measured:>10} {check['target']:>10}  {met}")
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
        for written in chart.write(report, options.output):
            print(f"chart written to {written}")
    if report["unexpected_responses"]:
        print(f"\nFAILED: {report['unexpected_responses']} unexpected responses (see 'unexpected' above)")
        return 1
    return 0
