"""``python -m auth_server.cli``: the ``tessera`` command under the module name it always had.

The command itself is :mod:`shared.cli`, which finds every server's subcommands through entry
points; the auth server's are in :mod:`auth_server.commands`. This module only keeps the old
spelling working (scripts, the test suite, ``tessera = "auth_server.cli:main"`` installs).

Run as a program, its first instruction imports :mod:`shared.entry`, which takes over Ctrl-C and
loads the command inside its handling, as the ``tessera`` script does. Imported (by a test, say), it
loads nothing: :mod:`shared.entry` is imported only by a process that is the command.
"""

from __future__ import annotations

if __name__ == "__main__":
    import sys

    from shared.entry import main as _entry

    sys.exit(_entry())

TYPE_CHECKING = False  # typing's constant, without loading typing
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from shared.cli import Commands

__all__ = ["main", "parser"]


def main(argv: Sequence[str] | None = None) -> int:
    """The ``tessera`` command (:func:`shared.entry.main`), for scripts installed under this name."""
    from shared.entry import main as entry

    return entry(argv)


def parser(found: Sequence[Commands] | None = None) -> argparse.ArgumentParser:
    """The whole command line (:func:`shared.cli.parser`)."""
    from shared import cli

    return cli.parser(found)
