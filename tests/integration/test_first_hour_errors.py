"""Issue 13, the first hour: mistakes a user makes get one line naming the fix, never a traceback;
operators learn why a client was refused; people see plain words, the site's name and the app asking.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio
from aiohttp.test_utils import TestClient

from shared import service_errors
from shared.config import Env
from shared.logging import LoggingSettings, TextFormatter, chosen_format
from shared.observability import RequestIdFilter, json_formatter
from tests.support.flow import REDIRECT_URI, authorize_params, basic
from tests.support.servers import TEST_KEK, AppFactory, ClientFactory, free_port
from tests.support.services import Services


def _tessera(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auth_server.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _env(database_url: str, redis_url: str, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_REDIS_URL": redis_url,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_LOG_FORMAT": "json",
        **more,
    }


def _with(url: str, *, netloc: str | None = None, path: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=netloc or parts.netloc, path=path or parts.path))


def _one_line_failure(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    return result.stderr


def test_a_wrong_database_host_names_the_variable(backing: Services) -> None:
    url = _with(backing.admin_database_url, netloc="postgres@no-such-host.invalid:5432")
    stderr = _one_line_failure(
        _tessera(_env(url, backing.redis_url), "client", "list"), "TESSERA_DATABASE_URL", "no-such-host"
    )
    assert "does not resolve" in stderr


def test_a_closed_database_port_names_the_variable(backing: Services) -> None:
    host = urlsplit(backing.admin_database_url).hostname
    url = _with(backing.admin_database_url, netloc=f"postgres@{host}:1")
    _one_line_failure(_tessera(_env(url, backing.redis_url), "migrate"), "TESSERA_DATABASE_URL", "running")


def test_server_workers_explain_a_closed_database_port_in_one_line(backing: Services) -> None:
    """``--workers N``: each worker says why it failed as the command does, not with a traceback."""
    host = urlsplit(backing.admin_database_url).hostname
    url = _with(backing.admin_database_url, netloc=f"postgres@{host}:1")
    result = _tessera(
        _env(url, backing.redis_url), "auth-server", "--workers", "2", "--port", str(free_port())
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert (
        "tessera: cannot connect to PostgreSQL" in result.stderr and "TESSERA_DATABASE_URL" in result.stderr
    )


def test_a_wrong_user_or_password_names_the_variable(backing: Services) -> None:
    parts = urlsplit(backing.admin_database_url)
    url = _with(
        backing.admin_database_url, netloc=f"no_such_role:secret-pw@{parts.hostname}:{parts.port or 5432}"
    )
    stderr = _one_line_failure(
        _tessera(_env(url, backing.redis_url), "client", "list"), "TESSERA_DATABASE_URL", "no_such_role"
    )
    assert "secret-pw" not in stderr  # a password is never printed


def test_a_wrong_database_name_names_the_variable(backing: Services) -> None:
    url = _with(backing.admin_database_url, path="/no_such_database_13")
    _one_line_failure(
        _tessera(_env(url, backing.redis_url), "client", "list"),
        "TESSERA_DATABASE_URL",
        "no_such_database_13",
        "createdb",
    )


def test_an_unmigrated_database_says_run_migrate(empty_database: str, backing: Services) -> None:
    stderr = _one_line_failure(_tessera(_env(empty_database, backing.redis_url), "client", "list"))
    assert "the database has no Tessera tables: run `tessera migrate`" in stderr


def test_debug_shows_the_traceback(backing: Services) -> None:
    url = _with(backing.admin_database_url, path="/no_such_database_13")
    result = _tessera(_env(url, backing.redis_url), "--debug", "client", "list")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "InvalidCatalogNameError" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("tessera: ")


def test_the_development_key_encryption_key_warning_appears_once(
    database_url: str, backing: Services, redis_prefix: str
) -> None:
    env = _env(database_url, backing.redis_url, TESSERA_REDIS_PREFIX=redis_prefix)
    del env["TESSERA_KEY_ENCRYPTION_KEY"]
    result = _tessera(env, "migrate")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("PUBLIC development key-encryption key") == 1


async def test_an_unreachable_redis_is_explained() -> None:
    client = redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(redis.exceptions.ConnectionError) as caught:
            await client.ping()
    finally:
        await client.aclose()
    line = service_errors.explain(caught.value, Env({"TESSERA_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}))
    assert line is not None and "TESSERA_REDIS_URL" in line and "127.0.0.1:1" in line
    assert "hunter2" not in line


def test_a_wrong_password_is_explained_without_the_password() -> None:
    error = asyncpg.InvalidPasswordError('password authentication failed for user "tessera"')
    line = service_errors.explain(
        error, Env({"TESSERA_DATABASE_URL": "postgresql://tessera:hunter2@db:5432/t"})
    )
    assert line is not None
    assert "fix the password in TESSERA_DATABASE_URL" in line and "db:5432" in line
    assert "hunter2" not in line


def test_an_unrelated_os_error_is_not_blamed_on_the_database() -> None:
    assert service_errors.explain(OSError(98, "Address already in use"), Env({})) is None


# --- invalid_client is logged with its reason ---------------------------------------------------


async def _refused(
    http: TestClient, caplog: pytest.LogCaptureFixture, data: dict[str, str], headers: dict[str, str]
) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tessera.client_auth"):
        response = await http.post(
            "/oauth2/token", data={"grant_type": "client_credentials", **data}, headers=headers
        )
        body = await response.json()
    assert (response.status, body["error"]) == (401, "invalid_client")
    lines = [r.getMessage() for r in caplog.records if r.name == "tessera.client_auth"]
    assert len(lines) == 1, lines
    return lines[0]


async def test_every_invalid_client_is_logged_with_its_reason_and_never_the_secret(
    http: TestClient, new_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client, secret = await new_client(grant_types=["client_credentials"])
    assert secret is not None

    line = await _refused(http, caplog, {}, basic(client.client_id, "wrong-secret-value"))
    assert "wrong client secret" in line and client.client_id in line
    assert "wrong-secret-value" not in line

    # the right secret with the wrong method: the client answer stays generic, the log says why
    line = await _refused(http, caplog, {"client_id": client.client_id, "client_secret": secret}, {})
    assert "client_secret_post" in line and "registered for client_secret_basic" in line
    assert secret not in line

    line = await _refused(http, caplog, {}, basic("nobody-13", secret))
    assert "unknown client_id" in line and secret not in line

    line = await _refused(http, caplog, {}, {"Authorization": "Basic %%%"})
    assert "base64" in line

    for record in caplog.records:
        assert secret not in str(record.__dict__)


# --- pages ---------------------------------------------------------------------------------------


async def test_the_welcome_page_says_what_this_is_and_links_the_metadata(app_with: AppFactory) -> None:
    http = await app_with(site_name="Photo Warehouse")
    response = await http.get("/")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    page = await response.text()
    assert "<h1>Photo Warehouse</h1>" in page
    for link in (
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/oauth2/jwks",
        "/openapi.json",
        "/login",
        "/account",
        "/developers",
    ):
        assert f'href="{link}"' in page
        assert (await http.get(link, allow_redirects=False)).status in (200, 303), link  # each is there
    described = await (await http.get("/openapi.json")).json()
    assert "/" in described["paths"]


async def test_an_unknown_path_is_the_standard_json_error_or_a_page_for_a_browser(http: TestClient) -> None:
    response = await http.get("/no/such/path")
    assert response.status == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    assert (await response.json())["error"] == "not_found"

    browser = await http.get("/no/such/path", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.status == 404
    assert browser.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in browser.headers["Content-Security-Policy"]
    page = await browser.text()
    assert "<h1>Page not found</h1>" in page and '<code id="error-code">not_found</code>' in page

    # a path that takes other methods: 405 with Allow, in the same body
    wrong = await http.delete("/oauth2/token")
    assert wrong.status == 405
    assert "POST" in wrong.headers["Allow"]
    body = await wrong.json()
    assert body["error"] == "method_not_allowed" and "DELETE" in body["error_description"]


async def test_an_error_page_speaks_plainly_with_the_code_in_small_print(http: TestClient) -> None:
    response = await http.get(f"/oauth2/authorize?{urlencode(authorize_params('no-such-client'))}")
    assert response.status == 400
    page = await response.text()
    assert "<h1>This sign-in link does not work</h1>" in page
    assert "Go back to the app you came from" in page
    assert '<code id="error-code">invalid_request</code>' in page
    assert "Unknown client_id." in page
    assert page.index("Go back") < page.index("invalid_request")  # the words first, the code after


async def test_the_login_page_names_the_site_and_the_app_asking(
    app_with: AppFactory, new_client: ClientFactory
) -> None:
    http = await app_with(site_name="Photo Warehouse")
    plain = await (await http.get("/login")).text()
    assert 'Sign in to <span id="site-name">Photo Warehouse</span>' in plain
    assert "<title>Sign in · Photo Warehouse</title>" in plain
    assert 'id="asking-client"' not in plain

    client, _ = await new_client(name="Photo Printer 小美")
    return_to = (
        f"/oauth2/authorize?{urlencode(authorize_params(client.client_id, redirect_uri=REDIRECT_URI))}"
    )
    asked = await (await http.get("/login", params={"return_to": return_to})).text()
    assert '<strong id="asking-client">Photo Printer 小美</strong> is asking' in asked
    assert "your Photo Warehouse account" in asked


async def test_the_site_name_defaults_to_tessera(http: TestClient) -> None:
    assert 'Sign in to <span id="site-name">Tessera</span>' in await (await http.get("/login")).text()


def test_cli_json_prints_unicode_as_unicode(database_url: str, backing: Services, redis_prefix: str) -> None:
    name = f"小美{uuid.uuid4().hex[:6]}"
    result = subprocess.run(
        [sys.executable, "-m", "auth_server.cli", "user", "create", "--username", name, "--password-stdin"],
        input="a long enough password\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=_env(database_url, backing.redis_url, TESSERA_REDIS_PREFIX=redis_prefix),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f'"username": "{name}"' in result.stdout and "\\u" not in result.stdout


class _Stream(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


@pytest.mark.parametrize(
    ("variable", "issuer", "terminal", "chosen"),
    [
        ("auto", None, True, "text"),  # a developer's console
        ("auto", None, False, "json"),  # a service's log collector
        ("auto", "https://auth.example.com", True, "json"),  # production
        ("json", None, True, "json"),  # TESSERA_LOG_FORMAT wins
        ("text", "https://auth.example.com", False, "text"),
    ],
)
def test_logs_are_human_readable_on_a_development_terminal(
    variable: str, issuer: str | None, terminal: bool, chosen: str
) -> None:
    environ = {"TESSERA_LOG_FORMAT": variable}
    if issuer is not None:
        environ["TESSERA_ISSUER"] = issuer
    assert chosen_format(LoggingSettings.from_env(environ), _Stream(terminal)) == chosen


# --- what a developer's console shows -------------------------------------------------------------


def _formatted(formatter: logging.Formatter, name: str, message: str, **extra: object) -> str:
    """One record logged through ``formatter`` as the process's handler does (request id filter)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"tests.first_hour.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.info(message, extra=extra)
    logger.removeHandler(handler)
    return stream.getvalue().replace(logger.name, name)


