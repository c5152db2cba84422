"""A test that needs a missing program fails at once, in one line that names it and its install
command; a program that is there is simply found."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import programs
from tests.support.programs import require


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
        pytest.fail.Exception, match=r"^node is missing: install it with `apt-get install -y nodejs`"
    ):
        require("node")


def test_too_old_a_version_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\necho v18.19.1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception) as failed:
        require("node")
    message = str(failed.value)
    assert message.startswith(f"node v18.19.1 at {fake} is older than 20.19: install 20.19 or newer")
    assert "\n" not in message


def test_a_program_that_is_there_passes() -> None:
    found = require("sh")
    assert Path(found).name == "sh"
    assert programs.problem("sh") is None
