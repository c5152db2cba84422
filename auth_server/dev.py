"""``tessera dev``: the whole scenario on one machine, in one command.

Runs migrations, seeds the demo (the user ``xiaomei`` with her profile and a few photos, the Photo
Printer client, an OpenID Connect relying party, a partner client, the two APIs as resources (RFC
8707) and the MCP server's own client), then starts the authorization server, the Photo Warehouse,
the Photo Printer and, with the ``mcp`` extra installed, the warehouse's MCP server for AI agents,
each as its own process. With no URLs
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
import importlib.util
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
from auth_server.grants.device_code import DEVICE_CODE
from auth_server.grants.token_exchange import GRANT_TYPE as TOKEN_EXCHANGE
from auth_server.registration import ClientMetadata, register
from auth_server.registry import Registry
from auth_server.settings import Settings
from resource_server.commands import migrate_resource, resource_settings
from resource_server.demo import seed_photos
from resource_server.routes import SCOPES as WAREHOUSE_SCOPES
from resource_server.settings import MCP_PATH, MCP_PORT, MCP_SCOPES, ResourceSettings
from shared import embedded
from shared.cli import CommandError, Commands, Subcommands, run_async

DEMO_USER = "xiaomei"
DEMO_PASSWORD = "photos-at-site-a"  # noqa: S105 - a published demo credential, development only
AUTH_PORT, WAREHOUSE_PORT, PRINTER_PORT = 8000, 8001, 9000
MAIL_PORT, SMTP_PORT = 8025, 1025  # the mail catcher (issue 18): its page, and its SMTP server
LOCK_FILE = "dev.lock"
# the scopes an agent may register itself for (open-native), so that it can use the MCP server
OPEN_SCOPES = "openid profile offline_access " + " ".join(MCP_SCOPES)


@dataclass(frozen=True)
class Ports:
    """Where each server of the demo listens."""

    auth: int = AUTH_PORT
    warehouse: int = WAREHOUSE_PORT
    printer: int = PRINTER_PORT
    mcp: int = MCP_PORT

    @property
    def warehouse_url(self) -> str:
        """The Photo Warehouse's URL: its resource identifier (RFC 8707, RFC 9728)."""
        return f"http://localhost:{self.warehouse}"

    @property
    def mcp_url(self) -> str:
        """The MCP server's URL: its resource identifier, and the URL agents connect to."""
        return f"http://localhost:{self.mcp}{MCP_PATH}"


@dataclass(frozen=True)
class Demo:
    printer_id: str
    printer_secret: str
    partner_id: str
    partner_secret: str
    mcp_id: str
    mcp_secret: str
    device_id: str = ""  # a public client: no secret
    device_secret: str = ""


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

# the MCP server's own client: it exchanges an agent's token for one to the warehouse (RFC 8693)
MCP_SERVER = ClientMetadata(
    client_name="Photo Warehouse MCP server",
    redirect_uris=[],
    grant_types=[TOKEN_EXCHANGE],
    scope=list(MCP_SCOPES),
)

# a command-line app signing in with the device grant (RFC 8628): python -m examples.device_login
DEVICE_APP = ClientMetadata(
    client_name="Command line (device sign-in)",
    redirect_uris=[],
    grant_types=[DEVICE_CODE, "refresh_token"],
    scope=["openid", "profile", "offline_access", "photos:read"],
    token_endpoint_auth_method="none",  # noqa: S106 - a method name, not a secret
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
        and set(client.grant_types) == set(wanted.grant_types)
        and set(client.scope) == set(wanted.scope)
        and client.post_logout_redirect_uris == tuple(wanted.post_logout_redirect_uris)
        and client.backchannel_logout_uri == wanted.backchannel_logout_uri
        and client.backchannel_logout_session_required == wanted.backchannel_logout_session_required
    )


async def seed(
    auth: Settings,
    registry: Registry,
    printer_port: int = PRINTER_PORT,
    *,
    warehouse_port: int = WAREHOUSE_PORT,
    mcp_port: int = MCP_PORT,
) -> tuple[Demo, str]:
    """Create the demo user, clients and resources, once; later runs find them (credentials kept in
    the data folder), and replace demo clients or resources registered differently by an earlier
    version. Returns the clients and the user's subject."""
    ports = Ports(warehouse=warehouse_port, printer=printer_port, mcp=mcp_port)
    user = await registry.users.by_username(DEMO_USER)
    if user is None:
        user = await registry.users.create(DEMO_USER, await asyncio.to_thread(hash_password, DEMO_PASSWORD))
    profile = await registry.users.profile(user.user_id)
    if profile is not None and profile.email is None and profile.nickname is None:
        await registry.users.set_profile(user.user_id, DEMO_PROFILE)
    demo = await _seed_clients(auth, registry, ports)
    await _seed_resources(registry, ports, demo)
    return demo, user.subject


