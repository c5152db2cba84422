"""Authenticator-app codes: TOTP (RFC 6238) with ``pyotp``, SHA-1, 6 digits, 30-second steps, as
every authenticator app reads them from the ``otpauth://`` URI (Google Authenticator's Key Uri
Format) in the QR code.

A code is accepted one step either side of now (RFC 6238 §5.2's recommended window: a phone's
clock may be off by up to half a minute either way, and typing takes time). Which step a code
belongs to is returned, so that the caller can refuse it, and every earlier step, once one has been
accepted (§5.2: a used code must not be accepted again;
:meth:`auth_server.stores.two_step.TwoStepStore.use_step`).
The three candidates are each compared in constant time, all three every time.
"""

from __future__ import annotations

import hmac
import re
import time

import pyotp
import segno

STEP = 30  # seconds (RFC 6238 §5.2's recommended time step)
DIGITS = 6
WINDOW = 1  # steps accepted either side of now
SECRET_CHARACTERS = 32  # base32: 160 bits, RFC 4226 §4's recommended length for HMAC-SHA-1
_CODE = re.compile(r"[0-9]{6}")


def new_secret() -> str:
    """A fresh seed, in base32 as authenticator apps take it typed."""
    return pyotp.random_base32(SECRET_CHARACTERS)


def shown_secret(secret: str) -> str:
    """The seed in groups of four, easier to type into an app: ``ABCD EFGH ...``."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str, *, title: str) -> str:
    """The QR code of ``uri``, as an inline SVG element (drawn here: no script, no outside service)."""
    svg: str = segno.make(uri, error="m").svg_inline(scale=5, border=4, title=title, dark="#1d2330")
    return svg


def normal_code(code: str) -> str | None:
    """A code as typed (spaces allowed: ``123 456``), or ``None`` if it cannot be one."""
    code = code.replace(" ", "").replace("\u00a0", "")
    return code if _CODE.fullmatch(code) else None


def matching_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step (RFC 6238 §4.2's T) whose code ``code`` is, within :data:`WINDOW` steps of
    ``now``; ``None`` if it is none of them. Every candidate is computed and compared."""
    typed = normal_code(code)
    if typed is None:
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP)
    current = totp.timecode(time.time() if now is None else now)
    matched = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step).encode(), typed.encode()):
            matched = step
    return matched
