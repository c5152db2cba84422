"""Headless Chromium for the end-to-end tests: the system's build (Debian's ``chromium``, or the one
``TESSERA_TEST_CHROMIUM`` names), driven by Playwright, nothing downloaded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from playwright.async_api import Page, Response, async_playwright

from tests.support.programs import require

# Without the background-networking flags Chromium keeps dialling out, which this sandbox refuses.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 5_000


@dataclass
class Browser:
    page: Page
    documents: list[Response]  # every response to a top-level document request, redirects included

    def trail(self) -> list[tuple[str, str, int]]:
        """(method, origin+path, status) of each document response, in order."""
        return [
            (r.request.method, r.url.split("?", 1)[0].split("#", 1)[0], r.status)
            for r in self.documents
            if r.frame.parent_frame is None
        ]

    def redirects_to(self, target: str) -> list[Response]:
        """The redirect responses whose Location leads to ``target``."""
        return [r for r in self.documents if r.status in (302, 303) and location(r).startswith(target)]


def location(response: Response) -> str:
    return response.headers.get("location", "")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=require("chromium"), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context()
            context.set_default_timeout(TIMEOUT_MS)
            page = await context.new_page()
            documents: list[Response] = []
            page.on(
                "response", lambda r: documents.append(r) if r.request.resource_type == "document" else None
            )
            yield Browser(page, documents)
        finally:
            await browser.close()
