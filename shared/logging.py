"""Process-wide logging: JSON lines (or plain text for local development), with request ids.

A record's ``extra`` fields (the access log's method, route, status and duration; the audit
trail's event, client and subject; why a client was refused) are fields of the JSON object, and
``key=value`` pairs after the message in the text format (:class:`TextFormatter`). No code logs a
secret, code or token in them; the text format also holds back any field whose name says it is one.
"""

from __future__ import annotations

import json
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
from shared.observability import (
    DirectAccessLines,
    RequestIdFilter,
    json_formatter,
    write_access_lines_directly,
)

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
        "One line per request, JSON lines written straight to stderr: about 30 µs of CPU, a tenth of a"
        " client_credentials token's (README, Benchmarks). A gateway that logs each request with the"
        " same `X-Request-ID` makes it redundant: `off` there.",
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


# the attributes every LogRecord has: the others are a record's ``extra`` fields
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",  # in the line's own brackets
    "taskName",  # Python 3.12 and later
    "color_message",  # uvicorn's (the MCP server's) message again, with terminal colours
}
_SECRET_NAMES = ("secret", "password", "token", "assertion", "authorization", "cookie", "code_verifier")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class TextFormatter(logging.Formatter):
    """Plain lines for a person at a console: the message, then its ``extra`` fields as ``key=value``
    (strings with spaces or quotes quoted as JSON strings; fields that are None left out)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = [
            f"{key}={_shown(key, value)}"
            for key, value in vars(record).items()
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_") and value is not None
        ]
        return " ".join([line, *fields])


def _shown(key: str, value: object) -> str:
    if any(name in key.lower() for name in _SECRET_NAMES):
        return "[hidden]"
    text = value if isinstance(value, str) else str(value)
    if text == "" or any(c.isspace() or c in "\"'=" for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def configure(settings: LoggingSettings | None = None) -> None:
    """Install the one log handler; ``settings`` default to :meth:`LoggingSettings.from_env`."""
    if settings is None:
        settings = LoggingSettings.from_env()
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if chosen_format(settings, handler.stream) == "text":
        handler.setFormatter(TextFormatter())
        write_access_lines_directly(None)
    else:
        formatter = json_formatter()
        handler.setFormatter(formatter)
        # the access lines skip the LogRecord while this handler is the only one (issue 19)
        write_access_lines_directly(DirectAccessLines(handler, formatter))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    # aiohttp's own access log would carry query strings (codes, states): ours replaces it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # on: a line per request at INFO, and at DEBUG the successful answers to the routes that are
    # polled all the time (shared.observability), shown with TESSERA_LOG_LEVEL=DEBUG; off: none
    access_level = min(logging.INFO, root.level) if settings.access_log else logging.WARNING
    logging.getLogger("tessera.access").setLevel(access_level)
    # the embedded development servers narrate every start and exit at INFO
    logging.getLogger("pgserver").setLevel(logging.WARNING)


__doc__ = settings_docs.docstring(__doc__, LoggingSettings)
