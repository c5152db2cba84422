"""Proof Key for Code Exchange (RFC 7636), S256 only.

``plain`` is refused: it protects nothing against an attacker who can read the authorization
request (RFC 9700 §2.1.1), and refusing it leaves no downgrade path.

* At ``/authorize``, :func:`check_challenge` (run by ``check_pkce`` in ``authorization/checks.py``):
  the challenge's form, and who must send one: every public client, and every confidential one
  an operator did not relax it for.
* At ``/token``, :func:`challenge_of` turns the ``code_verifier`` into the challenge it answers
  (``grants/authorization_code.py``); that is compared with the code's challenge, together with
  the client and the redirect URI, in the one atomic step that redeems the code (the Lua script of
  ``stores/codes.py``), so a mismatch leaves the code unspent. The refusals' messages (a verifier
  missing, one where the request had no challenge, a wrong one) are ``_MISMATCH`` in
  ``grants/authorization_code.py``, the one place they are written.
"""

from __future__ import annotations

import base64
import hashlib
import re

from auth_server.clients import Client
from shared.errors import InvalidRequest

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def check_challenge(client: Client, challenge: str | None, method: str | None) -> None:
    """At /authorize: a well-formed S256 challenge, required of every client (OAuth 2.1, RFC 9700
    §2.1.1) but a confidential one an operator has relaxed it for; never of a public one."""
    if challenge is None:
        if method is not None:
            raise InvalidRequest("code_challenge_method was sent without code_challenge.")
        if client.is_public:
            raise InvalidRequest("Public clients must use PKCE: send code_challenge with method S256.")
        if client.require_pkce:
            raise InvalidRequest("This client must use PKCE: send code_challenge with method S256.")
        return
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256 (plain is not supported).")
    if not _CHALLENGE.fullmatch(challenge):
        raise InvalidRequest("code_challenge must be the 43-character base64url SHA-256 of the verifier.")


def challenge_of(verifier: str) -> str | None:
    """The S256 challenge a well-formed verifier answers (RFC 7636 §4.1, §4.6); ``None`` if malformed,
    which matches no challenge."""
    return s256(verifier) if _VERIFIER.fullmatch(verifier) else None
