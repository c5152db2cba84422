"""Response modes: how the authorization endpoint answers the client (OAuth 2.0 Multiple Response
Type Encoding Practices §2.1, §5; OAuth 2.0 Form Post Response Mode; RFC 6749 §4.1.2, §4.2.2,
§4.1.2.1; RFC 9207).

Only once the redirect URI is verified does anything go back to it. ``query`` is the default of
the code flow (RFC 6749 §4.1.2); ``fragment`` that of every response type carrying a token or an ID
token (§4.2.2; Multiple Response Types §5), so that they never reach a server or a Referer header;
the query mode is refused for those. ``form_post`` (any response type, if the client asks) answers
with a page whose form posts the parameters to the redirect URI: it submits itself with the one
script the page's CSP allows (by its hash), and without JavaScript the user presses Continue.
Every answer, errors included, carries ``state`` and ``iss``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from html import escape
from typing import Literal
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from auth_server import i18n
from auth_server.pages import form_target
from shared.errors import NO_STORE, InvalidRequest, OAuthError

ResponseMode = Literal["query", "fragment", "form_post"]
RESPONSE_MODES: tuple[ResponseMode, ...] = ("query", "fragment", "form_post")

REDIRECT_HEADERS = {**NO_STORE, "Referrer-Policy": "no-referrer"}

_SUBMIT = "document.forms[0].submit()"
_SUBMIT_HASH = base64.b64encode(hashlib.sha256(_SUBMIT.encode()).digest()).decode()


def default_mode(response_type: str | None) -> ResponseMode:
    """``query`` for ``code`` (and for a response type not served, to report it); ``fragment`` for
    any response type that carries a token or an ID token (Multiple Response Types §3-5)."""
    values = set((response_type or "").split())
    return "fragment" if values & {"token", "id_token"} else "query"


def asked_mode(response_type: str | None, asked: str) -> ResponseMode:
    """The ``response_mode`` a request names, if this server has it and it may carry this answer."""
    for mode in RESPONSE_MODES:
        if mode == asked:
            if mode == "query" and default_mode(response_type) == "fragment":
                raise InvalidRequest("response_mode query cannot carry tokens: use fragment or form_post.")
            return mode
    raise InvalidRequest(f"response_mode {asked!r} is not supported; use {', '.join(RESPONSE_MODES)}.")


@dataclass(frozen=True, slots=True)
class Redirection:
    """Where, and how, answers go back to the client once the redirect URI is verified."""

    redirect_uri: str
    state: str | None
    issuer: str
    mode: ResponseMode = "query"

    def parameters(self, params: dict[str, str]) -> dict[str, str]:
        values = {**params}
        if self.state is not None:
            values["state"] = self.state
        values["iss"] = self.issuer  # RFC 9207: lets the client detect mix-up attacks
        return values

    def url(self, params: dict[str, str]) -> str:
        values = self.parameters(params)
        if self.mode == "fragment":
            return f"{self.redirect_uri}#{urlencode(values)}"
        separator = "&" if urlsplit(self.redirect_uri).query else "?"
        return f"{self.redirect_uri}{separator}{urlencode(values)}"

    def response(self, params: dict[str, str], *, status: int = 302) -> web.Response:
        if self.mode == "form_post":
            return self._form_post(params)
        return web.Response(status=status, headers={"Location": self.url(params), **REDIRECT_HEADERS})

    def error(self, error: OAuthError, *, status: int = 302) -> web.Response:
        """An error (RFC 6749 §4.1.2.1, §4.2.2.1), sent back like any answer."""
        return self.response({"error": error.error, "error_description": error.description}, status=status)

    def _form_post(self, params: dict[str, str]) -> web.Response:
        """The Form Post Response Mode's page (§2): the parameters as hidden fields of a form that
        posts to the redirect URI. Its CSP allows its own script alone, and that form target alone."""
        fields = "".join(
            f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
            for name, value in self.parameters(params).items()
        )
        # in the language of the pages before it (auth_server/i18n.py)
        carry_on, off = (
            escape(i18n.gettext("Continue")),
            escape(i18n.gettext("JavaScript is off: press Continue to go back to the app.")),
        )
        page = (
            f'<!doctype html><html lang="{i18n.current().tag}"><head><meta charset="utf-8">'
            f"<title>{carry_on}</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
            f'<body><form method="post" action="{escape(self.redirect_uri)}">{fields}'
            f"<noscript><p>{off}</p>"
            f'<button type="submit">{carry_on}</button></noscript></form>'
            f"<script>{_SUBMIT}</script></body></html>"
        )
        target = form_target(self.redirect_uri) or "'none'"
        csp = (
            f"default-src 'none'; script-src 'sha256-{_SUBMIT_HASH}'; form-action {target};"
            " frame-ancestors 'none'; base-uri 'none'"
        )
        headers = {
            **REDIRECT_HEADERS,
            "Content-Security-Policy": csp,
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
        }
        return web.Response(text=page, content_type="text/html", headers=headers)
