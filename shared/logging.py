"""Process-wide logging: JSON lines (or plain text for local development), with request ids."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TextIO

from shared import settings_docs
from shared.config import (
    Choice,
    Env,
    Parsed,
    Switch,
    is_local_http,
    read_settings,
    setting,
    settings_class,
)
from shared.observability import RequestIdFilter, json_formatter

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NOTSET", "WARN", "FATAL")


def _log_format(env: Env, key: str, default: str, earlier: Mapping[str, Any]) -> str:
    """``auto`` stays ``auto`` (decided by :func:`chosen_format`) only for a development issuer:
    with any other, it is ``json``, whatever the terminal, as production's log collectors expect."""
    chosen = Choice(("auto", "json", "text"), any_case=True).read(env, key, default, earlier)
    issuer = env.optional("ISSUER")
    if chosen == "auto" and issuer is not None and not is_local_http(issuer):
        return "json"
    return chosen


@settings_class(read_by="every `tessera` command")
class LoggingSettings:
    """Read by :func:`configure`, which every ``tessera`` command calls first, before a server's settings."""

    format: str = setting(
        "LOG_FORMAT",
        Parsed(_log_format, "`auto`, `json`, `text` (any case)"),
        "`json`: one JSON object per line; `text`: plain lines, for local development; `auto`: `text`"
        " when stderr is a terminal and TESSERA_ISSUER is unset or http on localhost, else `json`.",
        default="auto",
    )
    level: str = setting(
        "LOG_LEVEL", Choice(LEVELS, any_case=True), "The least level logged.", default="INFO"
    )
    access_log: bool = setting(
        "ACCESS_LOG",
        Switch(any_case=True),
        "One line per request: it costs about a sixth of a token's CPU, and a gateway that logs each"
        " request with the same `X-Request-ID` makes it redundant.",
        default=True,
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LoggingSettings:
        return read_settings(cls, environ)


def chosen_format(settings: LoggingSettings, stream: TextIO) -> str:
    """``json`` or ``text``: ``auto`` is text for a person at a development console, JSON for the
    log collectors of a service (stderr not a terminal); a production issuer made it ``json`` already."""
    if settings.format != "auto":
        return settings.format
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        terminal = False
    return "text" if terminal else "json"


def configure(settings: LoggingSettings | None = None) -> None:
    """Install the one log handler; ``settings`` default to :meth:`LoggingSettings.from_env`."""
    if settings is None:
        settings = LoggingSettings.from_env()
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if chosen_format(settings, handler.stream) == "text":
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")
        )
    else:
        handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    # aiohttp's own access log would carry query strings (codes, states): ours replaces it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("tessera.access").setLevel(logging.INFO if settings.access_log else logging.WARNING)
    # the embedded development servers narrate every start and exit at INFO
    logging.getLogger("pgserver").setLevel(logging.WARNING)


__doc__ = settings_docs.docstring(__doc__, LoggingSettings)
