"""Local validation of Tessera's JWT access tokens (RFC 9068, RFC 8725), for any resource server.

Framework-free core, plus a thin aiohttp layer at the bottom::

    keys = JWKSKeySource(issuer="https://auth.example.com")            # discovers jwks_uri (RFC 8414)
    validator = TokenValidator(issuer="https://auth.example.com", audience="https://auth.example.com/api",
                               keys=keys)
    app = web.Application(middlewares=[error_middleware()])             # RFC 6750 error responses
    app[VALIDATOR] = validator
    app.cleanup_ctx.append(keys.cleanup_ctx)                            # background refresh

    @require_scope("photos:read")
    async def list_photos(request): token = claims(request); ...

What is checked: the signature, with the configured algorithms only (never ``none``, never HMAC, so
a public key can never be used as an HMAC secret); ``typ`` = ``at+jwt``; ``iss``; ``aud``; ``exp``,
``nbf`` and ``iat`` with a small leeway; the required claims. ``jku``, ``x5u`` and other key-locating
headers are ignored: keys come only from the issuer's JWKS. Validation needs no call to the
authorization server once its keys are cached, so resource servers keep working while it is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import jwt
from aiohttp import web

from shared.errors import InsufficientScope, InvalidRequest, InvalidToken
from shared.http import has_control_characters
from shared.token_cache import VerifiedTokens, fingerprint

log = logging.getLogger("tessera.jwt_validation")

DEFAULT_ALGORITHMS = ("ES256", "RS256")
FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")


class KeySource:
    """Where verification keys come from: ``key(kid)`` returns a PyJWK or ``None``."""

    async def key(self, kid: str) -> jwt.PyJWK | None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class JWKSKeySource(KeySource):
    """The issuer's JWKS, discovered from its RFC 8414 metadata and cached.

    * keys are refreshed in the background every ``refresh_interval`` seconds (start it with
      :attr:`cleanup_ctx` or :meth:`run`), so they never go stale while traffic flows;
    * an unknown ``kid`` triggers a refetch at most once per ``min_refetch_interval`` seconds, so a
      rotation is picked up at once while a flood of forged kids cannot hammer the issuer;
    * when the issuer is unreachable, the keys already cached keep working; while none are held
      yet (the issuer was not up when this process started), a fetch is retried every second;
    * :meth:`ready` says whether tokens can be validated at all (for ``/readyz``).
    """

    issuer: str
    jwks_uri: str | None = None
    refresh_interval: float = 300.0
    min_refetch_interval: float = 10.0
    timeout: float = 5.0
    _keys: dict[str, jwt.PyJWK] = field(default_factory=dict, init=False)
    _fetched_at: float | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _session: aiohttp.ClientSession | None = field(default=None, init=False)
    fetches: int = field(default=0, init=False)
    RETRY_WITHOUT_KEYS = 1.0

    async def ready(self) -> None:
        """Raise unless keys are held (the background task fetches them; this only looks)."""
        if not self._keys:
            raise RuntimeError(f"no verification keys from {self.issuer} yet")

    async def key(self, kid: str) -> jwt.PyJWK | None:
        found = self._keys.get(kid)
        if found is not None:
            return found
        if self._fetched_at is None or time.monotonic() - self._fetched_at >= self.min_refetch_interval:
            await self.refresh()
        return self._keys.get(kid)

    async def refresh(self) -> None:
        """Fetch the key set now (one fetch at a time); keep the old keys if it fails."""
        async with self._lock:
            if (
                self._fetched_at is not None
                and time.monotonic() - self._fetched_at < self.min_refetch_interval
            ):
                return  # another caller just did
            started = time.monotonic()
            # without keys, the next try may come a second later rather than min_refetch_interval
            self._fetched_at = (
                started
                if self._keys
                else started - max(0.0, self.min_refetch_interval - self.RETRY_WITHOUT_KEYS)
            )
            try:
                self._keys = await self._fetch()
                self._fetched_at = started
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
                log.warning(
                    "could not refresh the JWKS of %s: %r; keeping %d cached key(s)",
                    self.issuer,
                    exc,
                    len(self._keys),
                )

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        if self.jwks_uri is None:
            async with self._session.get(metadata_url(self.issuer)) as response:
                response.raise_for_status()
                metadata = await response.json(content_type=None)
            if not isinstance(metadata, dict) or not isinstance(metadata.get("jwks_uri"), str):
                raise ValueError("the issuer's metadata is not an object with a jwks_uri")
            if metadata.get("issuer") != self.issuer:
                raise ValueError(
                    f"metadata names issuer {metadata.get('issuer')!r}, expected {self.issuer!r}"
                )
            self.jwks_uri = str(metadata["jwks_uri"])
        async with self._session.get(self.jwks_uri) as response:
            response.raise_for_status()
            document = await response.json(content_type=None)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("the JWKS is not an object with a keys array")  # keep the cached keys
        self.fetches += 1
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document["keys"]:
            if not isinstance(entry, dict):
                continue
            kid, alg = entry.get("kid"), entry.get("alg")
            if (
                not isinstance(kid, str)
                or not isinstance(alg, str | None)
                or entry.get("use", "sig") != "sig"
            ):
                continue
            if alg in FORBIDDEN_ALGORITHMS:
                continue
            if entry.get("kty") == "oct" or "d" in entry:
                continue  # never a symmetric or private key
            try:
                keys[kid] = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue
        return keys

    async def run(self) -> None:
        """Refresh forever (a background task): every ``refresh_interval``, or every second while
        no key is held yet (the issuer was not up when this process started)."""
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("refreshing the JWKS of %s failed", self.issuer)
            await asyncio.sleep(self.refresh_interval if self._keys else self.RETRY_WITHOUT_KEYS)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def cleanup_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """``app.cleanup_ctx.append(keys.cleanup_ctx)``: first fetch at start, refresh in background."""
        await self.refresh()
        task = asyncio.create_task(self.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.close()


class TokenValidator:
    """Validates access tokens locally; caches verified tokens (by hash, bounded) until they expire."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: KeySource,
        algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS,
        leeway: int = 30,
        required_claims: tuple[str, ...] = REQUIRED_CLAIMS,
        cache_size: int = 10_000,
    ) -> None:
        bad = FORBIDDEN_ALGORITHMS.intersection(algorithms)
        if bad:
            raise ValueError(f"algorithms {sorted(bad)} must never be accepted for access tokens")
        self.issuer = issuer
        self.audience = audience
        self.keys = keys
        self.algorithms = algorithms
        self.leeway = leeway
        self.required_claims = required_claims
        self._verified = VerifiedTokens(cache_size)

    async def validate(self, token: str) -> dict[str, Any]:
        """The token's claims, or :class:`InvalidToken` saying what is wrong."""
        if self._verified.size <= 0:
            return await self._validate(token)
        key = fingerprint(token)
        cached = self._verified.get(key)
        if cached is not None:
            return cached
        claims = await self._validate(token)
        self._verified.put(key, claims, until=float(claims["exp"]) + self.leeway)
        return claims

    async def _validate(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The access token is malformed.") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise InvalidToken("The access token is signed with an algorithm that is not accepted.")
        typ = str(header.get("typ", "")).lower()
        if typ not in ("at+jwt", "application/at+jwt"):
            raise InvalidToken("The token is not a JWT access token (typ must be at+jwt).")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("The access token names no key (kid).")
        key = await self.keys.key(kid)
        if key is None:
            raise InvalidToken("The access token is signed with an unknown key.")
        if key.algorithm_name != alg:
            raise InvalidToken("The access token's algorithm does not match its key.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(self.required_claims)},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The access token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("The access token is not valid yet.") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("The access token is not meant for this resource server.") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("The access token comes from an untrusted issuer.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"The access token lacks the {exc.claim} claim.") from None
        except jwt.PyJWTError:
            raise InvalidToken("The access token's signature or claims are invalid.") from None
        for name in ("sub", "client_id"):
            value = claims.get(name)
            if not isinstance(value, str) or not value or has_control_characters(value):
                raise InvalidToken(f"The access token's {name} claim is not a valid identifier.")
        return claims


def metadata_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known segment goes between the host and any path of the issuer."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, f"/.well-known/oauth-authorization-server{path}", "", ""))


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    scope = claims.get("scope", "")
    return frozenset(scope.split()) if isinstance(scope, str) else frozenset()


# --- aiohttp ---------------------------------------------------------------------------------

CLAIMS_KEY: web.RequestKey[dict[str, Any]] = web.RequestKey("tessera_token_claims", dict)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_token(request: web.Request) -> str | None:
    """RFC 6750 §2.1: the token from the Authorization header only (never the query or body)."""
    if "access_token" in request.query:
        raise InvalidRequest("Send the access token in the Authorization header, not in the URL.")
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or " " in token.strip():
        raise InvalidToken("The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def claims(request: web.Request) -> dict[str, Any]:
    """The validated claims a :func:`require_scope` route put on the request."""
    value: dict[str, Any] = request[CLAIMS_KEY]
    return value


def require_scope(
    *needed: str, validator_key: web.AppKey[TokenValidator] | None = None
) -> Callable[[Handler], Handler]:
    """Decorate a handler: a valid bearer token with every scope in ``needed`` is required."""

    def decorate(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            validator = request.app[validator_key or VALIDATOR]
            token = bearer_token(request)
            if token is None:
                raise InvalidToken("An access token is required.")
            found = await validator.validate(token)
            missing = [s for s in needed if s not in scopes_of(found)]
            if missing:
                raise InsufficientScope(
                    f"This request needs the scope {' '.join(needed)}.", scope=" ".join(needed)
                )
            request[CLAIMS_KEY] = found
            return await handler(request)

        guarded.__name__ = getattr(handler, "__name__", "guarded")
        guarded.__doc__ = handler.__doc__
        return guarded

    return decorate


VALIDATOR = web.AppKey("tessera_token_validator", TokenValidator)
