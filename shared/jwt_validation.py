"""Local validation of Tessera's JWT access tokens (RFC 9068, RFC 8725), for any resource server.

Framework-free core, plus a thin aiohttp layer at the bottom::

    keys = JWKSKeySource(issuer="https://auth.example.com")            # discovers jwks_uri (RFC 8414)
    validator = TokenValidator(issuer="https://auth.example.com", audience="https://auth.example.com/api",
                               keys=keys)
    app = web.Application(middlewares=[error_middleware()])             # shared.error_middleware
    app[VALIDATOR] = validator
    app.cleanup_ctx.append(keys.cleanup_ctx)                            # background refresh

    @require_scope("photos:read")
    async def list_photos(request): token = claims(request); ...

What is checked: the signature, with the configured algorithms only (never ``none``, never HMAC, so
a public key can never be used as an HMAC secret); ``typ`` = ``at+jwt``; ``iss``; ``aud``; ``exp``,
``nbf`` and ``iat`` with a small leeway; the required claims. ``jku``, ``x5u`` and other key-locating
headers are ignored: keys come only from the issuer's JWKS. A token with a ``crit`` header is
refused: Tessera understands no JWS extension (RFC 7515 §4.1.11). Validation needs no call to the
authorization server once its keys are cached, so resource servers keep working while it is down.

Revocation (opt-in): ``TokenValidator(..., revocations=RevocationList(issuer))`` refuses a token
whose ``jti``, or whose ``grant_id`` (the refresh-token family it was issued from), the issuer has
revoked (RFC 7009, refresh-token reuse, code replay). The list is
pulled every few seconds from the issuer's ``tessera_revocation_list_uri``, so a revocation takes
effect within about ``refresh_interval`` + 1 s; it is checked on every request, cached tokens
included. If the issuer cannot be reached, the last list fetched keeps being used (fail open) and
:attr:`RevocationList.age` grows: alert on it. Without a revocation list, a token stays valid here
until its ``exp`` (10 minutes by default), whatever happens to it at the issuer.

Discovery (opt-in): :func:`shared.protected_resource.publish` serves the API's RFC 9728 metadata
and sets :data:`CHALLENGES`, so the challenges of :func:`require_scope` routes name it
(``resource_metadata``, RFC 9728 §5.1) and, on a 401, the scope the route needs (RFC 6750 §3).

DPoP (RFC 9449, no configuration needed): a token bound to a key (``cnf.jkt``) is accepted only as
``Authorization: DPoP <token>`` with a proof made with that key (:mod:`shared.dpop`: ``htm``, the
``htu`` of the request as the client called it — the public URL :func:`publish` names, see
:func:`public_url` — ``iat``, ``ath``, the key, and its ``jti`` once); such a token sent as
``Bearer`` is refused (§7.2). A 401 offers both schemes (``Bearer ..., DPoP algs="..."``); the
error is in the challenge of the scheme the request used. The ``jti`` of proofs are remembered by
the validator's :class:`~shared.dpop.ProofVerifier`: in this process by default, or in Redis for
every replica (``TokenValidator(..., proofs=ProofVerifier(replay=RedisReplayStore(...)))``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import jwt
from aiohttp import web

from shared.dpop import (
    HEADER,
    InvalidDPoPProof,
    NonceRequired,
    ProofRefused,
    ProofVerifier,
    UseDPoPNonce,
)
from shared.errors import BearerError, InsufficientScope, InvalidRequest, InvalidToken, NoToken
from shared.fetch import Fetcher
from shared.http import has_control_characters
from shared.jwks import JWKSCache
from shared.token_cache import VerifiedTokens, fingerprint

log = logging.getLogger("tessera.jwt_validation")

DEFAULT_ALGORITHMS = ("ES256", "RS256")
FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")
MAX_KNOWN_HEADERS = 64  # header segments of verified tokens kept parsed: a few per signing key
NO_PUBLIC_URL = (
    "This API has no configured public URL, so it cannot check DPoP proofs (its operator must set"
    " its resource identifier, or for Tessera's admin API TESSERA_ADMIN_URL)."
)


class _Refreshed(Protocol):
    async def refresh(self) -> Any: ...
    async def run(self) -> None: ...
    async def close(self) -> None: ...


@contextlib.asynccontextmanager
async def refreshing(source: _Refreshed) -> AsyncIterator[None]:
    """A source fetched once now and refreshed in the background until the block ends, then closed."""
    await source.refresh()
    task = asyncio.create_task(source.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await source.close()


class KeySource:
    """Where verification keys come from: ``key(kid)`` returns a PyJWK or ``None``."""

    async def key(self, kid: str) -> jwt.PyJWK | None:  # pragma: no cover - interface
        raise NotImplementedError


def _now() -> float:
    return time.monotonic()  # looked up on each call, so tests can move the clock on


def _signing_keys(document: Any) -> dict[str, jwt.PyJWK]:
    """The usable verification keys of a JWKS by kid; ValueError if it is not a key set.

    Skipped: entries without a string kid, not for signing, for a forbidden algorithm, symmetric
    or private keys, and anything PyJWT cannot read.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS is not an object with a keys array")  # keep the cached keys
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kid, alg = entry.get("kid"), entry.get("alg")
        if not isinstance(kid, str) or not isinstance(alg, str | None) or entry.get("use", "sig") != "sig":
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

    The refetch policy is :class:`shared.jwks.JWKSCache`'s (one fetch at a time, min refetch,
    keep the last good keys), the one the authorization server applies to its clients' key sets.
    """

    issuer: str
    jwks_uri: str | None = None
    refresh_interval: float = 300.0
    min_refetch_interval: float = 10.0
    timeout: float = 5.0
    max_bytes: int = 256 * 1024  # per document (the metadata, the JWKS)
    _cache: JWKSCache[dict[str, jwt.PyJWK]] = field(init=False, repr=False)
    RETRY_WITHOUT_KEYS = 1.0

    def __post_init__(self) -> None:
        # shared.fetch's guard (size, time, no redirects, no link-local or multicast targets);
        # private addresses allowed: the operator configured this issuer, and in a cluster it
        # lives on one.
        fetcher = Fetcher(allow_private=True, max_bytes=self.max_bytes, timeout=self.timeout)
        self._cache = JWKSCache(
            fetcher,
            parse=_signing_keys,
            min_refetch=self.min_refetch_interval,
            retry_without_keys=self.RETRY_WITHOUT_KEYS,
            clock=_now,
            locate=self._locate,
            on_failure=self._failed,
        )

    @property
    def _keys(self) -> dict[str, jwt.PyJWK]:
        return self._cache.peek(self.issuer) or {}

    @property
    def fetches(self) -> int:
        """Key sets fetched (failed attempts not counted)."""
        return self._cache.fetches

    async def ready(self) -> None:
        """Raise unless keys are held (the background task fetches them; this only looks)."""
        if not self._keys:
            raise RuntimeError(f"no verification keys from {self.issuer} yet")

    async def key(self, kid: str) -> jwt.PyJWK | None:
        found = self._keys.get(kid)
        if found is not None:
            return found
        keys = await self._cache.get(self.issuer, refresh=True)  # an unknown kid: rotated?
        return None if keys is None else keys.get(kid)

    async def refresh(self) -> None:
        """Fetch the key set now, unless it was just fetched (one fetch at a time); keep the old
        keys if it fails."""
        await self._cache.get(self.issuer, refresh=True)

    async def _locate(self, fetcher: Fetcher, issuer: str) -> str:
        """The issuer's jwks_uri, from its RFC 8414 metadata the first time."""
        if self.jwks_uri is None:
            metadata = await fetcher.fetch_json(metadata_url(issuer))
            if not isinstance(metadata, dict) or not isinstance(metadata.get("jwks_uri"), str):
                raise ValueError("the issuer's metadata is not an object with a jwks_uri")
            if metadata.get("issuer") != issuer:
                raise ValueError(f"metadata names issuer {metadata.get('issuer')!r}, expected {issuer!r}")
            self.jwks_uri = str(metadata["jwks_uri"])
        return self.jwks_uri

    def _failed(self, issuer: str, error: Exception) -> None:
        log.warning(
            "could not refresh the JWKS of %s: %r; keeping %d cached key(s)", issuer, error, len(self._keys)
        )

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
        await self._cache.close()

    async def cleanup_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """``app.cleanup_ctx.append(keys.cleanup_ctx)``: first fetch at start, refresh in background."""
        async with refreshing(self):
            yield


