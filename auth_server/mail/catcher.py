"""A real SMTP server that keeps the mail it is sent, and a page that shows it: the mail server of
``tessera dev`` (``python -m auth_server.mail.catcher``) and of the tests, so that sign-up and
password reset work end to end on a laptop, and are tested through SMTP, never a mocked sender.

It is aiosmtpd's SMTP protocol (the ``embedded`` extra) on a plain asyncio server; it accepts every
message, delivers none, and forgets everything when it stops. The page lists the messages, newest
first, and shows each one's text with its links made clickable, in the language the authorization
server's pages speak (its language cookie, which a browser sends to every port of the host, else
``Accept-Language``), with the same language switch. It listens on the loopback interface only:
never expose it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from auth_server import pages, paths
from auth_server.endpoints import language
from auth_server.pages import render

_LINK = re.compile(r"https?://[^\s<>\"']+")
WAIT = 10.0  # seconds a test waits for a mail by default


@dataclass(frozen=True, slots=True)
class Caught:
    """One message received."""

    number: int  # 1, 2, ... in the order received
    received_at: datetime
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def to(self) -> str:
        return str(self.message["To"] or ", ".join(self.rcpt_tos))

    @property
    def text(self) -> str:
        """The plain-text body."""
        part = self.message.get_body(("plain",))
        return "" if part is None else str(part.get_content())

    @property
    def links(self) -> list[str]:
        return _LINK.findall(self.text)

    def pieces(self) -> list[tuple[str, bool]]:
        """The text cut into (piece, is a link) for the page."""
        out, last = [], 0
        for match in _LINK.finditer(self.text):
            out.extend([(self.text[last : match.start()], False), (match.group(0), True)])
            last = match.end()
        out.append((self.text[last:], False))
        return out


class _Keeper:
    """aiosmtpd's handler: every message is accepted and kept."""

    def __init__(self, catcher: MailCatcher) -> None:
        self._catcher = catcher

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or envelope.content or b""
        raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        await self._catcher.keep(str(envelope.mail_from), tuple(map(str, envelope.rcpt_tos)), parsed)
        return "250 Message accepted"


class MailCatcher:
    """An SMTP server on ``host``:``port`` (0: any free port, then kept across :meth:`stop` and
    :meth:`start`, so a test can take it down and bring it back) that keeps what it is sent."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.caught: list[Caught] = []
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Condition()

    @property
    def url(self) -> str:
        """Its ``TESSERA_SMTP_URL``."""
        return f"smtp://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        keeper = _Keeper(self)
        self._server = await loop.create_server(
            lambda: SMTP(keeper, hostname="localhost", enable_SMTPUTF8=True, loop=loop),
            self.host,
            self.port,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening (connections already open finish their message)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def keep(self, mail_from: str, rcpt_tos: tuple[str, ...], message: EmailMessage) -> None:
        """Keep a message, and wake whoever waits for one."""
        async with self._arrived:
            self.caught.append(Caught(len(self.caught) + 1, datetime.now(UTC), mail_from, rcpt_tos, message))
            self._arrived.notify_all()

    def to(self, address: str) -> list[Caught]:
        """The messages sent to ``address`` (in any case), oldest first."""
        return [c for c in self.caught if address.lower() in (r.lower() for r in c.rcpt_tos)]

    async def wait_for(
        self,
        address: str,
        *,
        count: int = 1,
        within: float = WAIT,
        where: Callable[[Caught], bool] | None = None,
    ) -> Caught:
        """The ``count``-th message to ``address`` (matching ``where``), once it has arrived;
        :class:`TimeoutError` if it does not ``within`` that many seconds."""

        def found() -> list[Caught]:
            return [c for c in self.to(address) if where is None or where(c)]

        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(found()) >= count)
        return found()[count - 1]


# -- the page ---------------------------------------------------------------------------------------

CATCHER = web.AppKey("catcher", MailCatcher)


async def _list(request: web.Request) -> web.Response:
    catcher = request.app[CATCHER]
    return render("mail_catcher.html", messages=list(reversed(catcher.caught)), shown=None, smtp=catcher.url)


async def _one(request: web.Request) -> web.Response:
    catcher = request.app[CATCHER]
    number = request.match_info["number"]
    if not number.isdigit() or not 1 <= int(number) <= len(catcher.caught):
        raise web.HTTPNotFound()
    shown = catcher.caught[int(number) - 1]
    return render("mail_catcher.html", messages=list(reversed(catcher.caught)), shown=shown, smtp=catcher.url)


def page(catcher: MailCatcher) -> web.Application:
    """The page that lists what ``catcher`` caught (``/``) and shows one message (``/messages/N``)."""
    app = web.Application(middlewares=[pages.middleware])  # each page in its reader's language
    app[CATCHER] = catcher
    app.router.add_get("/", _list)
    app.router.add_get("/messages/{number}", _one)
    app.router.add_get(paths.LANGUAGE, language.switch)  # the switch every page shows

    async def running(app: web.Application) -> AsyncIterator[None]:
        await catcher.start()
        yield
        await catcher.stop()

    app.cleanup_ctx.append(running)
    return app


def main(argv: list[str] | None = None) -> None:
    """``python -m auth_server.mail.catcher``: the SMTP server and its page, until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description="A local SMTP server that shows the mail it catches.")
    parser.add_argument("--host", default="127.0.0.1", help="listen address of both (loopback only)")
    parser.add_argument("--smtp-port", type=int, default=1025, help="the SMTP port")
    parser.add_argument("--port", type=int, default=8025, help="the page's port")
    args = parser.parse_args(argv)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs each SMTP command at INFO
    web.run_app(
        page(MailCatcher(args.host, args.smtp_port)),
        host=args.host,
        port=args.port,
        print=_quiet,
        access_log=None,
    )


def _quiet(*_: Any) -> None:
    """``tessera dev``'s banner says where the page is."""


if __name__ == "__main__":
    main()