async def _seed_clients(auth: Settings, registry: Registry, ports: Ports) -> Demo:
    wanted = {
        "printer": printer_metadata(ports.printer),
        "partner": PARTNER,
        "mcp": MCP_SERVER,
        "device": DEVICE_APP,
    }
    saved = auth.dev_data_dir / "demo-clients.json"
    if saved.exists():
        ids = json.loads(saved.read_text())
        found: dict[str, Client | None] = {}
        for name in wanted:
            client_id = ids.get(f"{name}_id")
            found[name] = await registry.clients.get(client_id) if isinstance(client_id, str) else None
        if all(_is_current(found[name], metadata) for name, metadata in wanted.items()):
            return Demo(**ids)
        for stale in found.values():  # an earlier version's clients, or missing ones: all anew
            if stale is not None:
                await registry.clients.delete(stale.client_id)
    registered = {name: await register(registry, metadata) for name, metadata in wanted.items()}
    credentials: dict[str, str] = {}
    for name, (client, secret, _) in registered.items():
        assert secret or client.is_public
        credentials.update({f"{name}_id": client.client_id, f"{name}_secret": secret or ""})
    demo = Demo(**credentials)
    saved.parent.mkdir(parents=True, exist_ok=True)
    # the demo secrets: readable by their owner only, from the first byte
    descriptor = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(json.dumps(demo.__dict__))
    return demo


async def _seed_resources(registry: Registry, ports: Ports, demo: Demo) -> None:
    """The two APIs tokens are issued for (RFC 8707): the Photo Warehouse, and its MCP server, whose
    own client may exchange the tokens agents call it with for tokens to the warehouse (RFC 8693)."""
    wanted = (
        (ports.warehouse_url, "Photo Warehouse API", tuple(WAREHOUSE_SCOPES), None),
        (ports.mcp_url, "Photo Warehouse for AI agents (MCP)", MCP_SCOPES, demo.mcp_id),
    )
    for identifier, name, scopes, service_client in wanted:
        found = await registry.resources.get(identifier)
        if (
            found is not None
            and found.name == name
            and set(found.scopes) == set(scopes)
            and found.service_client_id == service_client
        ):
            continue
        if found is not None:
            await registry.resources.delete(identifier)
        await registry.resources.create(identifier, name, scopes, service_client_id=service_client)


async def prepare(
    auth: Settings,
    resource: ResourceSettings,
    printer_port: int = PRINTER_PORT,
    *,
    warehouse_port: int = WAREHOUSE_PORT,
    mcp_port: int = MCP_PORT,
) -> Demo:
    """Both schemas migrated, the demo user, clients and resources registered, her sample photos
    stored."""
    assert auth.database_url is not None and resource.database_url is not None
    await migrate_auth(auth.database_url)
    await migrate_resource(resource.database_url)
    async with open_registry(auth) as registry:
        demo, owner = await seed(
            auth, registry, printer_port, warehouse_port=warehouse_port, mcp_port=mcp_port
        )
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


def _ports(issuer: str, warehouse_port: int, printer_port: int, mcp_port: int) -> Ports:
    parts = urlsplit(issuer)
    auth_port = parts.port or (443 if parts.scheme == "https" else 80)
    return Ports(auth=auth_port, warehouse=warehouse_port, printer=printer_port, mcp=mcp_port)


def demo_ports(issuer: str, args: argparse.Namespace, admin_port: int) -> dict[str, tuple[int, str]]:
    """Every port ``tessera dev`` will listen on, with the option that moves it (for :func:`check_ports`)."""
    ports = _ports(issuer, args.warehouse_port, args.printer_port, args.mcp_port)
    return {
        "auth server": (ports.auth, "--port"),
        "Photo Warehouse": (ports.warehouse, "--warehouse-port"),
        "Photo Printer": (ports.printer, "--printer-port"),
        **({"MCP server": (ports.mcp, "--mcp-port")} if mcp_installed() else {}),
        **({"admin API": (admin_port, "--admin-port")} if admin_port else {}),
        **(
            {
                "mail catcher's page": (getattr(args, "mail_port", MAIL_PORT), "--mail-port"),
                "mail catcher's SMTP server": (getattr(args, "smtp_port", SMTP_PORT), "--smtp-port"),
            }
            if mail_catcher_installed()
            else {}
        ),
    }


