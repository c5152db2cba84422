"""Response modes: how the authorization endpoint answers the client (OAuth 2.0 Multiple Response
Type Encoding Practices §2.1; RFC 6749 §4.1.2, §4.2.2, §4.1.2.1; RFC 9207).

Only once the redirect URI is verified does anything go back to it. ``query`` is the code flow's
mode (RFC 6749 §4.1.2); ``fragment`` the implicit flow's (§4.2.2), so that the token never reaches
a server or a Referer header. Each grant declares the mode of the response types it serves
(``grants/base.py``). Every answer, errors included, carries ``state`` and ``iss``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from shared.errors import NO_STORE, OAuthError

ResponseMode = Literal["query", "fragment"]

REDIRECT_HEADERS = {**NO_STORE, "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True, slots=True)
class Redirection:
    """Where, and how, answers go back to the client once the redirect URI is verified."""

    redirect_uri: str
    state: str | None
    issuer: str
    mode: ResponseMode = "query"

    def url(self, params: dict[str, str]) -> str:
        values = {**params}
        if self.state is not None:
            values["state"] = self.state
        values["iss"] = self.issuer  # RFC 9207: lets the client detect mix-up attacks
        if self.mode == "fragment":
            return f"{self.redirect_uri}#{urlencode(values)}"
        separator = "&" if urlsplit(self.redirect_uri).query else "?"
        return f"{self.redirect_uri}{separator}{urlencode(values)}"

    def response(self, params: dict[str, str], *, status: int = 302) -> web.Response:
        return web.Response(status=status, headers={"Location": self.url(params), **REDIRECT_HEADERS})

    def error(self, error: OAuthError, *, status: int = 302) -> web.Response:
        """An error (RFC 6749 §4.1.2.1, §4.2.2.1), sent back like any answer."""
        return self.response({"error": error.error, "error_description": error.description}, status=status)
