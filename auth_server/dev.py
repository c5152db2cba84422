"""``tessera dev``: the whole scenario on one machine, in one command.

Runs migrations, seeds the demo (the user ``xiaomei`` with her profile and a few photos, the Photo
Printer client, an OpenID Connect relying party, and a partner client), then starts the
authorization server, the Photo Warehouse and the Photo Printer as three processes. With no URLs
configured, PostgreSQL and Redis are real embedded servers keeping their data in one folder per
user (``TESSERA_DEV_DIR``, by default ``$XDG_DATA_HOME/tessera`` or ``~/.local/share/tessera``; see
:mod:`shared.embedded`).

Before it starts anything it takes a lock in that folder (a second ``tessera dev`` says where the
first runs and leaves it alone) and checks that every port is free. A server counts as started
when *its own* process listens on the port and answers. Ctrl-C (or SIGTERM) at any moment stops
everything within seconds; the children stop even when ``tessera dev`` is killed outright (on
Linux, ``PR_SET_PDEATHSIG``). ``--reset`` deletes the data folder first.

This module is the one place that imports both servers (the import-linter contract in
``pyproject.toml`` names exactly its imports of ``resource_server`` as the exception): the demo
migrates and seeds both in one process before it starts each server as its own process. Nothing
in ``auth_server`` imports it; the ``tessera`` command finds its :data:`COMMANDS` through the
``tessera.commands`` entry points, like every server's commands.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from auth_server.clients import Client
from auth_server.commands import auth_settings, migrate_auth, open_registry
from auth_server.crypto import hash_password
from auth_server.registration import ClientMetadata, register
from auth_server.registry import Registry
from auth_server.settings import Settings
from resource_server.commands import migrate_resource, resource_settings
from resource_server.demo import seed_photos
from resource_server.settings import ResourceSettings
from shared import embedded
from shared.cli import CommandError, Commands, Subcommands

DEMO_USER = "xiaomei"
DEMO_PASSWORD = "photos-at-site-a"  # noqa: S105 - a published demo credential, development only
AUTH_PORT, WAREHOUSE_PORT, PRINTER_PORT = 8000, 8001, 9000
LOCK_FILE = "dev.lock"


@dataclass(frozen=True)
class Demo:
    printer_id: str
    printer_secret: str
    partner_id: str
    partner_secret: str


def printer_origin(printer_port: int) -> str:
    return f"http://localhost:{printer_port}"


def printer_redirect(printer_port: int) -> str:
    return f"{printer_origin(printer_port)}/callback"


def printer_metadata(printer_port: int) -> ClientMetadata:
    """The Photo Printer: a confidential client of the code flow, signing in with OpenID Connect
    (RP-Initiated Logout back to its home page, Back-Channel Logout to sign its users out)."""
    origin = printer_origin(printer_port)
    return ClientMetadata(
        client_name="Photo Printer",
        redirect_uris=[printer_redirect(printer_port)],
        grant_types=["authorization_code", "refresh_token"],
        scope=["photos:read", "openid", "profile", "email", "offline_access"],
        post_logout_redirect_uris=[f"{origin}/"],
        backchannel_logout_uri=f"{origin}/backchannel-logout",
        backchannel_logout_session_required=True,
    )


PARTNER = ClientMetadata(
    client_name="Print partner (B2B)",
    redirect_uris=[],
    grant_types=["client_credentials"],
    scope=["warehouse:stats"],
)


def avatar(text: str, colour: str) -> str:
    """A round avatar with ``text`` on it (an SVG image as a ``data:`` URL), for the demo profile."""
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
        f'<circle cx="48" cy="48" r="48" fill="{colour}"/>'
        '<text x="48" y="63" font-size="44" text-anchor="middle" fill="#fff"'
        f' font-family="sans-serif">{escape(text)}</text></svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


# xiaomei's standard claims (OpenID Connect Core §5.1), which the Photo Printer greets her with
DEMO_PROFILE = {
    "name": "Xiaomei Wang",
    "nickname": "小美",
    "email": "xiaomei@example.com",
    "email_verified": True,
    "picture": avatar("美", "#e8618c"),
    "locale": "zh-CN",
    "zoneinfo": "Asia/Shanghai",
}


def _is_current(client: Client | None, wanted: ClientMetadata) -> bool:
    """Whether a saved demo client is still registered as the demo wants it (else it is replaced)."""
    return (
        client is not None
        and client.redirect_uris == tuple(wanted.redirect_uris)
        and set(client.scope) == set(wanted.scope)
        and client.post_logout_redirect_uris == tuple(wanted.post_logout_redirect_uris)
        and client.backchannel_logout_uri == wanted.backchannel_logout_uri
        and client.backchannel_logout_session_required == wanted.backchannel_logout_session_required
    )


async def seed(auth: Settings, registry: Registry, printer_port: int) -> tuple[Demo, str]:
    """Create the demo user and clients, once; later runs find them (credentials kept in the data
    folder), and replace demo clients registered differently by an earlier version. Returns the
    clients and the user's subject."""
    user = await registry.users.by_username(DEMO_USER)
    if user is None:
        user = await registry.users.create(DEMO_USER, await asyncio.to_thread(hash_password, DEMO_PASSWORD))
    profile = await registry.users.profile(user.user_id)
    if profile is not None and profile.email is None and profile.nickname is None:
        await registry.users.set_profile(user.user_id, DEMO_PROFILE)
    wanted = printer_metadata(printer_port)
    saved = auth.dev_data_dir / "demo-clients.json"
    if saved.exists():
        demo = Demo(**json.loads(saved.read_text()))
        printer = await registry.clients.get(demo.printer_id)
        partner = await registry.clients.get(demo.partner_id)
        if _is_current(printer, wanted) and _is_current(partner, PARTNER):
            return demo, user.subject
        for stale in (printer, partner):
            if stale is not None:
                await registry.clients.delete(stale.client_id)
    printer, printer_secret, _ = await register(registry, wanted)
    partner, partner_secret, _ = await register(registry, PARTNER)
    assert printer_secret and partner_secret
    demo = Demo(printer.client_id, printer_secret, partner.client_id, partner_secret)
    saved.parent.mkdir(parents=True, exist_ok=True)
    # the demo secrets: readable by their owner only, from the first byte
    descriptor = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(json.dumps(demo.__dict__))
    return demo, user.subject


