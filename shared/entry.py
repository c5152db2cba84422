"""Where the ``tessera`` command starts: Ctrl-C is one line from its very first instruction.

The command (:mod:`shared.cli`) loads aiohttp, asyncpg, redis and every server's subcommands, which
takes about a quarter of a second; a Ctrl-C in that time used to print a ``KeyboardInterrupt``
traceback, because those imports ran before :func:`shared.cli.main` could catch anything. This
module imports only what the interpreter has already loaded, and :func:`main` loads the command
inside its ``try``. The ``tessera = "shared.entry:main"`` script of ``pyproject.toml`` and
``python -m auth_server.cli`` both start here, and nothing else imports this module.

Importing it takes over Ctrl-C at once: until :func:`main` runs, an interrupt is only noted, and
:func:`main` ends at once on it (Python delivers a signal where it pleases, and the first place
after an import may be the call of :func:`main`, outside any ``try``). A process that was started
with Ctrl-C ignored (a background job) keeps ignoring it.

What runs before this module, the interpreter's own start-up (its ``site`` import), is Python's:
no code of a package can catch a Ctrl-C there.
"""

from __future__ import annotations

import signal
import sys

TYPE_CHECKING = False  # typing's constant, without loading typing before Ctrl-C is taken over
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

INTERRUPTED = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C

_interrupted = False


def _note(signum: int, frame: FrameType | None) -> None:
    global _interrupted
    _interrupted = True


# Ctrl-C handled as Python does by default (not ignored by whoever started this process): noted
_takes_ctrl_c = signal.getsignal(signal.SIGINT) is signal.default_int_handler
if _takes_ctrl_c:
    signal.signal(signal.SIGINT, _note)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tessera`` command in this process, which it then ends: returns the exit status."""
    try:
        if _takes_ctrl_c:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt from here on
        if _interrupted:
            raise KeyboardInterrupt
        from shared.cli import main as command

        return command(argv)
    except KeyboardInterrupt:
        print("tessera: interrupted", file=sys.stderr)
        return INTERRUPTED
    finally:
        # the command is over: what is left, the interpreter's exit (atexit stops the embedded
        # servers this command started), is not cut short by a second Ctrl-C into a traceback
        signal.signal(signal.SIGINT, signal.SIG_IGN)
