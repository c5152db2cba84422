"""The mails Tessera writes: plain text from ``templates/emails/<name>.txt``, whose ``subject``
block is the subject line and whose ``body`` block (inside ``emails/base.txt``) the text. Every word
a person reads is in the templates, where it is translated.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit

import jinja2

from auth_server import i18n, paths
from auth_server.settings import Settings

# plain text: nothing is HTML-escaped (nothing is rendered as HTML either); in the language in
# force (the outbox sets the recipient's: auth_server/i18n.py), a {% trans %} block's line breaks kept
_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("auth_server", "templates"),
    autoescape=False,  # noqa: S701
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    extensions=["jinja2.ext.i18n"],
)
_templates.install_gettext_callables(  # type: ignore[attr-defined]
    i18n.gettext, i18n.ngettext, newstyle=True, pgettext=i18n.pgettext, npgettext=i18n.npgettext
)


def render(name: str, **context: Any) -> tuple[str, str]:
    """The subject and the text of mail ``name``."""
    template = _templates.get_template(f"emails/{name}.txt")
    subject = "".join(template.blocks["subject"](template.new_context(context))).strip()
    text = template.render(**context).strip() + "\n"
    return " ".join(subject.split()), text


def message(settings: Settings, to: str, name: str, **context: Any) -> EmailMessage:
    """Mail ``name`` to ``to``, from TESSERA_MAIL_FROM, written with the site's name and URL."""
    subject, text = render(name, site_name=settings.site_name, issuer=settings.issuer, paths=paths, **context)
    mail = EmailMessage()
    mail["From"] = settings.mail_from
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = make_msgid(domain=urlsplit(settings.issuer).hostname or "localhost")
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to this
    mail.set_content(text)
    return mail