@dataclass
class RevocationList:
    """The issuer's revoked access tokens, pulled like a short-lived CRL: single tokens by ``jti``,
    and whole grants (a refresh-token family, every access token issued from it) by ``grant_id``.

    * the list is fetched from ``url`` (default: the ``tessera_revocation_list_uri`` of the issuer's
      RFC 8414 metadata) every ``refresh_interval`` seconds in the background (start it with
      :attr:`cleanup_ctx` or :meth:`run`); an unchanged list costs a ``304`` (ETag), no body;
    * :meth:`is_revoked` is a set lookup: it is called on every request;
    * a document over ``max_entries`` entries or ``max_bytes`` bytes, or malformed, or naming
      another issuer, is refused whole, like a failed fetch;
    * fail open: when a fetch fails, the last good list stays in use and a warning is logged;
      :attr:`age` says how old the list is (``None`` before the first good fetch), for alerts.
    """

    issuer: str
    url: str | None = None
    refresh_interval: float = 5.0
    timeout: float = 5.0
    max_entries: int = 1_000_000
    max_bytes: int = 64 * 1024 * 1024
    _revoked: frozenset[str] = field(default_factory=frozenset, init=False)
    _revoked_grants: frozenset[str] = field(default_factory=frozenset, init=False)
    _etag: str | None = field(default=None, init=False)
    _current_at: float | None = field(default=None, init=False)  # monotonic: last 200 or 304
    _warned_at: float | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _fetcher: Fetcher | None = field(default=None, init=False)
    fetches: int = field(default=0, init=False)  # documents downloaded (not 304s)
    failures: int = field(default=0, init=False)
    WARN_EVERY = 60.0  # seconds between repeated warnings while fetches keep failing

    def is_revoked(self, jti: str, grant_id: str | None = None) -> bool:
        """Whether this token, or the grant it was issued from (its ``grant_id``), is revoked."""
        return jti in self._revoked or (grant_id is not None and grant_id in self._revoked_grants)

    @property
    def size(self) -> int:
        return len(self._revoked) + len(self._revoked_grants)

    @property
    def age(self) -> float | None:
        """Seconds since the issuer last confirmed the list (a download or a 304); None: never."""
        return None if self._current_at is None else time.monotonic() - self._current_at

    async def refresh(self) -> bool:
        """Fetch the list now (one fetch at a time); on failure keep the last one. True if current."""
        async with self._lock:
            started = time.monotonic()
            try:
                revoked = await self._download()
            except (
                aiohttp.ClientError,
                TimeoutError,
                ValueError,
                KeyError,
                TypeError,
                RecursionError,
            ) as exc:
                self.failures += 1
                if self._warned_at is None or started - self._warned_at >= self.WARN_EVERY:
                    self._warned_at = started
                    age = self.age
                    log.warning(
                        "could not refresh the revocation list of %s: %r; keeping %d revoked entries "
                        "(%s): revocations made since then are not seen",
                        self.issuer,
                        exc,
                        self.size,
                        "never fetched" if age is None else f"{age:.0f} s old",
                    )
                return False
            if revoked is not None:
                self._revoked, self._revoked_grants = revoked
            self._current_at = started
            if self._warned_at is not None:
                self._warned_at = None
                log.info("the revocation list of %s is current again", self.issuer)
            return True

    async def _download(self) -> tuple[frozenset[str], frozenset[str]] | None:
        """The new list, or None when the one held is still current (304)."""
        if self._fetcher is None:
            # shared.fetch's guard, as for the JWKS: size and time limits, no redirects; private
            # addresses allowed (the operator configured this issuer, often on the same network)
            self._fetcher = Fetcher(allow_private=True, max_bytes=self.max_bytes, timeout=self.timeout)
        if self.url is None:
            metadata = await self._fetcher.fetch_json(metadata_url(self.issuer))
            if not isinstance(metadata, dict) or metadata.get("issuer") != self.issuer:
                raise ValueError("the issuer's metadata is not an object naming this issuer")
            url = metadata.get("tessera_revocation_list_uri")
            if not isinstance(url, str):
                raise ValueError("the issuer's metadata names no tessera_revocation_list_uri")
            self.url = url
        conditional = {} if self._etag is None else {"If-None-Match": self._etag}
        fetched = await self._fetcher.get(self.url, headers=conditional)
        if fetched.status == 304:
            return None
        body, etag = fetched.body, fetched.headers.get("ETag")
        document = json.loads(body)
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise ValueError("the revocation list is not an object naming this issuer")
        entries = document.get("revoked")
        if not isinstance(entries, list):
            raise ValueError("the revocation list has no revoked array")
        if len(entries) > self.max_entries:
            raise ValueError(f"the revocation list has more than {self.max_entries} entries")
        jtis, grants = set(), set()
        for entry in entries:
            if "grant_id" in entry:
                grants.add(entry["grant_id"])
            else:
                jtis.add(entry["jti"])
        if not all(isinstance(value, str) for value in (*jtis, *grants)):
            raise ValueError("the revocation list has a jti or grant_id that is not a string")
        self.fetches += 1
        self._etag = etag
        return frozenset(jtis), frozenset(grants)

    async def run(self) -> None:
        """Refresh forever (a background task), every ``refresh_interval`` seconds, the first
        time after one interval (:attr:`cleanup_ctx` fetches once before starting it)."""
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.refresh()
            except Exception:
                log.exception("refreshing the revocation list of %s failed", self.issuer)

    async def close(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.close()
            self._fetcher = None

    async def cleanup_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """``app.cleanup_ctx.append(revocations.cleanup_ctx)``: first fetch at start (a failure
        does not stop the start), then refresh in the background."""
        async with refreshing(self):
            yield


class AnyAudience:
    """The audience of a validator that accepts any (:data:`ANY_AUDIENCE`): never a resource
    server's, which would then accept tokens meant for every other API."""

    def __repr__(self) -> str:
        return "ANY_AUDIENCE"


# an authorization server verifying the tokens it issued for every API (it reports their audience)
ANY_AUDIENCE = AnyAudience()


class TokenValidator:
    """Validates access tokens locally; caches verified tokens (by hash, bounded) until they expire.

    With ``revocations``, every token's ``jti`` is looked up in that list on every call, whether
    its signature was verified now or earlier (the verified-token cache never hides a revocation).

    ``audience``: the ``aud`` a token must have — the API's own identifier (RFC 8707), or a tuple
    of the names it is known by (a token matches any). :data:`ANY_AUDIENCE` accepts any: only for
    an authorization server checking the tokens it issued, which reports the audience instead; a
    resource server always names its own, or it would accept tokens meant for other APIs.

    A token bound to a DPoP key (``cnf``, RFC 9449 §6) is accepted by :meth:`validate_dpop` with a
    proof made with that key, never by :meth:`validate` (a bearer's use, §7.2); ``proofs`` checks
    the proofs (default: the :data:`shared.dpop.ALGORITHMS`, ``jti`` remembered in this process).
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | tuple[str, ...] | AnyAudience,
        keys: KeySource,
        algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS,
        leeway: int = 30,
        required_claims: tuple[str, ...] = REQUIRED_CLAIMS,
        cache_size: int = 10_000,
        revocations: RevocationList | None = None,
        proofs: ProofVerifier | None = None,
    ) -> None:
        bad = FORBIDDEN_ALGORITHMS.intersection(algorithms)
        if bad:
            raise ValueError(f"algorithms {sorted(bad)} must never be accepted for access tokens")
        if revocations is not None and "jti" not in required_claims:
            raise ValueError("a revocation list can only be checked when the jti claim is required")
        self.issuer = issuer
        if not isinstance(audience, (str, tuple, AnyAudience)) or not audience:
            raise ValueError("name the audience tokens must have (ANY_AUDIENCE only for an issuer)")
        self.audience = audience
        self.keys = keys
        self.algorithms = algorithms
        self.leeway = leeway
        self.required_claims = required_claims
        self._verified = VerifiedTokens(cache_size)
        self._headers: dict[str, dict[str, Any]] = {}  # header segment -> its parse (see _validate)
        self.revocations = revocations
        self.proofs = ProofVerifier() if proofs is None else proofs

    async def validate(self, token: str) -> dict[str, Any]:
        """The claims of a token presented as a bearer token (RFC 6750), or :class:`InvalidToken`
        saying what is wrong; a token bound to a DPoP key is refused (RFC 9449 §7.2)."""
        claims = await self.verified_claims(token)
        if "cnf" in claims:
            raise InvalidToken(
                "This access token is bound to a DPoP key: send it as 'Authorization: DPoP <token>'"
                " with a DPoP proof."
            )
        return claims

    async def validate_dpop(self, token: str, proof: str, *, method: str, url: str) -> dict[str, Any]:
        """The claims of a DPoP-bound token presented with ``proof`` (RFC 9449 §7) in a ``method``
        request to ``url`` (as the client called it). :class:`InvalidToken` for the token or a proof
        made with another key; :class:`~shared.dpop.ProofRefused` or
        :class:`~shared.dpop.NonceRequired` for the proof."""
        claims = await self.verified_claims(token)
        confirmation = claims.get("cnf")
        jkt = confirmation.get("jkt") if isinstance(confirmation, dict) else None
        if not isinstance(jkt, str):
            raise InvalidToken("This access token is not bound to a DPoP key: send it as a Bearer token.")
        try:
            await self.proofs.verify(proof, method=method, url=url, access_token=token, bound_to=jkt)
        except InvalidDPoPProof as refused:
            raise ProofRefused(refused.description) from None
        except UseDPoPNonce as asked:
            raise NonceRequired(asked.description, nonce=asked.nonce) from None
        return claims

    async def validate_presented(
        self, scheme: str, token: str, *, proofs: Sequence[str], method: str, url: str | None
    ) -> dict[str, Any]:
        """The claims of ``token`` as a request presented it (:func:`parse_authorization`): a
        bearer token (:meth:`validate`), or with the ``DPoP`` scheme and the request's ``proofs``
        (its ``DPoP`` headers, exactly one of which is allowed, RFC 9449 §4.3), checked for
        ``method`` and ``url``, the URL the client called (None: this API does not know its public
        URL, so it refuses DPoP requests; see :func:`public_url`). For any framework."""
        if scheme != HEADER:
            return await self.validate(token)
        if len(proofs) != 1:  # RFC 9449 §4.3 step 1
            raise ProofRefused(f"Send exactly one {HEADER} header with a DPoP proof for this request.")
        if url is None:
            raise ProofRefused(NO_PUBLIC_URL)
        return await self.validate_dpop(token, proofs[0], method=method, url=url)

    async def verified_claims(self, token: str) -> dict[str, Any]:
        """The claims of a valid, unrevoked token, however it is bound: for the issuer itself, which
        reports the binding (introspection) rather than requiring one. Resource servers call
        :meth:`validate` or :meth:`validate_dpop`."""
        if self._verified.size <= 0:
            claims = await self._validate(token)
        else:
            key = fingerprint(token)
            cached = self._verified.get(key)
            if cached is None:
                claims = await self._validate(token)
                self._verified.put(key, claims, until=float(claims["exp"]) + self.leeway)
            else:
                claims = cached
        # on every call, after the cache: a revocation must never be cached away
        if self.revocations is not None and self.revocations.is_revoked(
            claims["jti"], claims.get("grant_id")
        ):
            raise InvalidToken("The access token has been revoked.")
        return claims

    async def _validate(self, token: str) -> dict[str, Any]:
        # Every token one key signs has the same header segment: its parse is kept once a token
        # with it verified (bounded; strangers' headers are never kept), sparing PyJWT's parse of
        # the whole token a second time before it decodes it.
        segment = token.partition(".")[0]
        known = self._headers.get(segment)
        if known is None:
            try:
                header = jwt.get_unverified_header(token)
            except jwt.PyJWTError:
                raise InvalidToken("The access token is malformed.") from None
        else:
            header = known
        if "crit" in header:  # RFC 7515 §4.1.11: Tessera understands no extension, so none may be critical
            raise InvalidToken("The access token has a critical header extension that is not understood.")
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
                audience=None if isinstance(self.audience, AnyAudience) else self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                # ANY_AUDIENCE: the issuer itself, which reports the audience instead
                options={
                    "require": list(self.required_claims),
                    "verify_aud": not isinstance(self.audience, AnyAudience),
                },
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
        if known is None and len(self._headers) < MAX_KNOWN_HEADERS:
            self._headers[segment] = header
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


def parse_authorization(header: str | None) -> tuple[str, str] | None:
    """An ``Authorization`` header's value as (scheme, token): ``Bearer`` (RFC 6750 §2.1) or
    ``DPoP`` (RFC 9449 §7.1), the scheme in that spelling; None without the header. A malformed
    Bearer or DPoP value is :class:`InvalidToken`; an empty header or another scheme (``Basic``...)
    is :class:`NoToken`, a request without usable credentials (RFC 6750 §3.1: no error code in the
    challenge). For any framework."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    known = {"bearer": "Bearer", "dpop": HEADER}.get(scheme.lower())
    if known is None:
        raise NoToken("The Authorization header must be 'Bearer <token>' or 'DPoP <token>'.")
    if not token or " " in token:
        malformed = InvalidToken("The Authorization header must be 'Bearer <token>' or 'DPoP <token>'.")
        malformed.scheme = known  # RFC 9449 §7.1: a DPoP request's error is in the DPoP challenge
        raise malformed
    return known, token


def authorization(request: web.Request) -> tuple[str, str] | None:
    """The request's ``Authorization`` header as (scheme, token) (:func:`parse_authorization`).
    Never from the query or the body."""
    if "access_token" in request.query:
        raise InvalidRequest("Send the access token in the Authorization header, not in the URL.")
    return parse_authorization(request.headers.get("Authorization"))


def public_url(request: web.Request) -> str | None:
    """The URL the client called (a DPoP proof's ``htu``, RFC 9449 §4.3), without the query: this
    API's public origin (:data:`PUBLIC_ORIGIN`, which :func:`shared.protected_resource.publish`
    sets from its resource identifier, so that a gateway in front changes nothing) followed by the
    path as received. Never made from the ``Host`` header (the client's to choose: a proof made for
    any other server would pass): None for an API with no public origin configured, which then
    refuses DPoP requests; its bearer tokens keep working."""
    origin = request.app.get(PUBLIC_ORIGIN)
    return origin + request.rel_url.raw_path if origin else None


def bearer_token(request: web.Request) -> str | None:
    """RFC 6750 §2.1: the token from the Authorization header only (never the query or body)."""
    if "access_token" in request.query:
        raise InvalidRequest("Send the access token in the Authorization header, not in the URL.")
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":  # another scheme, or none: no usable credentials (RFC 6750 §3.1)
        raise NoToken("The Authorization header must be 'Bearer <token>'.")
    if not token.strip() or " " in token.strip():
        raise InvalidToken("The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def claims(request: web.Request) -> dict[str, Any]:
    """The validated claims a :func:`require_scope` route put on the request."""
    value: dict[str, Any] = request[CLAIMS_KEY]
    return value


@dataclass(frozen=True)
class Challenges:
    """What an app adds to the Bearer challenges of its :func:`require_scope` routes.

    ``params`` go into every challenge (RFC 6750 §3 allows auth-params beyond its own, e.g. RFC
    9728 §5.1 ``resource_metadata``); with ``scope_on_401``, a 401 (no token, or a bad one) also
    names the scope the route needs, as a 403 ``insufficient_scope`` always does (RFC 6750 §3).
    Set as ``app[CHALLENGES]``, usually by :func:`shared.protected_resource.publish`; without it
    challenges are left as they are.
    """

    params: Mapping[str, str] = field(default_factory=dict)
    scope_on_401: bool = False

    def extend(self, error: BearerError, needed: tuple[str, ...] = ()) -> None:
        """Add this app's parameters to ``error``'s challenge; ``needed``: the route's scopes."""
        error.add_params(**self.params)
        if self.scope_on_401 and needed and error.status == 401:
            error.add_params(scope=" ".join(needed))


CHALLENGES = web.AppKey("tessera_bearer_challenges", Challenges)
# the origin (scheme://host[:port]) clients call this API at, through any gateway (see public_url)
PUBLIC_ORIGIN = web.AppKey("tessera_public_origin", str)


def dpop_challenge(error: BearerError, scheme: str | None, algorithms: tuple[str, ...]) -> None:
    """RFC 9449 §7.1-7.2: the error in the challenge of the scheme the request used; a 401 offers
    DPoP beside Bearer (with the algorithms accepted)."""
    algs = " ".join(algorithms)
    if HEADER in (scheme, error.scheme):  # the request's scheme, or the one its malformed header named
        error.scheme = HEADER
        error.add_params(algs=algs)
    elif error.status == 401:
        error.add_challenge(f'{HEADER} algs="{algs}"')


def require_scope(
    *needed: str, validator_key: web.AppKey[TokenValidator] | None = None
) -> Callable[[Handler], Handler]:
    """Decorate a handler: a valid bearer token with every scope in ``needed`` is required.

    The token may be a bearer token or a DPoP-bound one with its proof (RFC 9449, see the
    module). Refusals are :class:`InvalidToken` (401), :class:`~shared.dpop.ProofRefused` and
    :class:`~shared.dpop.NonceRequired` (401, DPoP), and :class:`InsufficientScope` (403, naming
    ``needed``); if the app has :data:`CHALLENGES`, they, and the Bearer errors the handler raises,
    carry its parameters.
    """

    def decorate(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            challenges = request.app.get(CHALLENGES)
            validator = request.app[validator_key or VALIDATOR]
            scheme: str | None = None
            try:
                presented = authorization(request)
                scheme = None if presented is None else presented[0]
                found = await _authorized(request, validator, presented, needed)
            except BearerError as error:
                if challenges is not None:
                    challenges.extend(error, needed)
                dpop_challenge(error, scheme, validator.proofs.algorithms)
                raise
            request[CLAIMS_KEY] = found
            try:
                return await handler(request)
            except BearerError as error:
                if challenges is not None:
                    challenges.extend(error)  # the handler's own refusal: its scope is its own
                dpop_challenge(error, scheme, validator.proofs.algorithms)
                raise

        guarded.__name__ = getattr(handler, "__name__", "guarded")
        guarded.__doc__ = handler.__doc__
        return guarded

    return decorate


async def _authorized(
    request: web.Request,
    validator: TokenValidator,
    presented: tuple[str, str] | None,
    needed: tuple[str, ...],
) -> dict[str, Any]:
    """The claims of the request's token (bearer, or DPoP-bound with its proof) if it is valid and
    has every scope ``needed``."""
    if presented is None:
        raise NoToken("An access token is required.")
    scheme, token = presented
    if scheme == HEADER:
        found = await validator.validate_presented(
            scheme,
            token,
            proofs=request.headers.getall(HEADER, []),
            method=request.method,
            url=public_url(request),
        )
    else:  # a bearer token: no proof to look for, no URL to make
        found = await validator.validate(token)
    granted = scopes_of(found)
    missing = [s for s in needed if s not in granted]
    if missing:
        raise InsufficientScope(f"This request needs the scope {' '.join(needed)}.", scope=" ".join(needed))
    return found


VALIDATOR = web.AppKey("tessera_token_validator", TokenValidator)
