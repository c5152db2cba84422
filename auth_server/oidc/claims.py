"""Which of a user's claims a client may see, and where (OpenID Connect Core §5).

Scopes ask for groups of claims (§5.4): ``profile`` and ``email``. The ``claims`` request parameter
(§5.5) asks for single claims, in the ID token or at userinfo, some of them *essential*. Tessera
releases a requested claim only under a scope the user granted: a claim asked for by name brings
its scope into the request (if the client may have it), so the consent page names it, as a scope
does. Scope claims go to userinfo, or into the ID token when no access token is issued to fetch
them with (``response_type=id_token``, §5.4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from auth_server.stores.users import Profile
from shared.errors import InvalidRequest

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "nickname", "preferred_username", "picture", "locale", "zoneinfo", "updated_at"),
    "email": ("email", "email_verified"),
}
# the scope that releases each claim
CLAIM_SCOPE = {claim: scope for scope, claims in SCOPE_CLAIMS.items() for claim in claims}
# claims about the authentication itself, always in the ID token where they apply (§2)
ID_TOKEN_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid")
ID_TOKEN_HASHES = ("at_hash", "c_hash")
CLAIMS_SUPPORTED = (*ID_TOKEN_CLAIMS, *ID_TOKEN_HASHES, *CLAIM_SCOPE)
TARGETS = ("userinfo", "id_token")
MAX_CLAIMS_REQUEST = 4096  # characters of a ``claims`` parameter


@dataclass(frozen=True, slots=True)
class ClaimsRequest:
    """The ``claims`` parameter (§5.5): the claims asked for by name, for each target."""

    userinfo: dict[str, Any]
    id_token: dict[str, Any]

    @classmethod
    def parse(cls, value: str | None) -> ClaimsRequest | None:
        if value is None:
            return None
        if len(value) > MAX_CLAIMS_REQUEST:
            raise InvalidRequest(f"claims is longer than {MAX_CLAIMS_REQUEST} characters.")
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            raise InvalidRequest("claims must be a JSON object (OpenID Connect Core §5.5).") from None
        if not isinstance(parsed, dict):
            raise InvalidRequest("claims must be a JSON object (OpenID Connect Core §5.5).")
        members: dict[str, dict[str, Any]] = {}
        for target in TARGETS:
            requested = parsed.get(target, {})
            if not isinstance(requested, dict) or not all(
                spec is None or isinstance(spec, dict) for spec in requested.values()
            ):
                raise InvalidRequest(f"claims.{target} must map claim names to null or an object (§5.5.1).")
            members[target] = requested
        return cls(**members)

    def serialize(self) -> str:
        return json.dumps({"userinfo": self.userinfo, "id_token": self.id_token}, separators=(",", ":"))

    def scopes(self) -> set[str]:
        """The scopes that release the claims asked for by name."""
        names = {*self.userinfo, *self.id_token}
        return {CLAIM_SCOPE[name] for name in names if name in CLAIM_SCOPE}

    def essential(self, target: str, name: str) -> bool:
        spec = getattr(self, target).get(name)
        return isinstance(spec, dict) and spec.get("essential") is True


def released(
    scope: tuple[str, ...], claims: ClaimsRequest | None, target: str, *, scope_claims_here: bool
) -> tuple[str, ...]:
    """The profile claims ``target`` carries: those of the granted scopes if ``scope_claims_here``,
    and those asked for by name for ``target`` whose scope was granted."""
    names: list[str] = []
    if scope_claims_here:
        names += [claim for s in scope for claim in SCOPE_CLAIMS.get(s, ())]
    if claims is not None:
        names += [name for name in getattr(claims, target) if CLAIM_SCOPE.get(name) in scope]
    return tuple(dict.fromkeys(names))


def values(profile: Profile, names: tuple[str, ...]) -> dict[str, Any]:
    """The user's values of ``names``; a claim without a value is left out (§5.3.2)."""
    available: dict[str, Any] = {
        "name": profile.name,
        "nickname": profile.nickname,
        "preferred_username": profile.username,
        "picture": profile.picture,
        "locale": profile.locale,
        "zoneinfo": profile.zoneinfo,
        "updated_at": int(profile.updated_at.timestamp()),
        "email": profile.email,
        "email_verified": profile.email_verified if profile.email is not None else None,
    }
    return {name: available[name] for name in names if available.get(name) is not None}


def userinfo_claims(serialized: str | None) -> tuple[str, ...] | None:
    """The claims a serialized ``claims`` request asks userinfo for by name (carried by the access
    token, which userinfo answers for); None when none are."""
    request = ClaimsRequest.parse(serialized)
    if request is None:
        return None
    known = tuple(name for name in request.userinfo if name in CLAIM_SCOPE)
    return known or None