def test_text_logs_show_the_extra_fields_as_key_value_pairs() -> None:
    line = _formatted(
        TextFormatter(),
        "tessera.access",
        "request",
        method="GET",
        route="/oauth2/token",
        status=200,
        duration_ms=1.25,
    )
    assert line.endswith(
        " INFO tessera.access [-]: request method=GET route=/oauth2/token status=200 duration_ms=1.25\n"
    )
    audit = _formatted(
        TextFormatter(), "tessera.audit", "audit client.created", event="client.created", client_id="abc"
    )
    assert audit.endswith(": audit client.created event=client.created client_id=abc\n")
    # the JSON format is as it was: the same fields as keys of the object
    as_json = json.loads(_formatted(json_formatter(), "tessera.access", "request", method="GET", status=200))
    assert (as_json["message"], as_json["method"], as_json["status"]) == ("request", "GET", 200)


def test_text_logs_quote_what_needs_it_leave_out_none_and_hide_secrets() -> None:
    line = _formatted(
        TextFormatter(),
        "tessera.client_auth",
        "refused",
        reason="wrong client secret",
        subject=None,
        client_secret="hunter2-value",
        refresh_token="rt-value",
    )
    assert 'reason="wrong client secret"' in line
    assert "subject" not in line
    assert "client_secret=[hidden]" in line and "refresh_token=[hidden]" in line
    assert "hunter2-value" not in line and "rt-value" not in line


