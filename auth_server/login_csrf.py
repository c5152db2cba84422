"""The login form's CSRF token, kept in no store (signed double-submit, OWASP CSRF Cheat Sheet).

A visitor who is not signed in has no session, and the login page creates none: a flood of page
views must not fill Redis, where codes and deny-lists live. Instead the page sets a cookie holding a
random nonce, and the form carries ``<issued_at>.<MAC>``: an HMAC-SHA256 of the issue time and the
nonce under a server key that every replica derives from the key-encryption key. A cross-site form
can neither read the cookie nor compute the MAC; the ``__Host-`` prefix (on https) keeps a sibling
subdomain from planting a cookie of its own. The issue time is inside the MAC, so a (cookie, token)
pair stops working ``MAX_AGE`` seconds after the page was served, whatever the browser keeps; a
token dated more than ``CLOCK_SKEW`` seconds ahead of this replica's clock is refused too.

In development the key-encryption key is the published development key
(``auth_server.settings.DEV_KEY_ENCRYPTION_KEY``), so anyone can compute these tokens: the protection means
something only with a real key, which every issuer but ``http://localhost`` must have.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

from aiohttp import web

from auth_server.appkeys import REGISTRY
from auth_server.crypto import new_token

MAX_AGE = 3600  # seconds a login form may stay open
CLOCK_SKEW = 60  # seconds a token may seem to come from the future (another replica's clock)
_LABEL = b"tessera login form CSRF v2"
_ISSUED_AT = re.compile(r"[0-9]{1,12}")  # whole seconds since the epoch, ASCII digits only


def cookie_name(request: web.Request) -> str:
    return "__Host-tessera_login" if request.app[REGISTRY].settings.secure_cookies else "tessera_login"


def signing_key(key_encryption_key: bytes) -> bytes:
    """The MAC key, derived from the key-encryption key (a key of its own, for this use only)."""
    return hmac.new(key_encryption_key, _LABEL, hashlib.sha256).digest()


def form_token(key: bytes, nonce: str, issued_at: int) -> str:
    """The form token for this cookie nonce, issued at ``issued_at`` (seconds since the epoch)."""
    # the issue time is digits only, so the first dot ends it: no two (time, nonce) pairs share a message
    message = f"{issued_at}.{nonce}".encode("utf-8", "surrogatepass")
    mac = hmac.new(key, message, hashlib.sha256).digest()
    return f"{issued_at}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _key(request: web.Request) -> bytes:
    return signing_key(request.app[REGISTRY].settings.key_encryption_key)


def token(request: web.Request) -> tuple[str, str]:
    """The visitor's nonce (reused, or a new one) and a form token issued now that goes with it."""
    nonce = request.cookies.get(cookie_name(request)) or new_token()
    return nonce, form_token(_key(request), nonce, int(time.time()))


def set_cookie(request: web.Request, response: web.StreamResponse, nonce: str) -> None:
    response.set_cookie(
        cookie_name(request),
        nonce,
        max_age=MAX_AGE,
        path="/",
        secure=request.app[REGISTRY].settings.secure_cookies,
        httponly=True,
        samesite="Lax",
    )


def matches(request: web.Request, presented: str) -> bool:
    """Whether ``presented`` is a token for this visitor's cookie, issued within the last MAX_AGE."""
    nonce = request.cookies.get(cookie_name(request))
    if not nonce:
        return False
    issued, _, _ = presented.partition(".")
    if not _ISSUED_AT.fullmatch(issued):
        return False
    issued_at = int(issued)
    expected = form_token(_key(request), nonce, issued_at).encode()
    if not hmac.compare_digest(expected, presented.encode("utf-8", "surrogatepass")):
        return False
    now = time.time()
    return now - MAX_AGE <= issued_at <= now + CLOCK_SKEW


def forget(request: web.Request, response: web.StreamResponse) -> None:
    settings = request.app[REGISTRY].settings
    response.del_cookie(cookie_name(request), path="/", secure=settings.secure_cookies, httponly=True)
