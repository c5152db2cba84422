"""A DPoP client's key, making proofs (RFC 9449 §4.2) the way a client would, and the ways an
attacker or a broken client would not."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from shared.dpop import thumbprint, token_hash


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class DPoPKey:
    """A key pair of ``alg`` (ES256, EdDSA, RS256, PS256; ``rsa_bits`` for the RSA ones)."""

    def __init__(self, alg: str = "ES256", *, rsa_bits: int = 2048) -> None:
        self.alg = alg
        private: Any
        if alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
            self.private_jwk = json.loads(ECAlgorithm.to_jwk(private))
        elif alg == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
            self.private_jwk = json.loads(OKPAlgorithm.to_jwk(private))
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
            self.private_jwk = json.loads(RSAAlgorithm.to_jwk(private))
        self.private = private
        members = {"EC": ("kty", "crv", "x", "y"), "OKP": ("kty", "crv", "x"), "RSA": ("kty", "n", "e")}
        self.jwk: dict[str, Any] = {m: self.private_jwk[m] for m in members[self.private_jwk["kty"]]}

    @property
    def jkt(self) -> str:
        return thumbprint(self.jwk)

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        iat: float | None = None,
        jti: str | None = None,
        claims: dict[str, Any] | None = None,
        header: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        """A signed proof for a ``method`` request to ``url``; ``claims`` and ``header`` change or
        add members, ``drop`` leaves claims out."""
        payload: dict[str, Any] = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()) if iat is None else iat,
        }
        if access_token is not None:
            payload["ath"] = token_hash(access_token)
        if nonce is not None:
            payload["nonce"] = nonce
        payload.update(claims or {})
        for name in drop:
            payload.pop(name, None)
        headers = {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}
        return jwt.encode(payload, self.private, algorithm=self.alg, headers=headers)


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A JWT put together by hand: any header (``alg: none``), any signature."""
    parts = (json.dumps(header).encode(), json.dumps(payload).encode())
    return ".".join((*(_b64(p) for p in parts), _b64(signature)))
