"""The original scenario, end to end, through the README's first command: ``tessera dev``.

Xiaomei keeps photos at the Photo Warehouse (site A). The Photo Printer (site B) asks for them;
she signs in at Tessera and consents, and the printer lists and prints her photos without ever
seeing her password. A second visitor denies, and the printer says so politely.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from redis import Redis

from auth_server.dev import DEMO_PASSWORD, DEMO_USER
from resource_server.demo import SAMPLE_PHOTOS
from tests.e2e.browser import chromium
from tests.support.servers import TEST_KEK, free_port
from tests.support.services import Services

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Stack:
    printer: str
    issuer: str
    process: subprocess.Popen[bytes]


def _wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"tessera dev exited early with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.25)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture
def redis_cleanup(backing: Services) -> Iterator[str]:
    prefix = f"tessera-test-dev-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = Redis.from_url(backing.redis_url)
    try:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def stack(empty_database: str, backing: Services, redis_cleanup: str, tmp_path: Path) -> Iterator[Stack]:
    auth, warehouse, printer = free_port(), free_port(), free_port()
    issuer = f"http://localhost:{auth}"
    env = {
        **os.environ,
        "TESSERA_ISSUER": issuer,
        "TESSERA_DATABASE_URL": empty_database,
        "TESSERA_REDIS_URL": backing.redis_url,
        "TESSERA_REDIS_PREFIX": redis_cleanup,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_DEV_DIR": str(tmp_path / "dev"),
    }
    command = [sys.executable, "-m", "auth_server.cli", "dev", "--warehouse-port", str(warehouse)]
    process = subprocess.Popen([*command, "--printer-port", str(printer)], env=env, cwd=Path.cwd())
    try:
        _wait_for(f"http://localhost:{printer}/", process)
        yield Stack(f"http://localhost:{printer}", issuer, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    # Ctrl-C stops all three processes cleanly
    assert process.returncode == 0


async def _sign_in_at_tessera(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.printer}/")
    await page.get_by_text("Sign in with Photo Warehouse").click()
    # at Tessera now: the printer never sees this page or the password
    await page.wait_for_url(f"{stack.issuer}/login*")
    await page.fill("input[name=username]", DEMO_USER)
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()


async def test_the_photo_printer_scenario(stack: Stack) -> None:
    async with chromium() as browser:  # first she says no
        page = browser.page
        await _sign_in_at_tessera(page, stack)
        await expect(page.locator("#client-name")).to_have_text("Photo Printer")
        await page.get_by_role("button", name="Deny").click()
        await page.wait_for_url(f"{stack.printer}/callback*")
        await expect(page.get_by_text("Nothing was imported")).to_be_visible()

    async with chromium() as browser:  # then she changes her mind
        page = browser.page
        await _sign_in_at_tessera(page, stack)
        await expect(page.locator("#client-name")).to_have_text("Photo Printer")
        await expect(page.get_by_text("See your photos and their titles")).to_be_visible()
        await page.get_by_role("button", name="Allow").click()
        await page.wait_for_url(f"{stack.printer}/")
        await expect(page.locator("#greeting")).to_contain_text("小美")  # her nickname, from OpenID Connect
        await page.get_by_text("Choose photos to print").click()
        await page.wait_for_url(f"{stack.printer}/photos*")
        for title, _ in SAMPLE_PHOTOS:
            await expect(page.get_by_text(title).first).to_be_visible()
        thumbnails = page.locator("ul.photos img")
        await expect(thumbnails).to_have_count(len(SAMPLE_PHOTOS))
        widths = await thumbnails.evaluate_all("images => images.map(i => i.naturalWidth)")
        assert all(width > 0 for width in widths), "every thumbnail loaded through the printer"
        await page.get_by_role("button", name="Print").first.click()
        await expect(page.get_by_text("to the printer")).to_be_visible()
        assert DEMO_PASSWORD not in await page.content()

    async with chromium() as browser:  # next time her consent is remembered
        page = browser.page
        await _sign_in_at_tessera(page, stack)
        await page.wait_for_url(f"{stack.printer}/")
        await page.get_by_text("Choose photos to print").click()
        await page.wait_for_url(f"{stack.printer}/photos*")
        await expect(page.get_by_text(SAMPLE_PHOTOS[0][0]).first).to_be_visible()

    assert stack.process.poll() is None, "tessera dev is still serving"
