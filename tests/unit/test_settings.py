"""Configuration: read once from TESSERA_* variables, failing fast with the variable's name."""

from __future__ import annotations

import base64
import logging

import pytest

from auth_server import settings as settings_module
from auth_server.scopes import ADMIN_SCOPES, OPENID_SCOPES
from auth_server.settings import DEV_KEY_ENCRYPTION_KEY, Settings
from resource_server.settings import ResourceSettings
from shared.config import ConfigError, Integer, redact_url, setting, settings_class
from shared.logging import LoggingSettings

KEK = base64.b64encode(b"k" * 32).decode()
PROD = {
    "TESSERA_ISSUER": "https://auth.example.com",
    "TESSERA_DATABASE_URL": "postgresql://tessera:pw@db/tessera",
    "TESSERA_REDIS_URL": "redis://cache:6379/0",
    "TESSERA_KEY_ENCRYPTION_KEY": KEK,
}


def test_production_settings() -> None:
    settings = Settings.from_env(PROD)
    assert settings.issuer == "https://auth.example.com"
    assert settings.access_token_audience == "https://auth.example.com/api"
    assert settings.key_encryption_key == b"k" * 32
    assert settings.secure_cookies
    assert settings.code_ttl == 600


def test_development_defaults_warn_about_the_public_kek(caplog: pytest.LogCaptureFixture) -> None:
    settings_module._warn_development_kek.cache_clear()  # once per process: this test may not be first
    with caplog.at_level(logging.WARNING):
        settings = Settings.from_env({})
        Settings.from_env({})  # read again, as `tessera dev` does: no second warning
    assert caplog.text.count("PUBLIC development key-encryption key") == 1
    assert settings.issuer == "http://localhost:8000"
    assert settings.key_encryption_key == DEV_KEY_ENCRYPTION_KEY
    assert settings.database_url is None and settings.redis_url is None
    assert not settings.secure_cookies
    assert "PUBLIC development key-encryption key" in caplog.text


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"TESSERA_KEY_ENCRYPTION_KEY": ""}, "TESSERA_KEY_ENCRYPTION_KEY"),
        ({"TESSERA_KEY_ENCRYPTION_KEY": base64.b64encode(b"short").decode()}, "TESSERA_KEY_ENCRYPTION_KEY"),
        ({"TESSERA_KEY_ENCRYPTION_KEY": "%%%"}, "TESSERA_KEY_ENCRYPTION_KEY"),
        ({"TESSERA_DATABASE_URL": ""}, "TESSERA_DATABASE_URL"),
        ({"TESSERA_DATABASE_URL": "mysql://x/y"}, "TESSERA_DATABASE_URL"),
        ({"TESSERA_REDIS_URL": ""}, "TESSERA_REDIS_URL"),
        ({"TESSERA_ISSUER": "http://auth.example.com"}, "TESSERA_ISSUER"),
        ({"TESSERA_ISSUER": "https://auth.example.com/tenant?x=1"}, "TESSERA_ISSUER"),
        ({"TESSERA_ACCESS_TOKEN_TTL": "ten"}, "TESSERA_ACCESS_TOKEN_TTL"),
        ({"TESSERA_ACCESS_TOKEN_TTL": "5"}, "TESSERA_ACCESS_TOKEN_TTL"),
        ({"TESSERA_CODE_TTL": "3600"}, "TESSERA_CODE_TTL"),
        ({"TESSERA_SIGNING_ALG": "HS256"}, "TESSERA_SIGNING_ALG"),
        ({"TESSERA_SCOPES": "[1,2]"}, "TESSERA_SCOPES"),
        ({"TESSERA_ADMIN_URL": "https://admin.example.com/api"}, "TESSERA_ADMIN_URL"),
        ({"TESSERA_ADMIN_URL": "ftp://admin.example.com"}, "TESSERA_ADMIN_URL"),
    ],
)
def test_bad_settings_name_the_variable(change: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env({**PROD, **change})


def test_custom_scopes() -> None:
    settings = Settings.from_env({**PROD, "TESSERA_SCOPES": '{"read": "Read things"}'})
    # OpenID Connect's scopes are always known, beside the configured ones
    assert dict(settings.scopes) == {**OPENID_SCOPES, **ADMIN_SCOPES, "read": "Read things"}


def test_openid_scopes_cannot_be_redefined() -> None:
    with pytest.raises(ConfigError, match="openid"):
        Settings.from_env({**PROD, "TESSERA_SCOPES": '{"openid": "mine"}'})


def test_redact_url_hides_passwords() -> None:
    assert redact_url("postgresql://tessera:s3cret@db/x") == "postgresql://tessera:***@db/x"
    assert "s3cret" not in redact_url("redis://:s3cret@cache:6379")


def test_the_resource_server_trusts_a_plain_http_issuer_only_on_localhost() -> None:
    """Issue 11 review: its keys and revocation list must not come unauthenticated over a network."""
    with pytest.raises(ConfigError, match="TESSERA_ISSUER must use https"):
        ResourceSettings.from_env(
            {"TESSERA_ISSUER": "http://auth.internal:8000", "TESSERA_DATABASE_URL": "postgresql://x/y"}
        )
    assert (
        ResourceSettings.from_env({"TESSERA_ISSUER": "http://localhost:8000"}).issuer
        == "http://localhost:8000"
    )


def test_logging_settings_are_declared_like_the_others() -> None:
    assert LoggingSettings.from_env({}) == LoggingSettings(format="auto", level="INFO", access_log=True)
    quiet = LoggingSettings.from_env(
        {"TESSERA_LOG_FORMAT": "Text", "TESSERA_LOG_LEVEL": "warning", "TESSERA_ACCESS_LOG": "OFF"}
    )
    assert quiet == LoggingSettings(format="text", level="WARNING", access_log=False)
    for variable in ("TESSERA_LOG_FORMAT", "TESSERA_LOG_LEVEL", "TESSERA_ACCESS_LOG"):
        with pytest.raises(ConfigError, match=variable):
            LoggingSettings.from_env({variable: "loud"})


def test_the_resource_server_falls_back_to_the_auth_servers_database() -> None:
    shared_db = {"TESSERA_ISSUER": "https://auth.example.com", "TESSERA_DATABASE_URL": "postgresql://x/y"}
    assert ResourceSettings.from_env(shared_db).database_url == "postgresql://x/y"
    own = {**shared_db, "TESSERA_RESOURCE_DATABASE_URL": "postgresql://r/photos"}
    assert ResourceSettings.from_env(own).database_url == "postgresql://r/photos"
    with pytest.raises(ConfigError, match="TESSERA_RESOURCE_DATABASE_URL is required"):
        ResourceSettings.from_env({"TESSERA_ISSUER": "https://auth.example.com"})


def test_a_settings_field_must_be_declared() -> None:
    """A field without setting() would have no variable, rule or documentation."""
    with pytest.raises(TypeError, match="undeclared"):

        @settings_class(read_by="nobody")
        class Broken:
            declared: int = setting("DECLARED", Integer(), "A declared setting.", default=1)
            undeclared: int = 2


@pytest.mark.parametrize(
    ("change", "origin"),
    [
        ({"TESSERA_ADMIN_PORT": "9100"}, "http://127.0.0.1:9100"),
        ({"TESSERA_ADMIN_PORT": "9100", "TESSERA_ADMIN_HOST": "::1"}, "http://[::1]:9100"),
        (
            {"TESSERA_ADMIN_PORT": "9100", "TESSERA_ADMIN_HOST": "admin.internal"},
            "http://admin.internal:9100",
        ),
        # a wildcard address names no URL a caller used: DPoP is refused there until one is set
        ({"TESSERA_ADMIN_PORT": "9100", "TESSERA_ADMIN_HOST": "0.0.0.0"}, None),  # noqa: S104
        ({"TESSERA_ADMIN_PORT": "9100", "TESSERA_ADMIN_HOST": "::"}, None),
        ({"TESSERA_ADMIN_PORT": "9100", "TESSERA_ADMIN_HOST": "0"}, None),
        ({"TESSERA_ADMIN_PORT": "9100", "TESSERA_ADMIN_HOST": "::ffff:0.0.0.0"}, None),
        (
            {"TESSERA_ADMIN_HOST": "0.0.0.0", "TESSERA_ADMIN_URL": "https://admin.example.com/"},  # noqa: S104
            "https://admin.example.com",
        ),
    ],
)
def test_the_admin_apis_public_origin(change: dict[str, str], origin: str | None) -> None:
    """What DPoP proofs sent to the admin API must name (RFC 9449 ``htu``)."""
    assert settings_module.admin_origin(Settings.from_env({**PROD, **change})) == origin
