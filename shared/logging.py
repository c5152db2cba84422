"""Process-wide logging setup (one line per record, to stderr)."""

from __future__ import annotations

import logging
import os


def configure(level: str | None = None) -> None:
    logging.basicConfig(
        level=(level or os.environ.get("TESSERA_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiohttp's access log line carries the query string, which at /authorize and callbacks may hold
    # codes or state; keep it out of logs by default.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # the embedded development servers narrate every start and exit at INFO
    logging.getLogger("pgserver").setLevel(logging.WARNING)