async def test_a_refused_client_reads_on_the_console_with_its_reason(
    http: TestClient, new_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client, secret = await new_client(grant_types=["client_credentials"])
    assert secret is not None
    with caplog.at_level(logging.INFO):
        await http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers=basic(client.client_id, "wrong-secret-value"),
        )
    lines = {record.name: TextFormatter().format(record) for record in caplog.records}
    assert f"client_id={client.client_id} auth_method=client_secret_basic" in lines["tessera.client_auth"]
    assert 'reason="wrong client secret"' in lines["tessera.client_auth"]
    assert "method=POST route=/oauth2/token status=401 duration_ms=" in lines["tessera.access"]
    assert "wrong-secret-value" not in "".join(lines.values())


async def test_polls_and_probes_log_at_debug_and_everything_else_at_info(
    http: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The Photo Warehouse pulls /oauth2/revoked every 5 s: on a console at INFO that would be a
    line every 5 s saying nothing; its failures, and every other request, stay at INFO."""
    with caplog.at_level(logging.DEBUG, logger="tessera.access"):
        listed = await http.get("/oauth2/revoked")
        assert listed.status == 200
        unchanged = await http.get("/oauth2/revoked", headers={"If-None-Match": listed.headers["ETag"]})
        assert unchanged.status == 304
        assert (await http.get("/healthz")).status == 200
        assert (await http.get("/.well-known/oauth-authorization-server")).status == 200
        assert (await http.post("/oauth2/revoked")).status == 405
    levels = [
        (record.route, record.status, record.levelname)  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "tessera.access"
    ]
    assert levels[:4] == [
        ("/oauth2/revoked", 200, "DEBUG"),
        ("/oauth2/revoked", 304, "DEBUG"),
        ("/healthz", 200, "DEBUG"),
        ("/.well-known/oauth-authorization-server", 200, "INFO"),
    ]
    assert levels[4][1:] == (405, "INFO")
