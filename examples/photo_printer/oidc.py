"""The Photo Printer as an OpenID Connect relying party: discovery, the provider's keys, and the
checks of ID tokens (Core §3.1.3.7) and back-channel logout tokens (Back-Channel Logout §2.6).

Nothing here is specific to Tessera: any OpenID Provider's issuer URL will do. Tokens are never
logged, nor put in an exception's message.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt

DISCOVERY_PATH = "/.well-known/openid-configuration"
# asymmetric algorithms only: never "none", never HMAC (the client secret is no signing key here)
ALLOWED_ALGS = ("RS256", "PS256", "ES256")
LEEWAY = 60  # seconds of clock skew tolerated on exp and iat
KEY_REFETCH_INTERVAL = 10.0  # an unknown kid refetches the JWKS at most this often
MAX_DOCUMENT_BYTES = 256 * 1024
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPES = ("logout+jwt", "application/logout+jwt")


class MetadataError(RuntimeError):
    """The provider's discovery document is unusable, or belongs to another issuer."""


class TokenInvalid(ValueError):
    """An ID token or logout token was refused; the message says why, never what the token was."""


def check_url(name: str, value: str) -> str:
    """``value`` if it is an absolute http(s) URL without a fragment."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
        raise ValueError(f"{name} must be an absolute http(s) URL without a fragment, not {value!r}")
    return value


def discovery_url(issuer: str) -> str:
    """OpenID Connect Discovery §4: the well-known path is appended to the issuer, path and all."""
    return issuer.rstrip("/") + DISCOVERY_PATH


async def get_json(http: aiohttp.ClientSession, url: str, headers: Mapping[str, str] | None = None) -> Any:
    """GET ``url`` and parse its JSON body (at most :data:`MAX_DOCUMENT_BYTES`); no redirects."""
    async with http.get(url, headers=headers, allow_redirects=False) as response:
        if response.status != 200:
            raise ValueError(f"{url} answered {response.status}")
        body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
    return json.loads(body)


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """What the printer uses of the discovery document, checked."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    revocation_endpoint: str | None
    iss_parameter_supported: bool
    id_token_algs: tuple[str, ...]

    @classmethod
    def parse(cls, document: Any, expected_issuer: str) -> ProviderMetadata:
        if not isinstance(document, dict):
            raise MetadataError("the discovery document is not a JSON object")
        if document.get("issuer") != expected_issuer:
            # Discovery §4.3: otherwise another server could pass its endpoints off as the issuer's
            raise MetadataError(
                f"the discovery document names issuer {document.get('issuer')!r}, not {expected_issuer!r}"
            )

        def endpoint(name: str, *, required: bool = True) -> str | None:
            value = document.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str):
                raise MetadataError(f"the discovery document has no {name}")
            try:
                return check_url(name, value)
            except ValueError as error:
                raise MetadataError(str(error)) from None

        def listed(name: str, default: list[str]) -> list[Any]:
            value = document.get(name, default)
            return value if isinstance(value, list) else []

        if "code" not in listed("response_types_supported", []):
            raise MetadataError("the provider does not offer the authorization-code flow")
        if "S256" not in listed("code_challenge_methods_supported", []):
            raise MetadataError("the provider does not support PKCE with S256")
        # Discovery §3: when absent, the default is client_secret_basic
        if "client_secret_basic" not in listed(
            "token_endpoint_auth_methods_supported", ["client_secret_basic"]
        ):
            raise MetadataError("the provider does not accept client_secret_basic")
        offered = listed("id_token_signing_alg_values_supported", [])
        algs = tuple(alg for alg in ALLOWED_ALGS if alg in offered)
        if not algs:
            raise MetadataError(f"the provider signs ID tokens with none of {', '.join(ALLOWED_ALGS)}")
        required = {name: endpoint(name) for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")}
        return cls(
            issuer=expected_issuer,
            authorization_endpoint=str(required["authorization_endpoint"]),
            token_endpoint=str(required["token_endpoint"]),
            jwks_uri=str(required["jwks_uri"]),
            userinfo_endpoint=endpoint("userinfo_endpoint", required=False),
            end_session_endpoint=endpoint("end_session_endpoint", required=False),
            revocation_endpoint=endpoint("revocation_endpoint", required=False),
            iss_parameter_supported=document.get("authorization_response_iss_parameter_supported") is True,
            id_token_algs=algs,
        )


async def discover(http: aiohttp.ClientSession, issuer: str) -> ProviderMetadata:
    """Fetch and check the issuer's discovery document."""
    url = discovery_url(issuer)
    try:
        document = await get_json(http, url)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        raise MetadataError(f"could not read {url}: {error}") from None
    return ProviderMetadata.parse(document, issuer)


class KeySet:
    """The provider's JWKS, fetched from ``jwks_uri`` when first needed and again when a token names
    a key it does not hold (a rotation), at most once every :data:`KEY_REFETCH_INTERVAL` seconds."""

    def __init__(self, http: aiohttp.ClientSession, jwks_uri: str) -> None:
        self._http, self._jwks_uri = http, jwks_uri
        self._keys: list[dict[str, Any]] = []
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The signing key named ``kid`` (or the only one, if the token names none) usable with ``alg``."""
        key = self._find(kid, alg)
        if key is None and await self._refetch():
            key = self._find(kid, alg)
        if key is None:
            raise TokenInvalid("no key of the provider's JWKS matches the token's kid and alg")
        return key

    def _find(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        candidates = [
            k
            for k in self._keys
            if k.get("use", "sig") == "sig"
            and k.get("alg", alg) == alg
            and (kid is None or k.get("kid") == kid)
        ]
        if len(candidates) != 1:  # Core §10.1: with several keys, the token must name one
            return None
        try:
            return jwt.PyJWK(candidates[0], algorithm=alg)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            return None  # a key of another type than alg needs, or a malformed one

    async def _refetch(self) -> bool:
        """Fetch the JWKS unless it was fetched recently; whether it was."""
        async with self._lock:
            now = time.monotonic()
            if self._fetched_at is not None and now - self._fetched_at < KEY_REFETCH_INTERVAL:
                return False
            self._fetched_at = now
            try:
                document = await get_json(self._http, self._jwks_uri)
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                raise TokenInvalid(f"the provider's keys could not be fetched ({error})") from None
            keys = document.get("keys") if isinstance(document, dict) else None
            if not isinstance(keys, list):
                raise TokenInvalid("the provider's JWKS has no keys list")
            self._keys = [k for k in keys if isinstance(k, dict)]
            return True


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as error:  # not a JWS, or one with a "crit" PyJWT does not know
        raise TokenInvalid(str(error)) from None


async def _verified_claims(
    token: str,
    *,
    keys: KeySet,
    metadata: ProviderMetadata,
    client_id: str,
    required: list[str],
) -> tuple[str, dict[str, Any]]:
    """The token's alg and its claims, once its signature, ``iss``, ``aud``, ``exp`` and ``iat`` pass."""
    header = _header(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in metadata.id_token_algs:
        raise TokenInvalid(f"signed with {alg!r}, not an allowed algorithm")
    if "crit" in header:
        raise TokenInvalid("the token has critical header parameters this client does not understand")
    kid = header.get("kid")
    key = await keys.key_for(kid if isinstance(kid, str) else None, alg)
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            audience=client_id,
            issuer=metadata.issuer,
            leeway=LEEWAY,
            options={"require": required},
        )
    except jwt.InvalidTokenError as error:
        raise TokenInvalid(str(error)) from None
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and "azp" not in claims:
        raise TokenInvalid("several audiences but no azp")  # Core §3.1.3.7, item 4
    if "azp" in claims and claims["azp"] != client_id:
        raise TokenInvalid("azp is another client")
    return alg, claims


def token_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash`` (Core §3.1.3.6): the left half of the hash ``alg`` uses, base64url."""
    digest = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}[alg[-3:]]
    half = digest(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(half[: len(half) // 2]).rstrip(b"=").decode("ascii")


def _same(a: Any, b: str) -> bool:
    return isinstance(a, str) and secrets.compare_digest(a.encode(), b.encode())


async def verify_id_token(
    token: str,
    *,
    keys: KeySet,
    metadata: ProviderMetadata,
    client_id: str,
    nonce: str,
    access_token: str,
) -> dict[str, Any]:
    """The claims of an ID token from the token endpoint, checked as Core §3.1.3.7 asks."""
    alg, claims = await _verified_claims(
        token, keys=keys, metadata=metadata, client_id=client_id, required=["iss", "sub", "aud", "exp", "iat"]
    )
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise TokenInvalid("sub is not a string")
    if not _same(claims.get("nonce"), nonce):
        raise TokenInvalid("nonce is not the one sent")  # a replayed or injected ID token
    if "at_hash" in claims and not _same(claims["at_hash"], token_hash(access_token, alg)):
        raise TokenInvalid("at_hash does not match the access token")
    return claims


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    """Whose sessions a logout token ends: the session ``sid``, or every session of ``sub``."""

    sub: str | None
    sid: str | None


async def verify_logout_token(
    token: str, *, keys: KeySet, metadata: ProviderMetadata, client_id: str
) -> LogoutRequest:
    """A back-channel logout token, checked as Back-Channel Logout §2.6 asks."""
    typ = _header(token).get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in LOGOUT_TOKEN_TYPES):
        raise TokenInvalid(f"typ {typ!r} is not logout+jwt")
    _, claims = await _verified_claims(
        token, keys=keys, metadata=metadata, client_id=client_id, required=["iss", "aud", "iat", "exp", "jti"]
    )
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
        raise TokenInvalid("events has no back-channel logout event")
    if "nonce" in claims:
        raise TokenInvalid("a logout token carries no nonce")  # so an ID token cannot pass for one
    request = LogoutRequest(sub=_nonempty(claims.get("sub")), sid=_nonempty(claims.get("sid")))
    if request.sub is None and request.sid is None:
        raise TokenInvalid("neither sub nor sid")
    return request


def _nonempty(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
