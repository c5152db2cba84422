"""Sending one message over SMTP (RFC 5321) with aiosmtplib: STARTTLS (RFC 3207) or implicit TLS
(RFC 8314), and authentication when credentials are configured.

``smtp://host[:port]`` (port 587 by default) must upgrade with STARTTLS, except to a loopback host
(a relay on the same machine, or ``tessera dev``'s mail catcher), where it upgrades only if the server
offers it; ``smtps://host[:port]`` (port 465) speaks TLS from the first byte. Certificates are
always verified. The password is never logged nor shown in a ``repr``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

from auth_server.settings import Settings

SEND_TIMEOUT = 20.0  # seconds one message may take, connection included
DEFAULT_PORTS = {"smtp": 587, "smtps": 465}


class SendFailed(Exception):
    """The message was not accepted. ``permanent``: the server refused it for good (a 5xx answer to
    the sender, the recipient or the data), so trying again is pointless."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool  # smtps://
    require_starttls: bool  # smtp:// to anything but a loopback host
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpServer | None:
        """The configured server (TESSERA_SMTP_URL and its credentials), or ``None``."""
        if settings.smtp_url is None:
            return None
        parts = urlsplit(settings.smtp_url)
        assert parts.hostname is not None  # checked when the settings were read
        implicit = parts.scheme == "smtps"
        username = settings.smtp_username or (unquote(parts.username) if parts.username else None)
        password = settings.smtp_password or (unquote(parts.password) if parts.password else None)
        return cls(
            host=parts.hostname,
            port=parts.port or DEFAULT_PORTS[parts.scheme],
            implicit_tls=implicit,
            require_starttls=not implicit and not _loopback(parts.hostname),
            username=username,
            password=password,
        )

    async def send(self, message: EmailMessage) -> None:
        """Hand ``message`` to the server; :class:`SendFailed` if it is not accepted."""
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                use_tls=self.implicit_tls,
                # True: STARTTLS or fail; None: STARTTLS if the server offers it (loopback only)
                start_tls=None if self.implicit_tls else (True if self.require_starttls else None),
                username=self.username,
                password=self.password,
                timeout=SEND_TIMEOUT,
            )
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPRecipientRefused) as refused:
            codes = _codes(refused)
            raise SendFailed(
                f"the mail server refused the recipient (SMTP {', '.join(map(str, codes))})",
                permanent=bool(codes) and min(codes) >= 500,
            ) from None
        except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPDataError) as refused:
            raise SendFailed(
                f"the mail server refused the message (SMTP {refused.code})", permanent=refused.code >= 500
            ) from None
        except aiosmtplib.SMTPResponseException as error:
            raise SendFailed(f"the mail server answered SMTP {error.code}", permanent=False) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise SendFailed(
                f"the mail server could not be reached ({type(error).__name__})", permanent=False
            ) from None


def _codes(refused: aiosmtplib.SMTPRecipientsRefused | aiosmtplib.SMTPRecipientRefused) -> list[int]:
    if isinstance(refused, aiosmtplib.SMTPRecipientRefused):
        return [refused.code]
    return [r.code for r in refused.recipients]
