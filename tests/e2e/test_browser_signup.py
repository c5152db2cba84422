"""Sign-up, email verification and password reset (issue 18) in a real headless Chromium, without
JavaScript's help: from the login page's "Create an account", a refused password (the rest of the
form kept), the mail a real SMTP server catches, its link, the confirmation, and signing in; then
"Forgot your password?" and a new password."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from playwright.async_api import expect

from auth_server.crypto import hash_password
from auth_server.mail.catcher import MailCatcher
from tests.e2e.browser import Browser
from tests.e2e.test_browser_authorization_code import assert_cannot_be_framed
from tests.support.accounts import mail
from tests.support.servers import LiveServer, running_auth_server
from tests.support.services import Services

pytestmark = pytest.mark.e2e
__all__ = ["mail"]  # the fixture

PASSWORD = "plum tractor violet seventeen"
NEW_PASSWORD = "lantern orchard pebble ninety"


@pytest.fixture
async def accounts_server(
    database_url: str, backing: Services, redis_prefix: str, mail: MailCatcher
) -> AsyncIterator[LiveServer]:
    """A live server with sign-up on, its mail going to the catcher."""
    async with running_auth_server(
        database_url, backing.redis_url, redis_prefix, signup="on", smtp_url=mail.url
    ) as (server, _):
        yield server


def _mail_link(mail: MailCatcher, email: str, path: str, count: int = 1) -> str:
    for url in mail.to(email)[count - 1].links:
        if urlsplit(url).path == path:
            return url
    raise AssertionError(f"no link to {path}")


async def test_sign_up_confirm_the_address_then_sign_in(
    accounts_server: LiveServer, browser: Browser, mail: MailCatcher
) -> None:
    page = browser.page
    name = f"mei-{uuid.uuid4().hex[:8]}"
    email = f"{name}@photos.example"
    await page.goto(f"{accounts_server.url}/login")
    await page.get_by_role("link", name="Create an account").click()
    await expect(page).to_have_title("Create an account · Tessera")
    shown = await page.reload()
    assert shown is not None
    await assert_cannot_be_framed(shown)

    await page.get_by_label("Username").fill(name)
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Nickname").fill("小美")
    await page.get_by_label("Password", exact=True).fill("iloveyou2024")
    await page.get_by_label("Password again").fill("iloveyou2024")
    await page.get_by_role("button", name="Create account").click()
    # refused: said beside the field, which is marked; everything else typed is still there
    password = page.get_by_label("Password", exact=True)
    await expect(page.locator("#password-problem")).to_contain_text("one of the most common ones")
    await expect(password).to_have_attribute("aria-invalid", "true")
    await expect(password).to_have_value("")
    await expect(page.get_by_label("Username")).to_have_value(name)
    await expect(page.get_by_label("Email address")).to_have_value(email)
    await expect(page.get_by_label("Nickname")).to_have_value("小美")

    await password.fill(PASSWORD)
    await page.get_by_label("Password again").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

    await mail.wait_for(email, within=30)
    await page.goto(_mail_link(mail, email, "/signup/verify"))
    await expect(page.locator("#email")).to_have_text(email)
    await page.get_by_role("button", name="Yes, confirm it").click()
    await expect(page.locator("#outcome")).to_have_text("Your email address is confirmed")
    user = await accounts_server.registry.users.by_username(name)
    assert user is not None
    profile = await accounts_server.registry.users.profile(user.user_id)
    assert profile is not None and profile.email_verified

    await page.get_by_role("link", name="Sign in").click()
    await page.get_by_label("Username").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_role("heading", name="Signed in")).to_be_visible()


async def test_forgot_password_then_sign_in_with_the_new_one(
    accounts_server: LiveServer, browser: Browser, mail: MailCatcher
) -> None:
    page = browser.page
    registry = accounts_server.registry
    name = f"mei-{uuid.uuid4().hex[:8]}"
    email = f"{name}@photos.example"
    user = await registry.users.create(name, hash_password(PASSWORD))
    await registry.users.set_profile(user.user_id, {"email": email, "email_verified": True})

    await page.goto(f"{accounts_server.url}/login")
    await page.get_by_role("link", name="Forgot your password?").click()
    await page.get_by_label("Username or email address").fill(email)
    await page.get_by_role("button", name="Send me a link").click()
    await expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

    await mail.wait_for(email, within=30, where=lambda c: "/password-reset/new" in c.text)
    await page.goto(_mail_link(mail, email, "/password-reset/new"))
    await expect(page.locator("#username-shown")).to_have_text(name)
    await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await page.get_by_label("New password again").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Set new password").click()
    await expect(page.locator("#outcome")).to_have_text("Your password is changed")

    await page.get_by_role("link", name="Sign in").click()
    await page.get_by_label("Username").fill(name)
    await page.get_by_label("Password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_role("heading", name="Signed in")).to_be_visible()
