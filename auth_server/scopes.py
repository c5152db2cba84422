"""Access token scope (RFC 6749 §3.3): parsing, and narrowing to what a client may have."""

from __future__ import annotations

import re

from shared.errors import InvalidScope

# The scopes of OpenID Connect Core (§3.1.2.1, §5.4, §11), known to every Tessera whatever the API
# scopes configured, with the words the consent page shows for them.
OPENID_SCOPES = {
    "openid": "Sign you in with your account here (your account's ID)",
    "profile": "See your name, nickname, profile picture, language and time zone",
    "email": "See your email address",
    "offline_access": "Keep access while you are away (until you take it back)",
}

# The admin API's scopes (issue 15): known to every Tessera, registrable only by an operator (never
# by dynamic or developer registration, ``registration.check_operator_scopes``), and honoured by the
# admin API only in a token of a user who is an admin when it is used (``admin_api/auth.py``).
ADMIN_SCOPES = {
    "admin:read": "Read everything this server holds: clients, users, consents, keys, the audit log",
    "admin:write": "Change what this server holds: review clients, manage users, consents and keys",
}

_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


def parse(value: str | None) -> tuple[str, ...] | None:
    """A space-delimited scope string as an ordered tuple without duplicates; ``None`` if absent."""
    if value is None:
        return None
    tokens = value.split(" ")
    if any(not _SCOPE_TOKEN.fullmatch(t) for t in tokens if t) or not any(tokens):
        raise InvalidScope("scope must be space-separated scope tokens (RFC 6749 §3.3).")
    return tuple(dict.fromkeys(t for t in tokens if t))


def resolve(requested: tuple[str, ...] | None, allowed: tuple[str, ...], known: set[str]) -> tuple[str, ...]:
    """Requested ∩ allowed; the client's registered scope when none is requested.

    An unknown scope is an error; a known one the client may not have is dropped (the response's
    ``scope`` then tells the client what it got). Nothing left is an error too.
    """
    if requested is None:
        granted = allowed
    else:
        unknown = [s for s in requested if s not in known]
        if unknown:
            raise InvalidScope(f"Unknown scope: {' '.join(unknown)}.")
        granted = tuple(s for s in requested if s in allowed)
    if not granted:
        raise InvalidScope("None of the requested scopes is allowed for this client.")
    return granted
