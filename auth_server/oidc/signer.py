"""JWTs the OpenID Provider signs for clients: ID tokens, signed userinfo, logout tokens.

Signed with the key ring's active key of the algorithm the client registered (RS256 unless it
chose ES256; ``signing.ID_TOKEN_ALGORITHMS``), each carrying the ``kid`` clients find in the JWKS.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jwt
import orjson

from auth_server.signing import KeyRing


def sign(keyring: KeyRing, claims: dict[str, Any], *, alg: str, typ: str = "JWT") -> str:
    """``claims`` as a JWS signed with the active ``alg`` key."""
    key = keyring.active(datetime.now(UTC), alg)
    return jwt.api_jws.encode(
        orjson.dumps(claims), key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": typ}
    )
