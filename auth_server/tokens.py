"""JWT access tokens (RFC 9068) and the token response (RFC 6749 §5.1).

The signing key object is loaded once per key (see :mod:`auth_server.signing`) and handed to PyJWT
as-is, so no key is re-parsed per token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
import orjson

from auth_server.signing import KeyRing
from auth_server.stores.refresh_tokens import IssuedAccess
from shared.ids import random_id
from shared.token_cache import VerifiedTokens, fingerprint


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An access token's identity and lifetime, decided before it is signed."""

    jti: str
    issued_at: int
    expires_at: int

    @property
    def record(self) -> IssuedAccess:
        return IssuedAccess(self.jti, datetime.fromtimestamp(self.expires_at, UTC))


class AccessTokenIssuer:
    def __init__(self, *, issuer: str, audience: str, ttl: int, keyring: KeyRing) -> None:
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self._keyring = keyring
        self._verified = VerifiedTokens(10_000)

    def prepare(self) -> AccessToken:
        now = int(time.time())
        return AccessToken(jti=random_id(), issued_at=now, expires_at=now + self.ttl)

    def sign(
        self,
        token: AccessToken,
        *,
        subject: str,
        client_id: str,
        scope: tuple[str, ...],
        auth_time: int | None = None,
        grant_id: str | None = None,
    ) -> str:
        """The signed token. ``grant_id`` names the refresh-token family it is issued from, so that
        revoking the family revokes it too, with one entry in the revocation list."""
        key = self._keyring.active(datetime.now(UTC))
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.audience,
            "client_id": client_id,
            "scope": " ".join(scope),
            "iat": token.issued_at,
            "exp": token.expires_at,
            "jti": token.jti,
        }
        if auth_time is not None:
            claims["auth_time"] = auth_time
        if grant_id is not None:
            claims["grant_id"] = grant_id
        # the JWS layer signs the payload bytes as given: orjson serialises them in a fraction of
        # the time jwt.encode's json.dumps takes (the claims are all str and int, nothing to convert)
        return jwt.api_jws.encode(
            orjson.dumps(claims),
            key.private_key,
            algorithm=key.alg,
            headers={"kid": key.kid, "typ": "at+jwt"},
        )

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a live access token this server signed, or ``None`` for anything else.

        Verified tokens are remembered until they expire (introspection asks about the same
        token again and again); revocation is the caller's check, on every use.
        """
        key = fingerprint(token)
        cached = self._verified.get(key)
        if cached is not None:
            return cached
        claims = self._verify(token)
        if claims is not None:
            self._verified.put(key, claims, until=float(claims["exp"]))
        return claims

    def _verify(self, token: str) -> dict[str, Any] | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        kid = header.get("kid")
        key = self._keyring.verification_key(kid) if isinstance(kid, str) else None
        if key is None or header.get("typ") != "at+jwt" or header.get("alg") != key.alg:
            return None
        if "crit" in header:  # RFC 7515 §4.1.11: Tessera signs with no extension and understands none
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=[key.alg],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]},
            )
        except jwt.PyJWTError:
            return None
        return claims


def token_response(
    access_token: str,
    ttl: int,
    scope: tuple[str, ...],
    refresh_token: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": " ".join(scope),
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return body