async def prepare(auth: Settings, resource: ResourceSettings, printer_port: int) -> Demo:
    """Both schemas migrated, the demo user and clients registered, her sample photos stored."""
    assert auth.database_url is not None and resource.database_url is not None
    await migrate_auth(auth.database_url)
    await migrate_resource(resource.database_url)
    async with open_registry(auth) as registry:
        demo, owner = await seed(auth, registry, printer_port)
    await seed_photos(resource.database_url, owner)
    return demo


def _wait_until_up(url: str, port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Until ``process`` itself listens on ``port`` and ``url`` answers: another server on the port
    never counts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"it exited with code {process.returncode}")
        if _listens(process.pid, port):
            try:
                with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - a fixed local http URL
                    return
            except OSError:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on TCP ``port`` (Linux's /proc; elsewhere
    the port check before the start stands in for it)."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return True
    inodes = set()
    for table in tables:
        with contextlib.suppress(OSError):
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    return True
    return False


def _port_busy(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            return error.errno in (errno.EADDRINUSE, errno.EACCES)
        return False


def check_ports(ports: dict[str, tuple[int, str]]) -> None:
    """Each (port, option) free, or one line naming the busy ones and the options that move them."""
    busy = [
        f"port {port} ({name}) is in use: choose another with {option}"
        for name, (port, option) in ports.items()
        if _port_busy(port)
    ]
    if busy:
        raise CommandError("; ".join(busy))


def run(
    auth: Settings,
    resource: ResourceSettings,
    *,
    warehouse_port: int = WAREHOUSE_PORT,
    printer_port: int = PRINTER_PORT,
) -> int:
    """Serve the demo until Ctrl-C or SIGTERM; the auth server listens on the issuer's port."""
    parts = urlsplit(auth.issuer)
    auth_port = parts.port or (443 if parts.scheme == "https" else 80)
    check_ports(
        {
            "auth server": (auth_port, "--port"),
            "Photo Warehouse": (warehouse_port, "--warehouse-port"),
            "Photo Printer": (printer_port, "--printer-port"),
        }
    )
    demo = asyncio.run(prepare(auth, resource, printer_port))
    assert auth.database_url is not None and auth.redis_url is not None and resource.database_url is not None
    env = {
        **os.environ,
        "TESSERA_ISSUER": auth.issuer,
        "TESSERA_DATABASE_URL": auth.database_url,
        "TESSERA_REDIS_URL": auth.redis_url,
        "TESSERA_RESOURCE_DATABASE_URL": resource.database_url,
        "PRINTER_ISSUER": auth.issuer,
        "PRINTER_CLIENT_ID": demo.printer_id,
        "PRINTER_CLIENT_SECRET": demo.printer_secret,
        "PRINTER_REDIRECT_URI": printer_redirect(printer_port),
        "PRINTER_API_BASE": f"http://localhost:{warehouse_port}",
        "PRINTER_PORT": str(printer_port),
    }
    env.setdefault("TESSERA_SITE_NAME", "Photo Warehouse")  # the demo's provider, on its pages
    # native apps, CLIs and agents register themselves in development (RFC 7591, RFC 8252)
    env.setdefault("TESSERA_REGISTRATION", "open-native")
    cli = [sys.executable, "-m", "auth_server.cli"]
    commands = {
        "auth server": (
            [*cli, "auth-server", "--port", str(auth_port), "--workers", "1"],
            auth_port,
            f"{auth.issuer}/.well-known/oauth-authorization-server",
        ),
        "photo warehouse": (
            [*cli, "resource-server", "--port", str(warehouse_port), "--workers", "1"],
            warehouse_port,
            f"http://localhost:{warehouse_port}/healthz",
        ),
        "photo printer": (
            [sys.executable, "-m", "examples.photo_printer"],
            printer_port,
            f"http://localhost:{printer_port}/",
        ),
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, (command, port, ready_url) in commands.items():
            processes[name] = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
                command,
                env=env,
                cwd=Path.cwd(),
                preexec_fn=embedded.die_with_parent,  # no threads run here
            )
            try:
                _wait_until_up(ready_url, port, processes[name])
            except RuntimeError as error:
                print(f"tessera dev: the {name} did not start: {error}", file=sys.stderr)
                return 1
        banner = BANNER.format(
            issuer=auth.issuer,
            demo=demo,
            user=DEMO_USER,
            password=DEMO_PASSWORD,
            warehouse=warehouse_port,
            printer=printer_port,
        )
        print(banner, flush=True)
        try:
            while True:  # until Ctrl-C or SIGTERM (KeyboardInterrupt, see cmd_dev): a normal end
                for name, process in processes.items():
                    if process.poll() is not None:
                        print(
                            f"tessera dev: the {name} exited ({process.returncode}); stopping",
                            file=sys.stderr,
                        )
                        return 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not cut the clean-up short
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # each drains in-flight requests, then exits
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def cmd_dev(args: argparse.Namespace) -> None:
    # Ctrl-C and SIGTERM both end in KeyboardInterrupt, wherever start-up is (explicitly: a process
    # started in the background may inherit an ignored SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    code = 130
    try:
        if args.port is not None:
            # this process's settings and every child's read the issuer the option chose
            os.environ.update({"TESSERA_ISSUER": f"http://localhost:{args.port}"})
        configured = Settings.from_env()
        with _instance_lock(configured.dev_data_dir, configured.issuer):
            if args.reset:
                _reset(configured.dev_data_dir)
            code = run(
                auth_settings(),
                resource_settings(),
                warehouse_port=args.warehouse_port,
                printer_port=args.printer_port,
            )
    except KeyboardInterrupt:
        print("tessera dev: interrupted", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # the embedded databases this command started stop too (their data stays)
        embedded.stop()
    print("tessera dev: stopped", file=sys.stderr, flush=True)
    raise SystemExit(code)


@contextlib.contextmanager
def _instance_lock(data_dir: Path, issuer: str) -> Iterator[None]:
    """One ``tessera dev`` per data folder; the kernel drops the lock when its holder dies."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "(unknown)"
            raise CommandError(
                f"tessera dev is already running at {holder} with the data folder {data_dir};"
                " stop it first (Ctrl-C there), or give this one another TESSERA_DEV_DIR"
            ) from None
        _write_holder(lock, f"{issuer} (pid {os.getpid()})")
        yield


def _write_holder(lock: IO[str], text: str) -> None:
    lock.seek(0)
    lock.truncate()
    lock.write(text)
    lock.flush()


def _reset(data_dir: Path) -> None:
    """``--reset``: the embedded databases' data and the demo's credentials go; the lock stays."""
    for name in ("postgres", "postgres.partial", "redis", "demo-clients.json"):
        path = data_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    print(f"tessera dev: reset {data_dir}", file=sys.stderr)


def add_subcommands(sub: Subcommands) -> None:
    dev = sub.add_parser(
        "dev", help="the whole demo: auth server, Photo Warehouse and Photo Printer, with embedded databases"
    )
    dev.add_argument(
        "--port", type=int, help=f"the auth server's port ({AUTH_PORT}); the issuer is http://localhost:PORT"
    )
    dev.add_argument("--warehouse-port", type=int, default=WAREHOUSE_PORT, help="the Photo Warehouse's port")
    dev.add_argument("--printer-port", type=int, default=PRINTER_PORT, help="the Photo Printer's port")
    dev.add_argument(
        "--reset", action="store_true", help="delete the development data (databases, demo clients) first"
    )
    dev.set_defaults(run=cmd_dev)


COMMANDS = Commands("dev", add_subcommands)


BANNER = """
  Tessera is running: the whole Photo Warehouse scenario.

    Photo Printer (site B, the third party)   http://localhost:{printer}/   <- start here
    Tessera authorization server              {issuer}/.well-known/oauth-authorization-server
    Photo Warehouse API (site A)              http://localhost:{warehouse}/api/photos

  Sign in as  {user}  /  {password}
  Partner client (client_credentials, scope warehouse:stats):
    curl -u {demo.partner_id}:{demo.partner_secret} {issuer}/oauth2/token -d grant_type=client_credentials

  Press Ctrl-C to stop.
"""
