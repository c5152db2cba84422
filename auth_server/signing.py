"""Signing keys: generation, the key ring every replica holds, and rotation (RFC 7517, RFC 7638).

The ring holds keys of each algorithm it signs with: access tokens with ``TESSERA_SIGNING_ALG``
(ES256 by default), ID tokens with the algorithm each client registered (RS256 by default, which
OpenID Connect Discovery §3 requires every provider to offer). Each algorithm's keys rotate on
their own. A key's state follows from ``activates_at`` (among its algorithm's keys) alone, so
replicas agree without coordination:

* **next** — ``activates_at`` in the future: published in the JWKS, not yet signing, so that
  resource servers' caches hold it before the first token signed with it arrives;
* **active** — the newest key whose ``activates_at`` has passed: signs every new token;
* **retired** — superseded by a newer active key: published until every token it signed has
  expired (supersession + access-token lifetime + leeway), then dropped from the JWKS.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from auth_server.crypto import KeyEncryption, UnwrapError
from auth_server.stores.keys import KeyRecord

ALGORITHMS = ("ES256", "RS256")
# what ID tokens (and signed userinfo, logout tokens) may be signed with: RS256 first, the default
ID_TOKEN_ALGORITHMS = ("RS256", "ES256")
# published a little past the last token's expiry, for clock skew at resource servers
PUBLICATION_LEEWAY = timedelta(seconds=60)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), used as the ``kid``."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def generate(alg: str, kek: KeyEncryption, activates_at: datetime) -> KeyRecord:
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif alg == "RS256":
        # 2048 bits: what relying parties expect of RS256 (and signs 3-4x faster than 3072)
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    kid = thumbprint(jwk)
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    wrapped = kek.encrypt(der, kid)
    return KeyRecord(
        kid=kid,
        alg=alg,
        public_jwk=jwk,
        private_key_encrypted=wrapped.blob,
        activates_at=activates_at,
        kek_id=wrapped.kek_id,
    )


class SigningKeyUnavailable(RuntimeError):
    """A stored private key that no configured key-encryption key opens. The message names the
    key, the KEK ids involved and the settings to fix; it never holds key material."""


def unwrap(kek: KeyEncryption, record: KeyRecord) -> tuple[bytes, str]:
    """A stored key's private DER, and the id of the key-encryption key that opened it."""
    try:
        return kek.unwrap(record.private_key_encrypted, record.kid, record.kek_id)
    except UnwrapError as error:
        raise SigningKeyUnavailable(
            f"signing key {record.kid} cannot be decrypted: {error.reason}. Configure the"
            " key-encryption key it was wrapped under, as TESSERA_KEY_ENCRYPTION_KEY or in"
            " TESSERA_KEY_ENCRYPTION_KEYS_PREVIOUS"
        ) from None


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    public_jwk: dict[str, Any]
    activates_at: datetime


@dataclass(frozen=True, slots=True)
class KeyStatus:
    kid: str
    alg: str
    state: str  # next | active | retired | expired
    activates_at: datetime
    published_until: datetime | None


class KeyRing:
    """The keys one replica holds in memory, decrypted once each; swapped whole on reload."""

    def __init__(self, kek: KeyEncryption, access_token_ttl: int) -> None:
        self._kek = kek
        self._token_ttl = timedelta(seconds=access_token_ttl)
        self._keys: tuple[SigningKey, ...] = ()
        self._verification: dict[str, jwt.PyJWK] = {}  # by kid: the public keys, parsed once each

    def load(self, records: list[KeyRecord]) -> None:
        """Hold exactly these keys; raises :class:`SigningKeyUnavailable` (and keeps the keys it
        held) if one cannot be decrypted. A key already held is not decrypted again."""
        known = {k.kid: k for k in self._keys}
        keys = []
        for record in sorted(records, key=lambda r: (r.activates_at, r.kid)):
            key = known.get(record.kid)
            if key is None:
                der, _ = unwrap(self._kek, record)
                private = serialization.load_der_private_key(der, password=None)
                if not isinstance(private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
                    raise ValueError(f"signing key {record.kid} is neither EC nor RSA")
                key = SigningKey(record.kid, record.alg, private, record.public_jwk, record.activates_at)
            keys.append(key)
        parsed = self._verification
        self._verification = {
            k.kid: parsed.get(k.kid) or jwt.PyJWK(k.public_jwk, algorithm=k.alg) for k in keys
        }
        self._keys = tuple(keys)

    def active(self, now: datetime, alg: str | None = None) -> SigningKey:
        """The key that signs with ``alg`` now: the newest of its keys whose activation time has
        passed (``alg=None``: of any algorithm)."""
        current = None
        for key in self._keys:
            if key.activates_at <= now and (alg is None or key.alg == alg):
                current = key
        if current is None:
            raise LookupError(f"no active {alg or ''} signing key".replace("  ", " "))
        return current

    def algorithms(self, now: datetime) -> tuple[str, ...]:
        """The algorithms the ring can sign with now."""
        return tuple(dict.fromkeys(k.alg for k in self._keys if k.activates_at <= now))

    def verification_key(self, kid: str) -> jwt.PyJWK | None:
        """The public key with this ``kid``, to check a token Tessera signed (whatever the key's
        state): parsed when the key was loaded, not per call."""
        return self._verification.get(kid)

    def statuses(self, now: datetime) -> list[KeyStatus]:
        out = []
        for key in self._keys:
            same_alg = [k for k in self._keys if k.alg == key.alg]
            index = same_alg.index(key)
            successor = same_alg[index + 1] if index + 1 < len(same_alg) else None
            active = self.active(now, key.alg) if any(k.activates_at <= now for k in same_alg) else None
            if key.activates_at > now:
                state, until = "next", None
            elif key is active:
                state, until = "active", None
            else:
                assert successor is not None
                until = successor.activates_at + self._token_ttl + PUBLICATION_LEEWAY
                state = "retired" if until > now else "expired"
            out.append(KeyStatus(key.kid, key.alg, state, key.activates_at, until))
        return out

    def jwks(self, now: datetime) -> dict[str, list[dict[str, Any]]]:
        """RFC 7517 key set of every public key that is, will be, or was recently signing."""
        published = {s.kid for s in self.statuses(now) if s.state != "expired"}
        return {"keys": [k.public_jwk for k in self._keys if k.kid in published]}
