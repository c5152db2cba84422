"""The login and consent pages in Chinese, in a real headless Chromium (issue 18, item 5).

The browser asks for Chinese (``Accept-Language``); the pages come in Simplified Chinese, with the
scope descriptions translated, and the characters are drawn with a CJK font (not the empty boxes of
a missing glyph: Chromium reports, through the DevTools protocol, the fonts it used for a node).
The language switch then turns the page to English, without JavaScript.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.async_api import Page, Route, expect

from auth_server.registration import ClientMetadata, register
from auth_server.stores.users import User
from tests.e2e.browser import Browser
from tests.support.flow import Pkce
from tests.support.servers import PASSWORD, LiveServer

pytestmark = pytest.mark.e2e

REDIRECT_URI = "https://printer.example/callback"
# the font families that draw Chinese on the systems the tests run on (Debian's fonts-noto-cjk,
# WenQuanYi, macOS's PingFang and Hiragino, Windows's YaHei)
CJK_FONTS = re.compile(
    r"CJK|Noto Sans SC|Noto Serif SC|WenQuanYi|PingFang|Hiragino|YaHei|SimSun|Droid Sans Fallback"
)


async def fonts_of(page: Page, selector: str) -> list[str]:
    """The families of the fonts Chromium drew ``selector``'s text with (DevTools protocol)."""
    session = await page.context.new_cdp_session(page)
    await session.send("DOM.enable")
    await session.send("CSS.enable")
    document = await session.send("DOM.getDocument")
    node = await session.send(
        "DOM.querySelector", {"nodeId": document["root"]["nodeId"], "selector": selector}
    )
    fonts = await session.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})
    return [font["familyName"] for font in fonts["fonts"] if font["glyphCount"] > 0]


async def test_the_chinese_login_and_consent_pages(
    browser: Browser, live_server: LiveServer, person: User
) -> None:
    client, _, _ = await register(
        live_server.registry,
        ClientMetadata(
            client_name="美图羞羞",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            scope=["photos:read", "photos:write"],
            token_endpoint_auth_method="client_secret_basic",
            require_pkce=True,
        ),
    )
    page = browser.page
    answers: list[str] = []

    async def callback(route: Route) -> None:  # the client's redirect URI, answered here
        answers.append(route.request.url)
        await route.fulfill(status=200, content_type="text/plain", body="ok")

    await page.route(f"{REDIRECT_URI}**", callback)
    await page.set_extra_http_headers({"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "photos:read photos:write",
        "state": "s-1",
        "code_challenge": Pkce.new().challenge,
        "code_challenge_method": "S256",
    }
    await page.goto(f"{live_server.url}/oauth2/authorize?{urlencode(params)}")

    # the login page, in Chinese, drawn with a CJK font
    await expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("登录")
    await expect(page.locator("#asking")).to_contain_text("美图羞羞")
    families = await fonts_of(page, "h1")
    assert any(CJK_FONTS.search(family) for family in families), families
    await page.get_by_label("用户名").fill(person.username)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录", exact=True).click()

    # the consent page: the app, the scopes in Chinese, Allow and Deny
    await expect(page.get_by_role("heading", level=1)).to_have_text("美图羞羞 申请访问您的账号")
    scopes = page.locator("ul.scopes")
    await expect(scopes).to_contain_text("查看您的照片及其标题")
    await expect(scopes).to_contain_text("上传新照片、删除已有照片")
    families = await fonts_of(page, "ul.scopes li span")
    assert any(CJK_FONTS.search(family) for family in families), families
    await expect(page.get_by_role("button", name="拒绝")).to_be_visible()

    # the switch turns the page to English (a link: no script), and back
    await page.get_by_role("link", name="English").click()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.get_by_role("heading", level=1)).to_have_text("美图羞羞 wants to access your account")
    await page.get_by_role("link", name="中文").click()
    await expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")

    await page.get_by_role("button", name="允许").click()
    await page.wait_for_url(f"{REDIRECT_URI}**")
    assert len(answers) == 1
    answer = parse_qs(urlsplit(answers[0]).query)
    assert answer["state"] == ["s-1"] and answer["code"]
