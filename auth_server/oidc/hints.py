"""``id_token_hint`` (OpenID Connect Core §3.1.2.1; RP-Initiated Logout 1.0 §2): an ID token this
server issued, sent back by the client as a hint of who it believes is signed in.

It must carry this server's signature (a key of the ring, an ID-token algorithm; not an access or
logout token), this issuer, and the client among its audiences; it may have expired (the hint is
about who, not a credential). What it hints at is its ``sub``, as that client sees the user.
"""

from __future__ import annotations

from typing import Any

import jwt

from auth_server.registry import Registry
from auth_server.signing import ID_TOKEN_ALGORITHMS
from shared.errors import InvalidRequest

# typ values of the JWTs this server signs that are not ID tokens (RFC 9068 §2.1; Back-Channel Logout §2.4)
_NOT_ID_TOKENS = frozenset({"at+jwt", "application/at+jwt", "logout+jwt", "application/logout+jwt"})


def verify_hint(registry: Registry, token: str, client_id: str | None) -> dict[str, Any]:
    """The claims of a valid hint for ``client_id`` (None: any audience), else :class:`InvalidRequest`."""
    try:
        header = jwt.get_unverified_header(token)
        key = registry.keyring.verification_key(str(header.get("kid", "")))
        if key is None or header.get("alg") not in ID_TOKEN_ALGORITHMS:
            raise InvalidRequest("id_token_hint was not issued by this server.")
        if str(header.get("typ", "JWT")).lower() in _NOT_ID_TOKENS:
            raise InvalidRequest("id_token_hint is not an ID token.")
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=list(ID_TOKEN_ALGORITHMS),
            issuer=registry.settings.issuer,
            # what every ID token of this server has, and its signed userinfo has not (exp, auth_time)
            options={
                "verify_exp": False,
                "verify_aud": False,
                "require": ["iss", "sub", "aud", "exp", "iat", "auth_time"],
            },
        )
    except jwt.PyJWTError:
        raise InvalidRequest("id_token_hint is not a valid ID token of this server.") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if client_id is not None and client_id not in audiences:
        raise InvalidRequest("id_token_hint was issued to another client.")
    return claims
