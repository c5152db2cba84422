"""``tessera user list|show|update|delete``, ``tessera consent list|revoke`` and ``tessera flow``, run as
real subprocesses against the test services and an authorization server in this process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from aiohttp import ClientSession, CookieJar
from aiohttp.test_utils import TestClient

from auth_server.crypto import hash_password
from auth_server.registry import Registry
from auth_server.settings import Settings
from auth_server.stores.users import User
from tests.support.flow import authorize_params, basic, obtain_code
from tests.support.servers import PASSWORD, TEST_KEK, ClientFactory, LiveServer, free_port


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    assert settings.database_url is not None and settings.redis_url is not None
    return {
        **os.environ,
        "TESSERA_DATABASE_URL": settings.database_url,
        "TESSERA_REDIS_URL": settings.redis_url,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_REDIS_PREFIX": settings.redis_prefix,
        **extra,
    }


async def _tessera(
    settings: Settings, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "auth_server.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=_env(settings),
        timeout=60,
        check=False,
    )


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def _tokens(http: TestClient, client_id: str, secret: str, user: User) -> dict[str, Any]:
    code = (await obtain_code(http, authorize_params(client_id), user.username, PASSWORD))["code"]
    response = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "https://printer.example/callback",
        },
        headers=basic(client_id, secret),
    )
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def _refreshes(http: TestClient, client_id: str, secret: str, refresh_token: str) -> bool:
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=basic(client_id, secret),
    )
    return response.status == 200


async def _access_revoked(registry: Registry, access_token: str) -> bool:
    claims = jwt.decode(access_token, options={"verify_signature": False})
    return await registry.revoked_tokens.is_revoked(claims["jti"], claims.get("grant_id"))


async def _events(registry: Registry, event: str, subject: str) -> list[dict[str, Any]]:
    return [e.details for e in await registry.audit.recent(event, limit=1000) if e.subject == subject]


async def test_consent_revoke_forgets_the_consent_and_ends_that_clients_tokens_only(
    http: TestClient, settings: Settings, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    printer, printer_secret = await new_client()
    other, other_secret = await new_client(name="Other")
    assert printer_secret and other_secret
    printer_tokens = await _tokens(http, printer.client_id, printer_secret, user)
    other_tokens = await _tokens(http, other.client_id, other_secret, user)

    listed = _json(await _tessera(settings, "consent", "list", "--user", user.username))
    assert {(c["client_id"], tuple(c["scope"])) for c in listed} == {
        (printer.client_id, ("photos:read",)),
        (other.client_id, ("photos:read",)),
    }
    assert all(c["user_id"] == user.subject and c["username"] == user.username for c in listed)
    only = _json(await _tessera(settings, "consent", "list", "--client", printer.client_id))
    assert [(c["user_id"], c["client_id"]) for c in only] == [(user.subject, printer.client_id)]

    # the username is compared as sign-in compares it
    revoked = _json(
        await _tessera(
            settings, "consent", "revoke", "--user", user.username.upper(), "--client", printer.client_id
        )
    )
    assert revoked == {
        "user_id": user.subject,
        "client_id": printer.client_id,
        "consent_revoked": True,
        "refresh_token_families_revoked": 1,
    }
    assert await registry.consents.granted(user.user_id, printer.client_id) == frozenset()
    assert not await _refreshes(http, printer.client_id, printer_secret, printer_tokens["refresh_token"])
    assert await _access_revoked(registry, printer_tokens["access_token"])
    # the other client keeps its consent and tokens
    assert await registry.consents.granted(user.user_id, other.client_id) == {"photos:read"}
    assert not await _access_revoked(registry, other_tokens["access_token"])
    assert await _refreshes(http, other.client_id, other_secret, other_tokens["refresh_token"])
    assert await _events(registry, "consent.revoked", user.subject) == [{"refresh_token_families_revoked": 1}]

    # the next authorization asks again: the consent page, where the user can deny
    denied = await obtain_code(
        http, authorize_params(printer.client_id), user.username, PASSWORD, decision="deny"
    )
    assert denied["error"] == "access_denied"

    again = await _tessera(
        settings, "consent", "revoke", "--user", user.subject, "--client", printer.client_id
    )
    assert again.returncode != 0
    assert "no consent" in again.stderr and "Traceback" not in again.stderr


async def test_user_list_show_update_delete(
    http: TestClient, settings: Settings, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    client, secret = await new_client()
    assert secret
    tokens = await _tokens(http, client.client_id, secret, user)

    listed = _json(await _tessera(settings, "user", "list"))
    (row,) = [u for u in listed if u["user_id"] == user.subject]
    assert row["username"] == user.username and "password_hash" not in row
    shown = _json(await _tessera(settings, "user", "show", user.subject))
    assert shown["username"] == user.username
    assert [c["client_id"] for c in shown["consents"]] == [client.client_id]
    missing = await _tessera(settings, "user", "show", "nobody-" + uuid.uuid4().hex)
    assert missing.returncode != 0 and "no user" in missing.stderr

    # renaming keeps the user, their tokens and password
    new_name = f"小美-{uuid.uuid4().hex[:6]}"
    renamed = _json(await _tessera(settings, "user", "update", user.username, "--username", new_name))
    assert renamed["username"] == new_name and renamed["refresh_token_families_revoked"] == 0
    assert (await registry.users.by_username(new_name.upper())) is not None
    assert await registry.users.by_username(user.username) is None
    assert await _refreshes(http, client.client_id, secret, tokens["refresh_token"]) is True

    taken = await registry.users.create(f"taken-{uuid.uuid4().hex[:6]}", hash_password(PASSWORD))
    clash = await _tessera(settings, "user", "update", new_name, "--username", taken.username.upper())
    assert clash.returncode != 0 and "taken" in clash.stderr

    # a new password ends every grant made under the old one
    tokens = await _tokens(http, client.client_id, secret, await registry.users.get(user.user_id))  # type: ignore[arg-type]
    changed = _json(
        await _tessera(
            settings, "user", "update", new_name, "--password-stdin", stdin="a new long password\n"
        )
    )
    assert changed["refresh_token_families_revoked"] == 2
    assert not await _refreshes(http, client.client_id, secret, tokens["refresh_token"])
    assert await _access_revoked(registry, tokens["access_token"])
    short = await _tessera(settings, "user", "update", new_name, "--password-stdin", stdin="short\n")
    assert short.returncode != 0 and "at least 8" in short.stderr
    updates = await _events(registry, "user.updated", user.subject)
    assert [sorted(e["changed"]) for e in updates] == [["password"], ["username"]]

    deleted = _json(await _tessera(settings, "user", "delete", user.subject))
    assert deleted["deleted_user"] == user.subject
    assert await registry.users.get(user.user_id) is None
    assert await registry.consents.granted(user.user_id, client.client_id) == frozenset()
    assert await _events(registry, "user.deleted", user.subject) == [{"refresh_token_families_revoked": 0}]
    gone = await _tessera(settings, "user", "delete", user.subject)
    assert gone.returncode != 0 and "no user" in gone.stderr


async def test_flow_runs_the_code_flow_on_a_loopback_callback(
    live_server: LiveServer, new_client: ClientFactory, user: User
) -> None:
    port = free_port()
    callback = f"http://127.0.0.1:{port}/callback"
    client, _ = await new_client(public=True, redirect_uris=[callback])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "auth_server.cli", "flow", "--client-id", client.client_id, "--scope", "photos:read"),
        *("--port", str(port), "--issuer", live_server.url, "--no-browser", "--timeout", "60"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(live_server.settings),
    )
    assert process.stderr is not None
    url = None
    while url is None:
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        assert line, "tessera flow ended before printing the URL"
        if line.strip().startswith(live_server.url):
            url = line.strip()
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["redirect_uri"] == callback
    assert params["code_challenge_method"] == "S256" and params["state"]
    # the browser: sign in, consent, follow the redirect to the command's callback
    # unsafe=True: keep cookies of an IP address host (127.0.0.1)
    async with ClientSession(base_url=live_server.url, cookie_jar=CookieJar(unsafe=True)) as browser:
        redirect = await obtain_code(browser, params, user.username, PASSWORD)
        async with browser.get(f"{callback}?{urlencode(redirect)}") as response:
            assert response.status == 200
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    tokens = json.loads(stdout)
    assert tokens["token_type"] == "Bearer" and tokens["access_token"] and tokens["refresh_token"]
    assert tokens["scope"] == "photos:read"
    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["sub"] == user.subject


async def test_flow_says_when_the_callback_is_not_registered(
    live_server: LiveServer, new_client: ClientFactory
) -> None:
    client, _ = await new_client(public=True)  # only https://printer.example/callback
    port = free_port()
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            *("-m", "auth_server.cli", "flow", "--client-id", client.client_id, "--scope", "photos:read"),
            *("--port", str(port), "--issuer", live_server.url, "--no-browser"),
        ],
        capture_output=True,
        text=True,
        env=_env(live_server.settings),
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f"http://127.0.0.1:{port}/callback" in result.stderr
    assert "redirect URI" in result.stderr
    assert "Traceback" not in result.stderr


AVATAR = "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4="


async def test_user_profile_flags(settings: Settings, registry: Registry) -> None:
    username = f"mei-{uuid.uuid4().hex[:8]}"
    created = _json(
        await _tessera(
            settings,
            *("user", "create", "--username", username, "--password-stdin"),
            *("--email", "mei@example.com", "--email-verified", "--name", "Xiaomei Wang"),
            *("--nickname", "小美", "--picture", AVATAR, "--locale", "zh-CN", "--zoneinfo", "Asia/Shanghai"),
            stdin="a long password\n",
        )
    )
    assert created["username"] == username and "password_hash" not in created
    assert created["email"] == "mei@example.com" and created["email_verified"] is True
    assert (created["name"], created["nickname"], created["picture"]) == ("Xiaomei Wang", "小美", AVATAR)
    assert (created["locale"], created["zoneinfo"]) == ("zh-CN", "Asia/Shanghai")
    user = await registry.users.by_username(username)
    assert user is not None
    profile = await registry.users.profile(user.user_id)
    assert profile is not None and profile.nickname == "小美" and profile.email_verified

    shown = _json(await _tessera(settings, "user", "show", username))
    assert shown["nickname"] == "小美" and shown["email_verified"] is True and shown["updated_at"]
    assert "password_hash" not in shown and shown["consents"] == []

    # a new email is unverified unless said so; an empty value clears a field; tokens stay
    updated = _json(
        await _tessera(settings, "user", "update", username, "--email", "mei@photos.example", "--picture", "")
    )
    assert updated["email"] == "mei@photos.example" and updated["email_verified"] is False
    assert updated["picture"] is None and updated["nickname"] == "小美"
    assert updated["refresh_token_families_revoked"] == 0
    verified = _json(await _tessera(settings, "user", "update", username, "--email-verified", "yes"))
    assert verified["email_verified"] is True
    both = _json(
        await _tessera(
            settings, "user", "update", username, "--email", "mei@new.example", "--email-verified", "yes"
        )
    )
    assert both["email"] == "mei@new.example" and both["email_verified"] is True
    renamed = _json(
        await _tessera(settings, "user", "update", username, "--nickname", "Mei", "--locale", "en")
    )
    assert (renamed["nickname"], renamed["locale"], renamed["zoneinfo"]) == ("Mei", "en", "Asia/Shanghai")
    changes = [sorted(e["changed"]) for e in await _events(registry, "user.updated", user.subject)]
    assert changes == [
        ["locale", "nickname"],
        ["email", "email_verified"],
        ["email_verified"],
        ["email", "picture"],
    ]


async def test_user_profile_values_are_checked(settings: Settings, registry: Registry) -> None:
    username = f"mei-{uuid.uuid4().hex[:8]}"
    for flags, error in (
        (("--email", "not an address"), "not an email address"),
        (("--email-verified",), "--email-verified needs --email"),
        (("--picture", "javascript:alert(1)"), "--picture"),
        (("--picture", "http://avatars.example/mei.png"), "--picture"),
        (("--locale", "Chinese"), "BCP 47"),
        (("--zoneinfo", "Mars/Olympus_Mons"), "IANA time zone"),
        (("--nickname", "bad\u202enick"), "control or format"),
    ):
        result = await _tessera(
            settings,
            "user",
            "create",
            "--username",
            username,
            "--password-stdin",
            *flags,
            stdin="a long password\n",
        )
        assert result.returncode == 2 and error in result.stderr, (flags, result.stderr)
        assert "Traceback" not in result.stderr
    assert await registry.users.by_username(username) is None  # nothing created by a refused command

    plain = _json(
        await _tessera(
            settings, "user", "create", "--username", username, "--password-stdin", stdin="a long password\n"
        )
    )
    assert plain["email"] is None and plain["email_verified"] is False and plain["nickname"] is None
    unverifiable = await _tessera(settings, "user", "update", username, "--email-verified", "yes")
    assert unverifiable.returncode == 2 and "no email address" in unverifiable.stderr
    nothing = await _tessera(settings, "user", "update", username)
    assert nothing.returncode == 2 and "--nickname" in nothing.stderr
