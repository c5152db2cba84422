"""How TESSERA_SMTP_URL and its companions become the mail server Tessera sends through (issue 18):
STARTTLS required but on loopback, implicit TLS for smtps, credentials from the URL or the separate
settings, a password never in a repr; and sign-up refused without a mail server."""

from __future__ import annotations

import pytest

from auth_server.mail.smtp import SmtpServer
from auth_server.settings import Settings
from shared.config import ConfigError

ISSUER = "https://auth.example.com"
KEK = "q5gFjL0Vd8H0b8bJ5xO3e1iE0P6m0Q2j4cQK0Hk7zYI"


def settings(**env: str) -> Settings:
    return Settings.from_env(
        {
            "TESSERA_ISSUER": ISSUER,
            "TESSERA_KEY_ENCRYPTION_KEY": KEK,
            "TESSERA_DATABASE_URL": "postgresql://db/tessera",
            "TESSERA_REDIS_URL": "redis://redis:6379/0",
            **{f"TESSERA_{k.upper()}": v for k, v in env.items()},
        }
    )


def test_smtp_upgrades_with_starttls_which_is_required_off_loopback() -> None:
    server = SmtpServer.from_settings(settings(smtp_url="smtp://mail.example.com"))
    assert server == SmtpServer("mail.example.com", 587, implicit_tls=False, require_starttls=True)
    local = SmtpServer.from_settings(settings(smtp_url="smtp://localhost:1025"))
    assert local is not None and (local.port, local.require_starttls) == (1025, False)


def test_smtps_speaks_tls_from_the_start() -> None:
    server = SmtpServer.from_settings(settings(smtp_url="smtps://mail.example.com"))
    assert server is not None and (server.port, server.implicit_tls, server.require_starttls) == (
        465,
        True,
        False,
    )


def test_credentials_from_the_url_or_the_settings_which_win() -> None:
    in_url = SmtpServer.from_settings(
        settings(smtp_url="smtp://tessera%40example.com:p%3Ass@mail.example.com:2525")
    )
    assert in_url is not None and (in_url.username, in_url.password) == ("tessera@example.com", "p:ss")
    apart = SmtpServer.from_settings(
        settings(smtp_url="smtp://u:old@mail.example.com", smtp_username="tessera", smtp_password="s3cret")
    )
    assert apart is not None and (apart.username, apart.password) == ("tessera", "s3cret")
    assert "s3cret" not in repr(apart)


def test_no_mail_server_no_mail_and_no_sign_up() -> None:
    bare = settings()
    assert SmtpServer.from_settings(bare) is None and not bare.mail_enabled and not bare.signup
    with pytest.raises(ConfigError, match="TESSERA_SIGNUP=on needs TESSERA_SMTP_URL"):
        settings(signup="on")
    assert settings(signup="on", smtp_url="smtps://mail.example.com").signup


def test_the_sender_is_the_site_at_the_issuers_host_unless_set() -> None:
    assert settings(site_name="Photo Warehouse").mail_from == "Photo Warehouse <no-reply@auth.example.com>"
    assert settings(mail_from="照片仓库 <photos@example.com>").mail_from == "照片仓库 <photos@example.com>"
    with pytest.raises(ConfigError, match="TESSERA_MAIL_FROM must be an email address"):
        settings(mail_from="nobody")


@pytest.mark.parametrize(
    "url", ["smtp://mail.example.com/path", "smtp://mail.example.com?x=1", "http://mail"]
)
def test_a_malformed_url_is_refused_without_showing_its_password(url: str) -> None:
    with pytest.raises(ConfigError, match="TESSERA_SMTP_URL") as refused:
        settings(smtp_url=url.replace("//", "//u:hunter2@"))
    assert "hunter2" not in str(refused.value)


def test_sign_up_is_limited_to_the_domains_listed() -> None:
    assert settings(signup_email_domains="photos.example, *.school.example").signup_email_domains == (
        "photos.example",
        "*.school.example",
    )
