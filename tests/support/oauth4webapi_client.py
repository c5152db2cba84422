"""panva/oauth4webapi (npm), a standard client library the tests run against Tessera: its scripts
live in ``tests/support/oauth4webapi/``; the package is installed from their lock file once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support import programs

FOLDER = Path(__file__).parent / "oauth4webapi"


def command(script: str) -> list[str]:
    """``node <script>``, oauth4webapi installed first from the lock file (``npm ci``) if needed;
    a missing Node.js fails in one line naming what to install."""
    node, npm = programs.require("node"), programs.require("npm")
    lock = json.loads((FOLDER / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/oauth4webapi"]["version"]
    try:
        installed = json.loads((FOLDER / "node_modules/oauth4webapi/package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        installed = None
    if installed != wanted:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=FOLDER,
            env=programs.node_environment(),
            check=True,
            timeout=300,
        )
    return [node, str(FOLDER / script)]
