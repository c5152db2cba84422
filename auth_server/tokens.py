"""JWT access tokens (RFC 9068) and the token response (RFC 6749 §5.1).

The signing key object is loaded once per key (see :mod:`auth_server.signing`) and handed to PyJWT
as-is, so no key is re-parsed per token. Tokens are verified (introspection, revocation) by the
same :class:`shared.jwt_validation.TokenValidator` resource servers use, reading keys from the key
ring instead of a fetched JWKS: one list of checks, wherever a token is checked.

A token issued with a DPoP proof (RFC 9449 §6.1) carries ``cnf.jkt``, the thumbprint of the
proof's key, and is answered with ``token_type`` ``DPoP`` (§5); :mod:`auth_server.dpop` decides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
import orjson

from auth_server import signing
from auth_server.issued import IssuedAccess
from auth_server.signing import KeyRing
from shared.errors import InvalidToken
from shared.ids import random_id
from shared.jwt_validation import ANY_AUDIENCE, KeySource, TokenValidator


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An access token's identity and lifetime, decided before it is signed."""

    jti: str
    issued_at: int
    expires_at: int

    @property
    def record(self) -> IssuedAccess:
        return IssuedAccess(self.jti, datetime.fromtimestamp(self.expires_at, UTC))


class KeyRingKeys(KeySource):
    """The key ring as a :class:`KeySource`: every key it holds verifies, whatever its state."""

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring

    async def key(self, kid: str) -> jwt.PyJWK | None:
        return self._keyring.verification_key(kid)


class AccessTokenIssuer:
    def __init__(self, *, issuer: str, audience: str, ttl: int, keyring: KeyRing, alg: str) -> None:
        self.issuer = issuer
        self.alg = alg
        self.audience = audience
        self.ttl = ttl
        self._keyring = keyring
        # this server's own tokens: its algorithms, and no leeway (its clock signed them);
        # verified tokens are remembered until they expire. Any audience: it issues tokens for
        # every registered resource (RFC 8707); :meth:`verify` says which one a caller needs.
        self._validator = TokenValidator(
            issuer=issuer,
            audience=ANY_AUDIENCE,
            keys=KeyRingKeys(keyring),
            algorithms=signing.ALGORITHMS,
            leeway=0,
            cache_size=10_000,
        )

    def prepare(self, *, not_after: int | None = None) -> AccessToken:
        """A new token's identity, living ``ttl`` seconds, or until ``not_after`` if sooner."""
        now = int(time.time())
        expires_at = now + self.ttl if not_after is None else min(now + self.ttl, not_after)
        return AccessToken(jti=random_id(), issued_at=now, expires_at=expires_at)

    def sign(
        self,
        token: AccessToken,
        *,
        subject: str,
        client_id: str,
        scope: tuple[str, ...],
        auth_time: int | None = None,
        grant_id: str | None = None,
        userinfo_claims: tuple[str, ...] | None = None,
        audience: str | None = None,
        act: dict[str, Any] | None = None,
        jkt: str | None = None,
    ) -> str:
        """The signed token. ``grant_id`` names the refresh-token family it is issued from, so that
        revoking the family revokes it too, with one entry in the revocation list.
        ``userinfo_claims``: the claims an OpenID request asked userinfo for by name (Core §5.5).
        ``audience``: the resource it is for (RFC 8707; None: the default audience). ``act``: who
        acts for the subject (RFC 8693 §4.1), for a token issued by token exchange. ``jkt``: the
        thumbprint of the DPoP key it is bound to (RFC 9449 §6.1; None: a bearer token)."""
        key = self._keyring.active(datetime.now(UTC), self.alg)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.audience if audience is None else audience,
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
        if userinfo_claims:
            claims["userinfo_claims"] = list(userinfo_claims)
        if act is not None:
            claims["act"] = act
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}
        # the JWS layer signs the payload bytes as given: orjson serialises them in a fraction of
        # the time jwt.encode's json.dumps takes (the claims are all str and int, nothing to convert)
        return jwt.api_jws.encode(
            orjson.dumps(claims),
            key.private_key,
            algorithm=key.alg,
            headers={"kid": key.kid, "typ": "at+jwt"},
        )

    async def verify(self, token: str, *, audience: str | None) -> dict[str, Any] | None:
        """The claims of a live access token this server signed for ``audience`` (None: for any
        audience, as introspection and revocation accept), or ``None`` for anything else.

        Verified tokens are remembered until they expire (introspection asks about the same
        token again and again); revocation is the caller's check, on every use.
        """
        try:
            # however it is bound: its callers report or act on the binding, they are not its user
            claims = await self._validator.verified_claims(token)
        except InvalidToken:
            return None
        if audience is not None and claims["aud"] != audience:
            return None
        return claims


def token_response(
    access_token: str,
    ttl: int,
    scope: tuple[str, ...],
    refresh_token: str | None = None,
    token_type: str = "Bearer",  # noqa: S107 - a token type's name; "DPoP" for a bound token
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": token_type,
        "expires_in": ttl,
        "scope": " ".join(scope),
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return body
