"""``tessera dev``: the whole scenario on one machine, in one command.

Runs migrations, seeds the demo (the user ``xiaomei`` with a few photos, the Photo Printer client
and a partner client), then starts the authorization server, the Photo Warehouse and the Photo
Printer as three processes. With no URLs configured, PostgreSQL and Redis are real embedded
servers keeping their data in ``.tessera/`` (see :mod:`shared.embedded`). Ctrl-C stops everything.

This module is the one place that imports both servers (the import-linter contract in
``pyproject.toml`` names exactly its imports of ``resource_server`` as the exception): the demo
migrates and seeds both in one process before it starts each server as its own process. Nothing
in ``auth_server`` imports it; the ``tessera`` command finds its :data:`COMMANDS` through the
``tessera.commands`` entry points, like every server's commands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from auth_server.commands import auth_settings, migrate_auth, open_registry
from auth_server.crypto import hash_password
from auth_server.registration import ClientMetadata, register
from auth_server.registry import Registry
from auth_server.settings import Settings
from resource_server.commands import migrate_resource, resource_settings
from resource_server.demo import seed_photos
from resource_server.settings import ResourceSettings
from shared import embedded
from shared.cli import Commands, Subcommands

DEMO_USER = "xiaomei"
DEMO_PASSWORD = "photos-at-site-a"  # noqa: S105 - a published demo credential, development only
WAREHOUSE_PORT, PRINTER_PORT = 8001, 9000


@dataclass(frozen=True)
class Demo:
    printer_id: str
    printer_secret: str
    partner_id: str
    partner_secret: str


def printer_redirect(printer_port: int) -> str:
    return f"http://localhost:{printer_port}/callback"


async def seed(auth: Settings, registry: Registry, printer_port: int) -> tuple[Demo, str]:
    """Create the demo user and clients, once; later runs find them (credentials kept in the data
    folder). Returns the clients and the user's subject."""
    user = await registry.users.by_username(DEMO_USER)
    if user is None:
        user = await registry.users.create(DEMO_USER, await asyncio.to_thread(hash_password, DEMO_PASSWORD))
    saved = auth.dev_data_dir / "demo-clients.json"
    if saved.exists():
        demo = Demo(**json.loads(saved.read_text()))
        printer = await registry.clients.get(demo.printer_id)
        current = printer is not None and printer_redirect(printer_port) in printer.redirect_uris
        if current and await registry.clients.get(demo.partner_id):
            return demo, user.subject
    printer, printer_secret, _ = await register(
        registry,
        ClientMetadata(
            client_name="Photo Printer",
            redirect_uris=[printer_redirect(printer_port)],
            grant_types=["authorization_code", "refresh_token"],
            scope=["photos:read"],
        ),
    )
    partner, partner_secret, _ = await register(
        registry,
        ClientMetadata(
            client_name="Print partner (B2B)",
            redirect_uris=[],
            grant_types=["client_credentials"],
            scope=["warehouse:stats"],
        ),
    )
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


def _wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} did not start (exit code {process.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - a fixed local http URL
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


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
    cli = [sys.executable, "-m", "auth_server.cli"]
    commands = {
        "auth server": (
            [*cli, "auth-server", "--port", str(auth_port)],
            f"{auth.issuer}/.well-known/oauth-authorization-server",
        ),
        "photo warehouse": (
            [*cli, "resource-server", "--port", str(warehouse_port)],
            f"http://localhost:{warehouse_port}/healthz",
        ),
        "photo printer": (
            [sys.executable, "-m", "examples.photo_printer"],
            f"http://localhost:{printer_port}/",
        ),
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    # explicit handlers: a process started in the background may inherit an ignored SIGINT
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for name, (command, ready_url) in commands.items():
            processes[name] = subprocess.Popen(command, env=env, cwd=Path.cwd())  # noqa: S603
            try:
                _wait_until_up(ready_url, processes[name])
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
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"tessera dev: the {name} exited ({process.returncode}); stopping", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # each drains in-flight requests, then exits
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def cmd_dev(args: argparse.Namespace) -> None:
    configured = Settings.from_env()
    embedded_in_use = configured.database_url is None or configured.redis_url is None
    try:
        code = run(
            auth_settings(),
            resource_settings(),
            warehouse_port=args.warehouse_port,
            printer_port=args.printer_port,
        )
    finally:
        if embedded_in_use:  # Ctrl-C stops everything, the embedded databases too (their data stays)
            embedded.stop(configured.dev_data_dir)
    raise SystemExit(code)


def add_subcommands(sub: Subcommands) -> None:
    dev = sub.add_parser(
        "dev", help="the whole demo: auth server, Photo Warehouse and Photo Printer, with embedded databases"
    )
    dev.add_argument("--warehouse-port", type=int, default=WAREHOUSE_PORT)
    dev.add_argument("--printer-port", type=int, default=PRINTER_PORT)
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
