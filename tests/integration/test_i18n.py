"""Every page in Chinese or English, and operator themes (issue 18, item 5).

The language of a page: ``ui_locales`` of the authorization request (OpenID Connect Core
§3.1.2.1), carried through the login page to the consent page; then the language switch's cookie;
then ``Accept-Language`` with its q-values (RFC 9110 §12.5.4); then English. Messages come from
the gettext catalogs under ``auth_server/locale``, which must translate every message the templates
and the code mark (the completeness test below). ``TESSERA_THEME_DIR`` overrides templates by name
and sets colours and a logo, with the pages' Content-Security-Policy unchanged.
"""

from __future__ import annotations

import asyncio
import json
import re
import smtplib
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from pytest_aiohttp.plugin import AiohttpClient

from auth_server import i18n
from auth_server.clients import Client
from auth_server.mail.catcher import MailCatcher
from auth_server.mail.catcher import page as catcher_page
from auth_server.pages import PAGE_HEADERS
from auth_server.settings import Settings
from auth_server.stores.users import User
from shared.config import ConfigError
from tests.support.accounts import address, link, mail, new_name, sign_up
from tests.support.flow import authorize_params, hidden, query_of
from tests.support.servers import PASSWORD, AppFactory, ClientFactory, registry_of

__all__ = ["mail"]  # the fixture

ROOT = Path(__file__).resolve().parents[2]
LOCALE_DIR = ROOT / "auth_server" / "locale"
CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
ENGLISH = {"Accept-Language": "en-US,en;q=0.9"}


def lang_of(page: str) -> str:
    found = re.search(r'<html lang="([^"]+)"', page)
    assert found is not None, page[:200]
    return found.group(1)


async def page_of(http: TestClient, url: str, **headers: str) -> tuple[int, str]:
    response = await http.get(url, headers=headers, allow_redirects=False)
    return response.status, await response.text()


async def to_consent(
    http: TestClient, client: Client, user: User, headers: dict[str, str], **extra: str
) -> tuple[str, str]:
    """/authorize (with ``extra`` parameters) → the login page → signed in → the consent page:
    (the login page, the consent page); no login page (``""``) when she is signed in already."""
    params = {**authorize_params(client.client_id, scope="photos:read photos:write"), **extra}
    response = await http.get(
        f"/oauth2/authorize?{urlencode(params)}", headers=headers, allow_redirects=False
    )
    if response.status == 200:
        return "", await response.text()
    assert response.status == 302 and response.headers["Location"].startswith("/login")
    login_url = response.headers["Location"]
    return_to = query_of(login_url)["return_to"]
    login = await http.get(login_url, headers=headers)
    login_page = await login.text()
    signed_in = await http.post(
        "/login",
        data={
            "username": user.username,
            "password": PASSWORD,
            "csrf_token": hidden(login_page, "csrf_token"),
            "return_to": return_to,
        },
        headers=headers,
        allow_redirects=False,
    )
    assert signed_in.status == 303, await signed_in.text()
    consent = await http.get(signed_in.headers["Location"], headers=headers, allow_redirects=False)
    assert consent.status == 200
    return login_page, await consent.text()


# --- choosing the language -----------------------------------------------------------------------


async def test_accept_language_zh_finds_the_chinese_login_page(http: TestClient) -> None:
    response = await http.get("/login", headers=CHINESE)
    page = await response.text()
    assert lang_of(page) == "zh-Hans" and response.headers["Content-Language"] == "zh-Hans"
    assert "登录" in page and "Password" not in page
    # the switch offers English, and marks Chinese as the page's language
    assert '<strong lang="zh-Hans" aria-current="true">中文</strong>' in page
    assert "/language?lang=en&amp;next=%2Flogin" in page


async def test_english_is_the_fallback_for_a_language_not_offered(http: TestClient) -> None:
    for accept in ("fr-FR,fr;q=0.9,de;q=0.8", "", "*", "zh;q=0, fr"):
        status, page = await page_of(http, "/login", **({"Accept-Language": accept} if accept else {}))
        assert status == 200 and lang_of(page) == "en", accept
        assert "Sign in to" in page


