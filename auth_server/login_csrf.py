"""The login form's CSRF token, kept in no store (signed double-submit, OWASP CSRF Cheat Sheet).

A visitor who is not signed in has no session, and the login page creates none: a flood of page
views must not fill Redis, where codes and deny-lists live. Instead the page sets a cookie holding a
random nonce, and the form carries an HMAC of that nonce under a server key that every replica
derives from the key-encryption key. A cross-site form can neither read the cookie nor compute the
HMAC; the ``__Host-`` prefix (on https) keeps a sibling subdomain from planting a cookie of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from aiohttp import web

from auth_server.appkeys import REGISTRY
from auth_server.crypto import new_token

MAX_AGE = 3600  # seconds a login form may stay open
_LABEL = b"tessera login form CSRF v1"


def cookie_name(request: web.Request) -> str:
    return "__Host-tessera_login" if request.app[REGISTRY].settings.secure_cookies else "tessera_login"


def _token(request: web.Request, nonce: str) -> str:
    key = hmac.new(request.app[REGISTRY].settings.key_encryption_key, _LABEL, hashlib.sha256).digest()
    mac = hmac.new(key, nonce.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def token(request: web.Request) -> tuple[str, str]:
    """The visitor's nonce (reused, or a new one) and the form token that goes with it."""
    nonce = request.cookies.get(cookie_name(request)) or new_token()
    return nonce, _token(request, nonce)


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
    nonce = request.cookies.get(cookie_name(request))
    if not nonce:
        return False
    expected = _token(request, nonce).encode()
    return hmac.compare_digest(expected, presented.encode("utf-8", "surrogatepass"))


def forget(request: web.Request, response: web.StreamResponse) -> None:
    settings = request.app[REGISTRY].settings
    response.del_cookie(cookie_name(request), path="/", secure=settings.secure_cookies, httponly=True)
