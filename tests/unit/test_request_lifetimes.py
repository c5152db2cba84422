"""What outlives a request, and how a worker leaves (issue 19's review)."""

from __future__ import annotations

import asyncio
import gc
import os
import weakref
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from auth_server import i18n, pages
from shared import observability, serving


async def test_a_task_a_request_started_does_not_keep_the_request_alive() -> None:
    """A request's language is chosen only when asked for; a task the request started (a rate
    limit's flusher, say) keeps its context, but not the request itself."""
    release = asyncio.Event()
    seen: list[i18n.Language] = []

    async def later() -> None:
        await release.wait()
        seen.append(i18n.current())

    tasks: list[asyncio.Task[None]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        tasks.append(asyncio.create_task(later()))
        return web.Response(text="ok")

    request = make_mocked_request("GET", "/x", headers={"Accept-Language": "zh-CN"})
    alive = weakref.ref(request)
    await pages.middleware(request, handler)
    del request
    gc.collect()
    assert alive() is None
    release.set()
    await tasks[0]
    assert seen == [i18n.ENGLISH]  # never asked during the request: nothing rendered for it after


async def test_a_language_asked_for_during_the_request_is_kept() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=i18n.current().tag)

    request = make_mocked_request("GET", "/x", headers={"Accept-Language": "zh-CN"})
    response: Any = await pages.middleware(request, handler)
    assert response.text == "zh-Hans"


def test_a_worker_leaves_by_os_exit_even_if_its_last_flush_is_interrupted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second Ctrl-C landing while the last access lines are written must not send the forked
    worker back into its parent's code."""
    exits: list[int] = []

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(serving, "_die_with_the_supervisor", lambda pid: None)
    monkeypatch.setattr(serving, "run_one", lambda *args, **kwargs: None)
    monkeypatch.setattr(observability, "flush_access_lines", interrupted)
    monkeypatch.setattr(os, "_exit", exits.append)
    with pytest.raises(KeyboardInterrupt):
        serving._worker(lambda: web.Application(), None, 1)  # type: ignore[arg-type]
    assert exits == [0]