async def test_accept_language_q_values_decide(http: TestClient) -> None:
    _, page = await page_of(http, "/", **{"Accept-Language": "en;q=0.4, zh-TW;q=0.9, fr"})
    assert lang_of(page) == "zh-Hans"  # fr is first but not offered; zh (0.9) beats en (0.4)
    _, page = await page_of(http, "/", **{"Accept-Language": "zh;q=0.3, en-GB;q=0.31"})
    assert lang_of(page) == "en"
    _, page = await page_of(http, "/", **{"Accept-Language": "zh;q=2, en;q=x"})  # malformed weights
    assert lang_of(page) == "en"


def test_accept_language_parsing() -> None:
    assert i18n.accept_language("da, en-gb;q=0.8, en;q=0.7") == ["da", "en-gb", "en"]
    assert i18n.accept_language("en;q=0.5, zh-CN, zh;q=0.9") == ["zh-CN", "zh", "en"]
    assert i18n.accept_language("zh;q=0, *;q=0.1, en;Q=1.000") == ["en"]
    assert i18n.negotiate(["fr", "zh-Hant-TW", "en"]) == i18n.CHINESE
    assert i18n.from_ui_locales("de-CH en") == i18n.ENGLISH
    assert i18n.from_ui_locales("de fr") is None


async def test_chinese_consent_page_with_chinese_scope_descriptions(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client(name="美图羞羞")
    login_page, consent = await to_consent(http, client, user, CHINESE)
    assert lang_of(login_page) == "zh-Hans"
    assert lang_of(consent) == "zh-Hans"
    assert '<span id="client-name">美图羞羞</span> 申请访问您的账号' in consent
    assert "查看您的照片及其标题" in consent and "上传新照片、删除已有照片" in consent
    assert "See your photos" not in consent
    assert ">允许</button>" in consent and ">拒绝</button>" in consent
    assert "直到我收回授权" in consent  # the durations
    assert "(photos:read)" in consent  # the scope's name itself stays as it is


async def test_operators_give_scope_descriptions_per_language(
    app_with: AppFactory, new_client: ClientFactory, user: User
) -> None:
    scopes = {
        "photos:read": {"en": "See your albums", "zh-CN": "查看您的相册"},
        "photos:write": "Change your albums",
    }
    http = await app_with(scopes=json.dumps(scopes))
    client, _ = await new_client(name="Photo Printer")
    _, chinese = await to_consent(http, client, user, CHINESE)
    assert "查看您的相册" in chinese and "Change your albums" in chinese  # a plain one as given
    english = await http.get(
        f"/oauth2/authorize?{urlencode(authorize_params(client.client_id))}", headers=ENGLISH
    )
    assert "See your albums" in await english.text()


def test_a_description_in_a_language_not_offered_is_refused() -> None:
    with pytest.raises(ConfigError, match="'fr' is not a language the pages come in"):
        Settings.from_env({"TESSERA_SCOPES": json.dumps({"photos:read": {"en": "See", "fr": "Voir"}})})


async def test_ui_locales_carries_through_login_to_consent(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client()
    # the browser prefers English; the app asks for Chinese (OpenID Connect Core §3.1.2.1)
    login_page, consent = await to_consent(http, client, user, ENGLISH, ui_locales="zh-CN en")
    assert lang_of(login_page) == "zh-Hans" and lang_of(consent) == "zh-Hans"
    assert "查看您的照片及其标题" in consent
    # and the other way round
    other, _ = await new_client()
    _, consent = await to_consent(http, other, user, CHINESE, ui_locales="en")
    assert lang_of(consent) == "en" and "See your photos and their titles" in consent


async def test_a_wrong_password_keeps_the_language_of_ui_locales(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client()
    params = {**authorize_params(client.client_id), "ui_locales": "zh"}
    response = await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
    return_to = query_of(response.headers["Location"])["return_to"]
    page = await (await http.get(response.headers["Location"])).text()
    wrong = await http.post(
        "/login",
        data={
            "username": user.username,
            "password": "not the password",
            "csrf_token": hidden(page, "csrf_token"),
            "return_to": return_to,
        },
        headers=ENGLISH,
    )
    answer = await wrong.text()
    assert wrong.status == 400 and lang_of(answer) == "zh-Hans"


async def test_the_switch_sets_a_cookie_that_wins_over_accept_language(http: TestClient) -> None:
    response = await http.get(
        "/language", params={"lang": "zh-Hans", "next": "/login"}, headers=ENGLISH, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == "/login"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("tessera_lang=zh-Hans;") and "SameSite=Lax" in cookie and "HttpOnly" in cookie
    assert "Max-Age=31536000" in cookie
    _, page = await page_of(http, "/login", **ENGLISH)
    assert lang_of(page) == "zh-Hans"
    # back to English, from a Chinese browser
    await http.get("/language", params={"lang": "en", "next": "/"}, allow_redirects=False)
    _, page = await page_of(http, "/", **CHINESE)
    assert lang_of(page) == "en"


async def test_ui_locales_wins_over_the_switch(http: TestClient, new_client: ClientFactory) -> None:
    client, _ = await new_client()
    await http.get("/language", params={"lang": "zh-Hans", "next": "/"}, allow_redirects=False)
    params = {**authorize_params(client.client_id), "ui_locales": "en"}
    response = await http.get(
        f"/oauth2/authorize?{urlencode(params)}", headers=CHINESE, allow_redirects=False
    )
    _, page = await page_of(http, response.headers["Location"], **CHINESE)
    assert lang_of(page) == "en"


async def test_the_switch_on_a_page_of_a_request_changes_its_ui_locales(http: TestClient) -> None:
    """Clicking 中文 on a login page whose request asked for English shows it in Chinese: the
    request's ``ui_locales`` on the way back becomes the language chosen."""
    return_to = "/oauth2/authorize?" + urlencode({"client_id": "c", "ui_locales": "en"})
    login = "/login?" + urlencode({"return_to": return_to})
    response = await http.get("/language", params={"lang": "zh-Hans", "next": login}, allow_redirects=False)
    back = query_of(response.headers["Location"])["return_to"]
    assert query_of(back) == {"client_id": "c", "ui_locales": "zh-Hans"}


@pytest.mark.parametrize(
    "next_page", ["//evil.example/", "/\\evil.example", "https://evil.example/", "evil", "", "/\x07"]
)
async def test_the_switch_goes_back_only_to_this_server(http: TestClient, next_page: str) -> None:
    response = await http.get("/language", params={"lang": "en", "next": next_page}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/"


async def test_error_pages_in_chinese(http: TestClient) -> None:
    status, page = await page_of(http, "/oauth2/authorize?client_id=nobody&response_type=code", **CHINESE)
    assert status == 400 and lang_of(page) == "zh-Hans"
    assert "<h1>该登录链接无效</h1>" in page
    assert "请返回您之前所在的应用，然后重试。" in page
    # the OAuth error code and its description stay in small print, untranslated
    assert '<code id="error-code">invalid_request</code>' in page
    status, page = await page_of(http, "/no-such-page", Accept="text/html", **CHINESE)
    assert status == 404 and "<h1>页面不存在</h1>" in page


async def test_the_form_post_page_speaks_the_request_language(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client()
    _, consent = await to_consent(http, client, user, CHINESE, response_mode="form_post")
    answered = await http.post(
        "/consent",
        data={
            "csrf_token": hidden(consent, "csrf_token"),
            "request_id": hidden(consent, "request_id"),
            "consent": "allow",
        },
        headers=CHINESE,
    )
    page = await answered.text()
    assert lang_of(page) == "zh-Hans" and "<title>继续</title>" in page


async def test_a_chinese_sign_up_gets_chinese_pages_and_a_chinese_verification_mail(
    app_with: AppFactory, mail: MailCatcher
) -> None:
    http = await app_with(signup="on", smtp_url=mail.url)
    await http.get("/language", params={"lang": "zh-Hans", "next": "/signup"}, allow_redirects=False)
    form = await (await http.get("/signup")).text()
    assert lang_of(form) == "zh-Hans" and "<h1>注册 Tessera 账号</h1>" in form
    name, email = new_name(), address(new_name())
    answer = await sign_up(http, name, email, PASSWORD)
    assert answer.status == 303
    sent = await (await http.get(answer.headers["Location"])).text()
    assert "<h1>请查收邮件</h1>" in sent
    caught = await mail.wait_for(email)
    assert caught.subject == "验证您的 Tessera 邮箱地址"
    assert f"{name}，您好：" in caught.text and "24 小时内有效" in caught.text
    assert link(caught, "/signup/verify")  # the link itself as ever
    user = await registry_of(http).users.by_username(name)
    assert user is not None
    profile = await registry_of(http).users.profile(user.user_id)
    assert profile is not None and profile.locale == "zh-Hans"  # the language she signed up in


async def test_the_mail_page_of_tessera_dev_speaks_the_readers_language(
    aiohttp_client: AiohttpClient,
) -> None:
    catcher = MailCatcher()  # started by its page's app, as python -m auth_server.mail.catcher does
    http = await aiohttp_client(catcher_page(catcher))
    status, page = await page_of(http, "/", **CHINESE)
    assert status == 200 and lang_of(page) == "zh-Hans" and "还没有邮件" in page

    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "tessera@localhost", "mei@example.com", ""
    mail.set_content("http://localhost:8000/signup/verify?token=t")
    await asyncio.to_thread(_send, catcher, mail)
    await catcher.wait_for("mei@example.com")
    _, page = await page_of(http, "/messages/1", **CHINESE)
    assert "1 封邮件" in page and "（无主题）" in page and "<dt>收件人</dt>" in page

    # its language switch works there too (it led to a 404), with the authorization server's cookie,
    # which a browser sends to every port of localhost
    switched = await http.get("/language", params={"lang": "en", "next": "/"}, allow_redirects=False)
    assert switched.status == 303 and switched.headers["Location"] == "/"
    assert switched.headers["Set-Cookie"].startswith("tessera_lang=en;")
    _, page = await page_of(http, "/", **CHINESE)
    assert lang_of(page) == "en" and "1 message<" in page and "(no subject)" in page


def _send(catcher: MailCatcher, mail: EmailMessage) -> None:
    with smtplib.SMTP(catcher.host, catcher.port) as smtp:
        smtp.send_message(mail)


async def test_metadata_names_the_languages(http: TestClient) -> None:
    document = await (await http.get("/.well-known/openid-configuration")).json()
    assert document["ui_locales_supported"] == ["zh-Hans", "en"]


# --- the catalogs ---------------------------------------------------------------------------------


def _catalog(locale: str):  # type: ignore[no-untyped-def]
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=locale)


def test_every_message_has_a_chinese_translation(tmp_path: Path) -> None:
    """Extract the messages as a developer would (README) and find each in the Chinese catalog,
    translated: not empty, not fuzzy, with the same placeholders."""
    pot = tmp_path / "messages.pot"
    CommandLineInterface().run(  # type: ignore[no-untyped-call]
        ["pybabel", "-q", "extract", "-F", str(ROOT / "babel.cfg"), "-k", "N_", "-o", str(pot), str(ROOT)]
    )
    with pot.open("rb") as extracted:
        wanted = {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in read_po(extracted) if m.id}
    assert len(wanted) > 200  # the extraction found the templates and the code
    chinese = _catalog("zh_Hans")
    have = {
        (m.context, m.id if isinstance(m.id, str) else m.id[0]): m
        for m in chinese
        if m.id and "fuzzy" not in m.flags and all(m.string if isinstance(m.string, tuple) else [m.string])
    }
    missing = sorted(wanted - set(have), key=str)
    assert not missing, f"untranslated in zh_Hans (see README, 'Pages in Chinese and English'): {missing}"
    problems = [(message.id, errors) for message, errors in chinese.check() if errors]
    assert not problems, problems  # placeholders (python-format) match their msgid's


def _key(context: str | None, msgid: str | tuple[str, ...] | list[str]) -> tuple[str | None, str]:
    return context, msgid if isinstance(msgid, str) else msgid[0]


def _text(msgstr: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    return (msgstr or "",) if msgstr is None or isinstance(msgstr, str) else tuple(msgstr)


@pytest.mark.parametrize("locale", ["en", "zh_Hans"])
def test_the_compiled_catalogs_are_up_to_date(locale: str) -> None:
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.mo").open("rb") as mo:
        # (an untranslated plural is compiled as its msgids: as good as absent)
        compiled = {
            _key(m.context, m.id): _text(m.string)
            for m in read_mo(mo)
            if m.id and _text(m.string) != _text(m.id)
        }
    source = {_key(m.context, m.id): _text(m.string) for m in _catalog(locale) if m.id}
    source = {key: value for key, value in source.items() if any(value) and value != (key[1],)}
    assert compiled == source, "run `pybabel compile -d auth_server/locale` (README)"


# --- themes ---------------------------------------------------------------------------------------


def _theme(directory: Path) -> Path:
    (directory / "templates").mkdir(parents=True)
    (directory / "templates" / "welcome.html").write_text(
        '{% extends "base.html" %}{% block content %}<h1 id="themed">{{ _("Sign in") }} · Photo Warehouse'
        "</h1>{% endblock %}",
        encoding="utf-8",
    )
    (directory / "theme.json").write_text(
        json.dumps({"colors": {"accent": "#c8102e", "background": "rgb(250, 245, 240)"}, "logo": "logo.svg"}),
        encoding="utf-8",
    )
    (directory / "logo.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>',
        encoding="utf-8",
    )
    (directory / "theme.css").write_text('h1 { font-family: "Songti SC", serif; }\n', encoding="utf-8")
    return directory


async def test_a_theme_overrides_a_template_colours_and_logo(app_with: AppFactory, tmp_path: Path) -> None:
    http = await app_with(theme_dir=str(_theme(tmp_path / "theme")))
    response = await http.get("/", headers=CHINESE)
    page = await response.text()
    assert '<h1 id="themed">登录 · Photo Warehouse</h1>' in page  # its template, translated
    assert ":root { --tessera-accent: #c8102e; --tessera-background: rgb(250, 245, 240); }" in page
    assert 'h1 { font-family: "Songti SC", serif; }' in page  # theme.css, not escaped
    assert '<img class="site-logo" src="/theme/logo"' in page
    assert response.headers["Content-Security-Policy"] == PAGE_HEADERS["Content-Security-Policy"]
    # the other templates are the shipped ones, themed
    login = await (await http.get("/login")).text()
    assert "Sign in to" in login and "--tessera-accent: #c8102e" in login
    logo = await http.get("/theme/logo")
    assert logo.status == 200 and logo.content_type == "image/svg+xml"
    assert "sandbox" in logo.headers["Content-Security-Policy"]  # its script never runs
    assert logo.headers["X-Content-Type-Options"] == "nosniff"


async def test_without_a_theme_there_is_no_logo(http: TestClient) -> None:
    assert (await http.get("/theme/logo")).status == 404
    assert '<img class="site-logo"' not in await (await http.get("/")).text()


@pytest.mark.parametrize(
    ("file", "content", "complaint"),
    [
        ("theme.json", '{"colors": {"accent": "red; } body { display: none"}}', "must be a CSS colour"),
        ("theme.json", '{"colours": {}}', 'must be an object with "colors"'),
        ("theme.json", '{"logo": "../secret.png"}', "must be the name of a file"),
        ("theme.css", "</style><script>alert(1)</script>", "must not contain '<'"),
    ],
)
def test_a_broken_theme_stops_the_start(tmp_path: Path, file: str, content: str, complaint: str) -> None:
    (tmp_path / file).write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(complaint)):
        Settings.from_env({"TESSERA_THEME_DIR": str(tmp_path)})
