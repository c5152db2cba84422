"""The ``tessera`` command: one dispatcher for every server's subcommands.

Each server declares what it adds to the command — its subcommands and, when it owns a database
schema, how to migrate it — as a :class:`Commands` value (``auth_server/commands.py``,
``resource_server/commands.py``, and ``auth_server/dev.py`` for ``tessera dev``), and names that
value in the ``tessera.commands`` entry-point group of ``pyproject.toml``. This module finds them
through :mod:`importlib.metadata` and imports no server itself, so neither server imports the
other (import-linter holds that) and a server added to the project adds its commands by declaring
them, not by editing this file.

``tessera migrate`` is the one command that spans servers: it runs the migrations of every
provider that has some, in the order of their entry-point names (``--only NAME`` for one).

The providers are installed metadata: after changing the entry points, reinstall the project
(``pip install -e .``), as ``.ci/run`` does.

The command starts at :mod:`shared.entry`, which imports this module (and so aiohttp and the rest)
only once it handles Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, TypeAlias, TypeVar

from shared import logging as tessera_logging
from shared import service_errors
from shared.config import ConfigError, Env

ENTRY_POINTS = "tessera.commands"

# what ArgumentParser.add_subparsers() returns: each provider adds its subcommands to it
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit status 2."""


@dataclass(frozen=True, slots=True)
class Migrated:
    """What migrating one server's schema did: the migrations applied, and anything else to report."""

    applied: list[str]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Commands:
    """What one package adds to ``tessera``: its subcommands, and its schema's migrations if any."""

    # names the provider in ``tessera migrate`` output and its ``--only`` choice ("auth", "resource")
    name: str
    # adds the provider's subcommands; each sets ``run`` (a function of the parsed arguments,
    # sync or async) with ``set_defaults``
    add: Callable[[Subcommands], None]
    # applies the provider's migrations (run by ``tessera migrate``); None: it has no schema
    migrate: Callable[[], Awaitable[Migrated]] | None = None


def providers() -> list[Commands]:
    """Every installed provider, ordered by entry-point name."""
    found: list[tuple[str, Commands]] = []
    for point in entry_points(group=ENTRY_POINTS):
        commands = point.load()
        if not isinstance(commands, Commands):
            raise TypeError(f"entry point {point.name} = {point.value} is not a shared.cli.Commands")
        found.append((point.name, commands))
    return [commands for _, commands in sorted(found, key=lambda pair: pair[0])]


def parser(found: Sequence[Commands] | None = None) -> argparse.ArgumentParser:
    """The whole command line: ``migrate`` and every provider's subcommands."""
    found = providers() if found is None else found
    if not found:
        raise SystemExit(
            f"tessera: no commands are installed (entry points {ENTRY_POINTS!r}); install the project:"
            " pip install -e ."
        )
    top = argparse.ArgumentParser(prog="tessera", description="Tessera OAuth 2.0 authorization server")
    top.add_argument(
        "--debug", action="store_true", help="show the Python traceback of a failure, not only its one line"
    )
    sub = top.add_subparsers(dest="command", required=True)
    migrating = [commands for commands in found if commands.migrate is not None]
    if migrating:
        migrate = sub.add_parser(
            "migrate", help="apply database migrations (safe to run twice, or concurrently)"
        )
        migrate.add_argument(
            "--only", choices=[commands.name for commands in migrating], help="only this server's schema"
        )
        migrate.set_defaults(run=lambda args: _migrate(migrating, args.only))
    for commands in found:
        commands.add(sub)
    return top


async def _migrate(migrating: Sequence[Commands], only: str | None) -> None:
    """Each server's migrations, in its own schema (``--only`` for teams that deploy them apart)."""
    for commands in migrating:
        if only not in (None, commands.name) or commands.migrate is None:
            continue
        done = await commands.migrate()
        applied = done.applied
        print(
            f"{commands.name}: applied {len(applied)} migration(s)"
            f"{': ' + ', '.join(applied) if applied else ''}"
        )
        for note in done.notes:
            print(f"{commands.name}: {note}")


T = TypeVar("T")


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """:func:`asyncio.run`, where a Ctrl-C always ends in :class:`KeyboardInterrupt`.

    ``asyncio.run`` turns Ctrl-C into a cancellation of the task it runs. On Python 3.11,
    ``asyncio.wait_for`` swallows a cancellation that arrives as the work it waits for finishes
    (CPython gh-86296, fixed in 3.12), and redis-py wraps every command in it: the Ctrl-C was lost
    and the work carried on (``tessera dev`` then started every server and ran until a second
    Ctrl-C). The task still counts the cancellation, so it is raised again once the work is done.

    A count with no Ctrl-C behind it (Python 3.11 and 3.12 leave one on a task whose TaskGroup
    failed) is no interrupt: ``asyncio.run`` then lets the cancellation through as it is, and the
    work's result stands.
    """
    done: list[T] = []
    try:
        return asyncio.run(_obeying_ctrl_c(work, done))
    except asyncio.CancelledError:
        if done:
            return done[0]
        raise


async def _obeying_ctrl_c(work: Coroutine[Any, Any, T], done: list[T]) -> T:
    result = await work
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        done.append(result)
        while task.cancelling() > 1:  # counts left by other cancellations must not hide the Ctrl-C
            task.uncancel()
        raise asyncio.CancelledError  # asyncio.run makes it the KeyboardInterrupt it was, if it was one
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """The ``tessera`` command; Ctrl-C at any moment (loading the commands included) is one line."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("tessera: interrupted", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    try:
        tessera_logging.configure()
        result = args.run(args)
        if asyncio.iscoroutine(result):
            run_async(result)
    except (ConfigError, CommandError) as error:
        if args.debug:
            traceback.print_exc()
        print(f"tessera: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        # a database or Redis that cannot be reached, or is not migrated: one line naming the variable
        explained = service_errors.explain(error, Env(os.environ))
        if explained is None:
            raise
        if args.debug:
            traceback.print_exc()
        print(f"tessera: {explained}", file=sys.stderr)
        return 2
    return 0
