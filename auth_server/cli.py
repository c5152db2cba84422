"""``python -m auth_server.cli``: the ``tessera`` command under the module name it always had.

The command itself is :mod:`shared.cli`, which finds every server's subcommands through entry
points; the auth server's are in :mod:`auth_server.commands`. This module only keeps the old
spelling working (scripts, the test suite, ``tessera = "auth_server.cli:main"`` installs).
"""

from __future__ import annotations

import sys

from shared.cli import main, parser

__all__ = ["main", "parser"]

if __name__ == "__main__":
    sys.exit(main())
