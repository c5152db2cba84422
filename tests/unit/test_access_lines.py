"""The access log's fast paths (issue 19) write exactly what the logging path writes."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pythonjsonlogger.orjson import OrjsonFormatter

from shared.observability import (
    DirectAccessLines,
    JsonFormatter,
    RequestIdFilter,
    access_log,
    json_formatter,
    write_access_lines_directly,
)

FIELDS: dict[str, Any] = {"method": "POST", "route": "/oauth2/token", "status": 200, "duration_ms": 0.42}


def _python_json_logger() -> OrjsonFormatter:
    """The formatter the fast path stands in for, configured as ``json_formatter`` is."""
    return OrjsonFormatter(
        "{asctime}{levelname}{name}{message}{request_id}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def _record(name: str = access_log.name, msg: object = "request", **extra: Any) -> logging.LogRecord:
    record = logging.getLogger(name).makeRecord(name, logging.INFO, "f.py", 1, msg, (), None, extra=extra)
    record.request_id = "rid-1"
    return record


@pytest.mark.parametrize(
    "record",
    [
        _record(**FIELDS),
        _record(method="GET", status=404),  # fewer fields
        _record(**FIELDS, other="kept"),  # a field more: python-json-logger's path writes it
        _record("tessera.audit", "audit client.created", event="client.created"),
        _record(msg={"as": "dict"}),
    ],
)
def test_lines_are_those_of_python_json_logger(record: logging.LogRecord) -> None:
    assert json_formatter().format(record) == _python_json_logger().format(record)


def test_a_record_formatted_before_by_another_handler_is_formatted_the_same() -> None:
    record = _record(**FIELDS)
    expected = _python_json_logger().format(record)  # sets record.message and record.asctime
    assert json_formatter().format(record) == expected


@contextmanager
def only_json_handler() -> Iterator[tuple[logging.StreamHandler[io.StringIO], io.StringIO]]:
    """The process's logging as ``shared.logging.configure`` leaves it: one JSON handler on the root
    logger (pytest's own handlers set aside for the while)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = [handler]
    try:
        yield handler, stream
    finally:
        root.handlers[:] = saved
        write_access_lines_directly(None)


def test_a_direct_line_is_the_line_of_the_record() -> None:
    with only_json_handler() as (handler, stream):
        _write_directly(handler)
    written = json.loads(stream.getvalue())
    from_record = json.loads(_python_json_logger().format(_record(**FIELDS)))
    assert list(written) == list(from_record)  # the same keys, in the same order
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", written["time"])
    assert {k: v for k, v in written.items() if k != "time"} == {
        k: v for k, v in from_record.items() if k != "time"
    }


def _write_directly(handler: logging.StreamHandler[io.StringIO]) -> None:
    formatter = handler.formatter
    assert isinstance(formatter, JsonFormatter)
    direct = DirectAccessLines(handler, formatter)
    assert direct.ready()
    assert direct.write("rid-1", dict(FIELDS))


def test_direct_lines_step_aside_for_any_other_listener() -> None:
    with only_json_handler() as (handler, _):
        _steps_aside(handler)


def _steps_aside(handler: logging.StreamHandler[io.StringIO]) -> None:
    formatter = handler.formatter
    assert isinstance(formatter, JsonFormatter)
    direct = DirectAccessLines(handler, formatter)
    assert direct.ready()
    other = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(other)  # as caplog does
    try:
        assert not direct.ready()
    finally:
        logging.getLogger().removeHandler(other)
    access_log.addFilter(RequestIdFilter())
    try:
        assert not direct.ready()
    finally:
        access_log.removeFilter(access_log.filters[-1])
    handler.setFormatter(logging.Formatter())
    assert not direct.ready()


async def test_the_lines_of_one_loop_turn_go_out_together_at_its_end() -> None:
    """In an event loop, lines wait for the end of the turn they were made in, then go out in one
    write, in the order they were made; none is lost."""
    with only_json_handler() as (handler, stream):
        formatter = handler.formatter
        assert isinstance(formatter, JsonFormatter)
        direct = DirectAccessLines(handler, formatter)
        for status in (200, 201, 400):
            assert direct.write("rid-1", {**FIELDS, "status": status})
        assert stream.getvalue() == ""  # still this turn
        await asyncio.sleep(0)
        lines = stream.getvalue().splitlines()
        assert [json.loads(line)["status"] for line in lines] == [200, 201, 400]
        assert direct.write("rid-2", dict(FIELDS))
        write_access_lines_directly(direct)
        write_access_lines_directly(None)  # stopping it writes what waits
        assert len(stream.getvalue().splitlines()) == 4


def test_lines_left_by_a_loop_that_closed_go_out_with_the_next_loops() -> None:
    """A loop that closes before its turn ends leaves its lines waiting: the next loop's first line
    takes them along (nothing is lost, nothing waits for the exit)."""
    with only_json_handler() as (handler, stream):
        formatter = handler.formatter
        assert isinstance(formatter, JsonFormatter)
        direct = DirectAccessLines(handler, formatter)

        first = asyncio.new_event_loop()
        first.call_soon(direct.write, "rid", {**FIELDS, "status": 200})
        first.call_soon(first.stop)  # the loop stops in that turn: the flush due after it never runs
        first.run_forever()
        first.close()
        assert stream.getvalue() == ""

        async def then() -> None:
            direct.write("rid", {**FIELDS, "status": 201})
            await asyncio.sleep(0)

        asyncio.run(then())
        assert [json.loads(line)["status"] for line in stream.getvalue().splitlines()] == [200, 201]
