"""Process-wide logging: JSON lines (or plain text for local development), with request ids."""

from __future__ import annotations

import logging
import os

from shared.config import ConfigError
from shared.observability import RequestIdFilter, json_formatter


def configure(level: str | None = None, fmt: str | None = None) -> None:
    """``TESSERA_LOG_FORMAT`` = json (default) or text; ``TESSERA_LOG_LEVEL`` = INFO by default;
    ``TESSERA_ACCESS_LOG`` = on (default) or off: one line per request costs about a sixth of a
    token's CPU, and a gateway that logs each request with the same ``X-Request-ID`` makes it redundant."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if (fmt or os.environ.get("TESSERA_LOG_FORMAT", "json")).lower() == "text":
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")
        )
    else:
        handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("TESSERA_LOG_LEVEL", "INFO")).upper())
    # aiohttp's own access log would carry query strings (codes, states): ours replaces it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    access = os.environ.get("TESSERA_ACCESS_LOG", "on").lower()
    if access not in ("on", "off"):
        raise ConfigError("TESSERA_ACCESS_LOG must be on or off")
    logging.getLogger("tessera.access").setLevel(logging.INFO if access == "on" else logging.WARNING)
    # the embedded development servers narrate every start and exit at INFO
    logging.getLogger("pgserver").setLevel(logging.WARNING)
