"""Ctrl-C at any moment of any ``tessera`` command is one line and exit status 130, never a
``KeyboardInterrupt`` traceback: while the command loads (aiohttp, asyncpg, redis and every
server's subcommands take about a quarter of a second) as much as while it runs.

The interrupt is sent right after the child reports (``-X importtime``, on stderr) that it has
loaded a given module, so that each case hits the same moment on a fast machine and a slow one.
The command is ``tessera client list`` against a "database" that accepts connections and never
answers, so that it is still running whenever the interrupt comes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import TEST_KEK

IMPORT_TIME = "import time:"
COMMANDS = {
    # the console script pyproject.toml installs, and the module spelling the test suite uses
    "tessera": [str(Path(sys.executable).with_name("tessera"))],
    "python -m auth_server.cli": [sys.executable, "-m", "auth_server.cli"],
}


@pytest.fixture
def silent_database() -> Iterator[int]:
    """A port on loopback that accepts TCP connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def _start(command: list[str], port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env |= {
        "TESSERA_DATABASE_URL": f"postgresql://tessera@127.0.0.1:{port}/tessera",
        "TESSERA_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_LOG_FORMAT": "json",
        "PYTHONPROFILEIMPORTTIME": "1",  # -X importtime: one stderr line as each module is loaded
    }
    return subprocess.Popen(
        [*command, "client", "list"], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )


def _loaded(line: str) -> str:
    """The module an ``-X importtime`` line reports loaded ("" for any other line)."""
    return line.rsplit("|", 1)[-1].strip() if line.startswith(IMPORT_TIME) else ""


def _interrupt(process: subprocess.Popen[str], after: str | None) -> list[str]:
    """SIGINT once ``after`` is loaded (None: once the command waits for the database); the
    child's stderr lines, less the import-time ones."""
    assert process.stderr is not None
    said: list[str] = []
    if after is None:
        time.sleep(1.5)  # the command has loaded, and waits for the database's answer
        assert process.poll() is None, "the command ended before it was interrupted"
    else:
        for line in process.stderr:
            if not line.startswith(IMPORT_TIME):
                said.append(line)
            if _loaded(line) == after:
                break
        else:
            pytest.fail(f"the command never loaded {after}: {''.join(said)}")
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=20)[1]
    return [line for line in [*said, *rest.splitlines(keepends=True)] if not line.startswith(IMPORT_TIME)]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    "after",
    [
        "shared.entry",  # the command's first module: nothing else of Tessera is loaded yet
        "aiohttp",  # halfway through the imports
        "shared.cli",  # the dispatcher is loaded: the servers' subcommands are being found
        None,  # loaded, and running
    ],
)
def test_ctrl_c_at_any_moment_is_one_line(command: str, after: str | None, silent_database: int) -> None:
    with _start(COMMANDS[command], silent_database) as process:  # its pipe closed, whatever happens
        try:
            said = _interrupt(process, after)
        finally:
            if process.poll() is None:
                process.kill()
    assert "".join(said) == "tessera: interrupted\n", "".join(said)
    assert process.returncode == 130
