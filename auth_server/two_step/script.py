"""The passkey script (``passkeys.js``): inlined into the pages that need it, and allowed there by
its SHA-256 in the page's Content-Security-Policy (as the form_post page allows its one line), with
``connect-src 'self'`` for the ceremony's options. Every other page keeps ``default-src 'none'``:
no script runs on it."""

from __future__ import annotations

import base64
import hashlib
from importlib.resources import files

from aiohttp import web
from markupsafe import Markup

SOURCE = (files("auth_server.two_step") / "passkeys.js").read_text(encoding="utf-8")
SCRIPT = Markup(SOURCE)  # noqa: S704 - our own file, inlined as it is (its hash must match)
HASH = base64.b64encode(hashlib.sha256(SOURCE.encode()).digest()).decode()


def allow_script(response: web.Response) -> web.Response:
    """Let ``response``'s page run the passkey script (and fetch from this origin)."""
    csp = response.headers["Content-Security-Policy"]
    response.headers["Content-Security-Policy"] = f"{csp}; script-src 'sha256-{HASH}'; connect-src 'self'"
    return response
