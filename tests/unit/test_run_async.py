"""``shared.cli.run_async``: a Ctrl-C is never lost, even where Python 3.11's ``asyncio.wait_for``
swallows the cancellation ``asyncio.run`` makes of it (CPython gh-86296). redis-py wraps every
command in ``wait_for``, and ``tessera dev`` once ran on, every server started, after a Ctrl-C that
landed while it seeded the demo (CI, Python 3.11)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from shared.cli import run_async


async def _a_command_then_more_work(interrupt: bool) -> str:
    async def command() -> str:
        await asyncio.sleep(0)
        if interrupt:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the command's own work finishes
        return "sent"

    answer = await asyncio.wait_for(command(), 5)  # as redis-py sends each command
    await asyncio.sleep(0.05)  # the start-up work that follows
    return answer


@pytest.fixture(autouse=True)
def ctrl_c_as_python_handles_it() -> Iterator[None]:
    """Python's own SIGINT handler, as in a terminal, while the test sends this process a real
    SIGINT: a test run started in the background (CI) inherits SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_that_wait_for_swallows_still_interrupts() -> None:
    with pytest.raises(KeyboardInterrupt):
        run_async(_a_command_then_more_work(interrupt=True))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back as it was


def test_without_a_ctrl_c_the_work_is_done() -> None:
    assert run_async(_a_command_then_more_work(interrupt=False)) == "sent"


async def _a_command_whose_task_group_failed() -> str:
    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("a part of the command failed, and the command dealt with it")

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(fails())
    except* ValueError:
        pass
    return "done"


def test_a_cancellation_count_left_without_a_ctrl_c_does_not_lose_the_result() -> None:
    """Python 3.11 and 3.12 leave a count on the task whose TaskGroup failed: no Ctrl-C, no interrupt."""
    assert run_async(_a_command_whose_task_group_failed()) == "done"
