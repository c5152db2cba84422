"""The ``tessera`` command as the CLI tests run it: a real process, its output captured."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def tessera(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``tessera ARGS`` (as ``python -m auth_server.cli``) with ``env``, never raising on failure."""
    return subprocess.run(
        [sys.executable, "-m", "auth_server.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def json_of(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a command printed; the command must have succeeded."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
