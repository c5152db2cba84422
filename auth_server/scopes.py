"""Access token scope (RFC 6749 §3.3): parsing, and narrowing to what a client may have."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from auth_server.i18n import N_
from shared.errors import InvalidScope

if TYPE_CHECKING:  # the grants use this module, and the registry imports them
    from auth_server.registry import Registry

# The scopes of OpenID Connect Core (§3.1.2.1, §5.4, §11), known to every Tessera whatever the API
# scopes configured, with the words the consent page shows for them (translated there: N_ marks them
# for the catalogs).
OPENID_SCOPES = {
    "openid": N_("Sign you in with your account here (your account's ID)"),
    "profile": N_("See your name, nickname, profile picture, language and time zone"),
    "email": N_("See your email address"),
    "offline_access": N_("Keep access while you are away (until you take it back)"),
}

# The admin API's scopes (issue 15): known to every Tessera, registrable only by an operator (never
# by dynamic or developer registration, ``registration.check_operator_scopes``), and honoured by the
# admin API only in a token of a user who is an admin when it is used (``admin_api/auth.py``).
ADMIN_SCOPES = {
    "admin:read": N_("Read everything this server holds: clients, users, consents, keys, the audit log"),
    "admin:write": N_("Change what this server holds: review clients, manage users, consents and keys"),
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


async def for_user(registry: Registry, subject: str, scope: tuple[str, ...]) -> tuple[str, ...]:
    """``scope`` without the admin API's scopes unless the user is an admin: a client an operator
    registered with them still gets them only for a user who reviews the platform."""
    if not any(name in ADMIN_SCOPES for name in scope):
        return scope
    if await registry.users.is_admin(uuid.UUID(subject)):
        return scope
    narrowed = tuple(name for name in scope if name not in ADMIN_SCOPES)
    if not narrowed:
        raise InvalidScope("Only the platform's administrators may be granted the admin scopes.")
    return narrowed