def mcp_installed() -> bool:
    """Whether the ``mcp`` extra is installed (``tessera dev`` starts the MCP server only then)."""
    return importlib.util.find_spec("mcp") is not None


def mail_catcher_installed() -> bool:
    """Whether aiosmtpd (the ``embedded`` extra) is installed: ``tessera dev`` then runs a local
    SMTP server that catches the demo's mail and shows it (:mod:`auth_server.mail.catcher`), and
    turns sign-up on."""
    return importlib.util.find_spec("aiosmtpd") is not None


def run(
    auth: Settings,
    resource: ResourceSettings,
    *,
    warehouse_port: int = WAREHOUSE_PORT,
    printer_port: int = PRINTER_PORT,
    mcp_port: int = MCP_PORT,
    admin_port: int = 0,
    mail_port: int = MAIL_PORT,
    smtp_port: int = SMTP_PORT,
) -> int:
    """Serve the demo until Ctrl-C or SIGTERM; the auth server listens on the issuer's port, and
    serves the admin API on ``admin_port`` (0: off). The ports were checked (:func:`demo_ports`)."""
    ports = _ports(auth.issuer, warehouse_port, printer_port, mcp_port)
    with_mcp = mcp_installed()
    with_mail = mail_catcher_installed()
    demo = run_async(  # not asyncio.run: a Ctrl-C while seeding must not be lost (see run_async)
        prepare(auth, resource, ports.printer, warehouse_port=ports.warehouse, mcp_port=ports.mcp)
    )
    assert auth.database_url is not None and auth.redis_url is not None and resource.database_url is not None
    env = {
        **os.environ,
        "TESSERA_ISSUER": auth.issuer,
        "TESSERA_DATABASE_URL": auth.database_url,
        "TESSERA_REDIS_URL": auth.redis_url,
        "TESSERA_RESOURCE_DATABASE_URL": resource.database_url,
        # each API's identifier is the URL it is served at here, as the resources seeded say
        "TESSERA_RESOURCE_URL": ports.warehouse_url,
        "TESSERA_MCP_URL": ports.mcp_url,
        "TESSERA_MCP_WAREHOUSE_URL": ports.warehouse_url,
        "TESSERA_MCP_CLIENT_ID": demo.mcp_id,
        "TESSERA_MCP_CLIENT_SECRET": demo.mcp_secret,
        "PRINTER_ISSUER": auth.issuer,
        "PRINTER_CLIENT_ID": demo.printer_id,
        "PRINTER_CLIENT_SECRET": demo.printer_secret,
        "PRINTER_REDIRECT_URI": printer_redirect(ports.printer),
        "PRINTER_API_BASE": ports.warehouse_url,
        "PRINTER_PORT": str(ports.printer),
    }
    env.setdefault("TESSERA_SITE_NAME", "Photo Warehouse")  # the demo's provider, on its pages
    # native apps, CLIs and agents register themselves in development (RFC 7591, RFC 8252), and
    # may ask for what the MCP server needs
    env.setdefault("TESSERA_REGISTRATION", "open-native")
    env.setdefault("TESSERA_OPEN_SCOPES", OPEN_SCOPES)
    # the auth server gets the key-encryption key this process read: the public development one,
    # unless one is set; this process warned about it, so given explicitly it warns only once
    env.setdefault("TESSERA_KEY_ENCRYPTION_KEY", base64.b64encode(auth.key_encryption_key).decode())
    # the auth server's admin API on the port checked, or off: never on one inherited unchecked
    env["TESSERA_ADMIN_PORT"] = str(admin_port)
    if with_mail:  # sign-up, verification and reset mail go to the mail catcher, shown on its page
        env.setdefault("TESSERA_SMTP_URL", f"smtp://localhost:{smtp_port}")
        env.setdefault("TESSERA_SIGNUP", "on")
    cli = [sys.executable, "-m", "auth_server.cli"]
    commands = {
        "auth server": (
            [*cli, "auth-server", "--port", str(ports.auth), "--workers", "1"],
            ports.auth,
            f"{auth.issuer}/.well-known/oauth-authorization-server",
        ),
        "photo warehouse": (
            [*cli, "resource-server", "--port", str(ports.warehouse), "--workers", "1"],
            ports.warehouse,
            f"http://localhost:{ports.warehouse}/healthz",
        ),
        "photo printer": (
            [sys.executable, "-m", "examples.photo_printer"],
            ports.printer,
            f"http://localhost:{ports.printer}/",
        ),
    }
    if with_mcp:
        commands["MCP server"] = (
            [*cli, "mcp-server", "--port", str(ports.mcp)],
            ports.mcp,
            f"http://localhost:{ports.mcp}/healthz",
        )
    if with_mail:  # first: the auth server's mail has somewhere to go from its first moment
        catcher = [sys.executable, "-m", "auth_server.mail.catcher"]
        commands = {
            "mail catcher": (
                [*catcher, "--port", str(mail_port), "--smtp-port", str(smtp_port)],
                mail_port,
                f"http://localhost:{mail_port}/",
            ),
            **commands,
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
            warehouse=ports.warehouse,
            printer=ports.printer,
            mcp=MCP_LINE.format(url=ports.mcp_url) if with_mcp else NO_MCP_LINE,
            admin=ADMIN_LINE.format(host=auth.admin_host, port=admin_port) if admin_port else "",
            mail=MAIL_LINE.format(port=mail_port) if with_mail else NO_MAIL_LINE,
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
        # the last started first: each stops before what it calls (the auth server, the mail catcher)
        for process in reversed(processes.values()):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # it drains in-flight requests, then exits
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
            # the admin API: --admin-port, else TESSERA_ADMIN_PORT (off by default), checked as the rest
            admin_port = configured.admin_port if args.admin_port is None else args.admin_port
            # every port free before anything starts (auth_settings() starts the embedded databases)
            check_ports(demo_ports(configured.issuer, args, admin_port))
            if args.reset:
                _reset(configured.dev_data_dir)
            code = run(
                auth_settings(),
                resource_settings(),
                warehouse_port=args.warehouse_port,
                printer_port=args.printer_port,
                mcp_port=args.mcp_port,
                admin_port=admin_port,
                mail_port=args.mail_port,
                smtp_port=args.smtp_port,
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
        "dev",
        help="the whole demo: auth server, Photo Warehouse, Photo Printer and the warehouse's MCP server,"
        " with embedded databases",
    )
    dev.add_argument(
        "--port", type=int, help=f"the auth server's port ({AUTH_PORT}); the issuer is http://localhost:PORT"
    )
    dev.add_argument("--warehouse-port", type=int, default=WAREHOUSE_PORT, help="the Photo Warehouse's port")
    dev.add_argument("--printer-port", type=int, default=PRINTER_PORT, help="the Photo Printer's port")
    dev.add_argument(
        "--mcp-port",
        type=int,
        default=MCP_PORT,
        help="the MCP server's port (it serves http://localhost:PORT/mcp; started with the mcp extra)",
    )
    dev.add_argument(
        "--admin-port",
        type=int,
        help="serve the auth server's admin HTTP API on this port (default: TESSERA_ADMIN_PORT, off)",
    )
    dev.add_argument(
        "--mail-port", type=int, default=MAIL_PORT, help="the port of the page that shows the mail caught"
    )
    dev.add_argument(
        "--smtp-port", type=int, default=SMTP_PORT, help="the port of the mail catcher's SMTP server"
    )
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
{mcp}{mail}{admin}
  Sign in as  {user}  /  {password}
  Partner client (client_credentials, scope warehouse:stats):
    curl -u {demo.partner_id}:{demo.partner_secret} {issuer}/oauth2/token -d grant_type=client_credentials
  Sign in from a terminal (the device grant):
    python -m examples.device_login --issuer {issuer} --client-id {demo.device_id}

  Press Ctrl-C to stop.
"""

MCP_LINE = """    Photo Warehouse for AI agents (MCP)       {url}   <- connect an MCP client
"""
NO_MCP_LINE = """    (MCP server for AI agents not started: pip install 'tessera[mcp]')
"""
ADMIN_LINE = """    Admin API (an admin's token)              http://{host}:{port}/openapi.json
"""
MAIL_LINE = """    Mail sent by the demo (sign-up, reset)    http://localhost:{port}/   <- the links to click
"""
NO_MAIL_LINE = """    (no mail catcher, so no sign-up or password reset: pip install 'tessera[embedded]')
"""
