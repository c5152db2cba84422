"""DPoP proofs (RFC 9449): checked the same way at the token endpoint and at every resource server.

A client that holds a key pair sends a *DPoP proof* in the ``DPoP`` header of each request: a JWT
it signs with that key, naming the request (``htm``, ``htu``), when it was made (``iat``), a unique
``jti``, and, with an access token, the token's hash (``ath``); the public key travels in the
proof's ``jwk`` header (§4.2). The authorization server binds the tokens it issues to that key
(``cnf.jkt``, the key's RFC 7638 thumbprint, §6); a resource server then accepts such a token only
with a fresh proof made with the same key (§7), so a copied token is useless without the key.

:class:`ProofVerifier` is the check of §4.3, in order: one well-formed JWT; ``typ`` is
``dpop+jwt``; ``alg`` in the allow-list (:data:`ALGORITHMS`: never ``none``, never HMAC); ``jwk`` a
public key only, of the type the algorithm needs (RSA keys of 2048 to 4096 bits with e = 65537;
no small-order Ed25519 key); ``jti``, ``htm`` and ``htu`` (compared after RFC 3986 syntax- and
scheme-based normalisation, query and fragment ignored) and ``iat`` within the window either way,
all read before the signature is checked, so a proof that cannot pass costs no verification; the
signature; the server's nonce when it wants one (§8, §9); ``ath`` the token's hash; the key the
token is bound to; and last, the ``jti`` seen for the first time, in the :class:`ReplayStore`, for
as long as the proof could be accepted (§11.1).
A proof check is one signature verification and one call to the store (one Redis ``SET NX``).

Framework-free and backend-free, like the rest of what resource teams import: the replay store is
a one-method interface. :class:`MemoryReplayStore` is one process's (bounded: when it is full of
proofs that could still be replayed, new ones are refused until room is made, never forgotten
early); :class:`RedisReplayStore` wraps any redis-py asyncio client (not imported here) and is
shared by every replica. Server-provided nonces are :class:`HmacNonces`: stateless, rotating,
accepted by every replica that knows the secret.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import jwt

from shared.errors import BearerError, InvalidToken, OAuthError, TemporarilyUnavailable

# RFC 9449 §4.2: asymmetric algorithms only; these are the ones accepted (and advertised as
# dpop_signing_alg_values_supported, §5.1). "none" and every HMAC are never among them.
ALGORITHMS: tuple[str, ...] = ("ES256", "EdDSA", "RS256", "PS256")
HEADER = "DPoP"  # the request header carrying the proof (§4.1), and the authorization scheme (§7.1)
NONCE_HEADER = "DPoP-Nonce"  # §8.1, §9
TYP = "dpop+jwt"
MAX_PROOF_LENGTH = 8192  # a proof with a 4096-bit RSA key is about 2.5 KB
MAX_JTI_LENGTH = 256
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096  # and e = 65537: a larger key or exponent makes every verification costlier
RSA_EXPONENT = 65537
# RFC 8032 §5.1.7 leaves small-order public keys to the verifier, and OpenSSL accepts them: under
# each of these eight Ed25519 points (the identity, the point of order 2, two of order 4, four of
# order 8) a signature R = identity (or another small-order point), S = 0 verifies for every
# message, so anyone could sign proofs "with" that key. The encodings are those of libsodium's and
# Monocypher's blocklists (Chalkias et al., "Taming the many EdDSAs", 2020); each is checked with
# its sign bit either way, and non-canonical encodings (y >= p) are refused too.
_SMALL_ORDER_ED25519 = frozenset(
    bytes.fromhex(encoded)
    for encoded in (
        "0100000000000000000000000000000000000000000000000000000000000000",  # identity (order 1)
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
        "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
        "0000000000000000000000000000000000000000000000000000000000000080",  # order 4
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",  # order 8
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",  # order 8
    )
)
_ED25519_P = 2**255 - 19
DEFAULT_WINDOW = 60
# the members of each key type that make up its RFC 7638 thumbprint, in lexicographic order
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}
# what each algorithm's key must be: its kty, and its crv where it has one
_KEY_TYPES = {
    "ES256": ("EC", "P-256"),
    "EdDSA": ("OKP", "Ed25519"),
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
}
# private (or symmetric) key members: a proof's jwk must carry none of them (§4.3 step 7)
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_UNRESERVED = "-._~"
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")  # an empty signature: alg none
# each allowed algorithm's verification (PyJWT's implementations, over cryptography)
_VERIFIERS = {alg: jwt.algorithms.get_default_algorithms()[alg] for alg in _KEY_TYPES}


class InvalidDPoPProof(OAuthError):
    """§5, §12.2: the DPoP proof is missing where required, malformed, or fails a check.

    At the token endpoint a 400 (RFC 6749 §5.2 error response); resource servers answer
    :class:`ProofRefused` instead, a 401 challenge."""

    error = "invalid_dpop_proof"


class UseDPoPNonce(OAuthError):
    """§8: the authorization server wants its nonce in the proof; ``DPoP-Nonce`` carries a fresh one."""

    error = "use_dpop_nonce"

    def __init__(self, description: str, *, nonce: str) -> None:
        super().__init__(description)
        self.nonce = nonce

    def headers(self) -> dict[str, str]:
        return {**super().headers(), NONCE_HEADER: self.nonce}


class ProofRefused(BearerError):
    """§7.1: a resource server's refusal of a request's DPoP proof (401, ``WWW-Authenticate: DPoP``)."""

    error = "invalid_dpop_proof"
    status = 401
    scheme = HEADER


class NonceRequired(BearerError):
    """§9: the resource server wants its nonce in the proof; ``DPoP-Nonce`` carries a fresh one."""

    error = "use_dpop_nonce"
    status = 401
    scheme = HEADER

    def __init__(self, description: str, *, nonce: str) -> None:
        super().__init__(description)
        self.nonce = nonce

    def headers(self) -> dict[str, str]:
        return {**super().headers(), NONCE_HEADER: self.nonce}


@dataclass(frozen=True, slots=True)
class Proof:
    """A DPoP proof that passed every check."""

    jkt: str  # the RFC 7638 SHA-256 thumbprint of its key: what tokens are bound to (``cnf.jkt``)
    jti: str
    iat: int
    claims: Mapping[str, Any]


class ReplayStore(Protocol):
    """Where the ``jti`` of accepted proofs are remembered (RFC 9449 §11.1)."""

    async def first_use(self, ident: str, ttl: int) -> bool:
        """True the first time ``ident`` is seen within ``ttl`` seconds; False on every replay."""
        ...


class MemoryReplayStore:
    """One process's replay store: enough for a single replica running a single worker.

    At most ``max_entries`` identifiers, each kept until its time is up. A full store forgets
    nothing early (that would let a proof be replayed): it refuses new proofs with a 503 until the
    oldest expire. Use :class:`RedisReplayStore` as soon as there is more than one process.
    """

    def __init__(self, max_entries: int = 100_000, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # ident → when it may be forgotten

    def __len__(self) -> int:
        return len(self._seen)

    async def first_use(self, ident: str, ttl: int) -> bool:
        now = self._clock()
        while self._seen:  # oldest first: every ident is kept for the same window
            oldest, until = next(iter(self._seen.items()))
            if until > now:
                break
            del self._seen[oldest]
        seen_until = self._seen.get(ident)
        if seen_until is not None and seen_until > now:
            return False
        if len(self._seen) >= self.max_entries:
            raise TemporarilyUnavailable("Too many DPoP proofs in flight; retry shortly.", retry_after=1)
        self._seen[ident] = now + max(ttl, 1)
        self._seen.move_to_end(ident)
        return True


class _SetNx(Protocol):
    """What :class:`RedisReplayStore` needs of a redis-py asyncio client (or cluster client)."""

    def set(self, name: str, value: bytes, *, nx: bool, ex: int) -> Awaitable[Any]: ...


class RedisReplayStore:
    """The replay store every replica shares: one ``SET key 1 NX EX ttl`` per proof."""

    def __init__(self, redis: _SetNx, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def first_use(self, ident: str, ttl: int) -> bool:
        return bool(await self._redis.set(f"{self._prefix}{ident}", b"1", nx=True, ex=max(ttl, 1)))


class Nonces(Protocol):
    """Server-provided nonces (§8, §9): a fresh one to hand out, and whether one is still good."""

    async def current(self) -> str: ...

    async def valid(self, nonce: str) -> bool: ...


class HmacNonces:
    """Stateless, rotating nonces: ``base64url(HMAC-SHA256(secret, step))``, a step being
    ``lifetime`` seconds. The nonce of the current step is handed out; those of the previous,
    current and next steps are accepted (the next one: replicas' clocks differ a little), so a
    nonce is good for between ``lifetime`` and about three times that. Every replica that knows the
    secret makes and accepts the same nonces, with nothing stored."""

    def __init__(self, secret: bytes, lifetime: int = 300, *, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("a nonce secret needs at least 16 bytes")
        self._secret = secret
        self.lifetime = lifetime
        self._clock = clock

    def _nonce(self, step: int) -> str:
        mac = hmac.new(self._secret, f"tessera-dpop-nonce:{step}".encode(), hashlib.sha256).digest()
        return _b64(mac)

    def _step(self) -> int:
        return int(self._clock() // self.lifetime)

    async def current(self) -> str:
        return self._nonce(self._step())

    async def valid(self, nonce: str) -> bool:
        step = self._step()
        # every candidate is compared, in constant time: no early exit tells which step matched
        matches = [
            hmac.compare_digest(nonce.encode(), self._nonce(s).encode()) for s in (step - 1, step, step + 1)
        ]
        return any(matches)


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The JWK SHA-256 thumbprint (RFC 7638 §3): base64url of the hash of the key's required
    members, in lexicographic order, as JSON without whitespace. ValueError for another key type."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or not all(isinstance(jwk.get(m), str) for m in members):
        raise ValueError("not an EC, OKP or RSA public key")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), ensure_ascii=False)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def is_thumbprint(value: str) -> bool:
    """Whether ``value`` looks like a SHA-256 thumbprint: 43 base64url characters (32 bytes)."""
    return len(value) == 43 and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)


def token_hash(access_token: str) -> str:
    """``ath`` (§4.2): base64url of the SHA-256 of the access token's ASCII."""
    return _b64(hashlib.sha256(access_token.encode("ascii", "replace")).digest())


def normalize_url(url: str) -> str | None:
    """``url`` without query and fragment, normalised for comparison (§4.3; RFC 3986 §6.2.2-6.2.3):
    scheme and host in lower case, the scheme's default port dropped, an empty path as ``/``,
    percent-encodings in upper case and unreserved characters decoded. None if it is no http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != (443 if scheme == "https" else 80):
        host = f"{host}:{port}"
    path = _PERCENT.sub(_percent, parts.path) or "/"
    return urlunsplit((scheme, host, path, "", ""))


def _percent(match: re.Match[str]) -> str:
    """RFC 3986 §6.2.2.1-2: a percent-encoded unreserved character is the character; any other
    percent-encoding is written in upper case."""
    char = chr(int(match.group(1), 16))
    return char if char.isascii() and (char.isalnum() or char in _UNRESERVED) else match.group(0).upper()


class ProofVerifier:
    """Checks DPoP proofs (§4.3); see the module. ``window``: how far ``iat`` may be from this
    server's clock, either way; a proof's ``jti`` is remembered for twice that (plus a second), as
    long as the proof could be accepted. ``nonces``: require the server's nonce (§8, §9)."""

    def __init__(
        self,
        *,
        replay: ReplayStore | None = None,
        window: int = DEFAULT_WINDOW,
        algorithms: tuple[str, ...] = ALGORITHMS,
        nonces: Nonces | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unknown = set(algorithms) - set(_KEY_TYPES)
        if unknown or not algorithms:
            raise ValueError(f"DPoP algorithms must be among {', '.join(ALGORITHMS)}")
        self.replay: ReplayStore = MemoryReplayStore() if replay is None else replay
        self.window = window
        self.algorithms = algorithms
        self.nonces = nonces
        self._clock = clock

    @property
    def replay_ttl(self) -> int:
        """How long a ``jti`` is remembered: as long as its proof's ``iat`` is within the window."""
        return 2 * self.window + 1

    async def verify(
        self,
        proof: str,
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        bound_to: str | None = None,
    ) -> Proof:
        """The proof, if it passes every check for a ``method`` request to ``url`` (the URL the
        client called, as it sees it); :class:`InvalidDPoPProof` or :class:`UseDPoPNonce` if not.

        ``access_token``: the token sent with the proof (its hash must be ``ath``); ``bound_to``:
        the thumbprint that token is bound to (its ``cnf.jkt``; another key is :class:`InvalidToken`,
        as §7.1's example has it). The ``jti`` is recorded last, once everything else passed.
        """
        if len(proof) > MAX_PROOF_LENGTH or _COMPACT_JWS.fullmatch(proof) is None:
            raise InvalidDPoPProof("The DPoP header is not one well-formed JWT.")
        encoded_header, encoded_payload, encoded_signature = proof.split(".")
        jwk, key, alg = self._key(encoded_header)
        try:
            claims = json.loads(_b64decode(encoded_payload))
        except (ValueError, TypeError):
            claims = None
        if not isinstance(claims, dict):
            raise InvalidDPoPProof("The DPoP proof's payload is not a JSON object.")
        try:
            target = _normalized(url)
        except ValueError:  # the request's URL (a server's, but made of what it received)
            raise InvalidDPoPProof("This request's URL is not one a DPoP proof can name.") from None
        # the cheap checks first, on claims not yet trusted: a proof that cannot pass costs no
        # signature verification (nothing is recorded before the signature verifies)
        jti, iat = self._claims(claims, method, target)
        # the JWS signature (RFC 7515 §5.2) over the segments as sent, with the algorithm's own
        # verification (PyJWT's: ES256's raw r||s signature, PS256's padding)
        signed = f"{encoded_header}.{encoded_payload}".encode("ascii")
        try:
            valid = _VERIFIERS[alg].verify(signed, key, _b64decode(encoded_signature))
        except (jwt.PyJWTError, ValueError, TypeError):
            valid = False
        if not valid:
            raise InvalidDPoPProof("The DPoP proof's signature does not verify with its jwk.")
        if self.nonces is not None:
            nonce = claims.get("nonce")
            if not isinstance(nonce, str) or not await self.nonces.valid(nonce):
                described = "is required" if nonce is None else "is not (or no longer) valid"
                raise UseDPoPNonce(
                    f"This server's DPoP nonce {described}: sign a new proof with the nonce in the"
                    f" {NONCE_HEADER} header.",
                    nonce=await self.nonces.current(),
                )
        if access_token is not None:
            ath = claims.get("ath")
            if not isinstance(ath, str) or not hmac.compare_digest(
                ath.encode(), token_hash(access_token).encode()
            ):
                raise InvalidDPoPProof(
                    "The DPoP proof's ath is not the hash of the access token sent with it."
                )
        try:
            jkt = thumbprint(jwk)
        except ValueError:
            raise InvalidDPoPProof("The DPoP proof's jwk is not a valid public key.") from None
        if bound_to is not None and not hmac.compare_digest(jkt.encode(), bound_to.encode()):
            raise InvalidToken("The access token is bound to another DPoP key than the proof's.")
        # in the context of the target URI (§11.1), and of the key: nobody else's proof can spend it
        ident = hashlib.sha256("\x00".join((jkt, target, jti)).encode()).hexdigest()
        if not await self.replay.first_use(ident, self.replay_ttl):
            raise InvalidDPoPProof(
                "This DPoP proof was already used: sign a new one (a new jti) for each request."
            )
        return Proof(jkt=jkt, jti=jti, iat=iat, claims=claims)

    def _key(self, encoded: str) -> tuple[dict[str, Any], Any, str]:
        """The proof's ``jwk`` header, as a verification key, and its ``alg`` (§4.3 steps 2, 4-7)."""
        try:
            header = json.loads(_b64decode(encoded))
        except (ValueError, TypeError):
            raise InvalidDPoPProof("The DPoP header is not one well-formed JWT.") from None
        if not isinstance(header, dict):
            raise InvalidDPoPProof("The DPoP header is not one well-formed JWT.")
        if str(header.get("typ", "")).lower() != TYP:
            raise InvalidDPoPProof(f"The DPoP proof's typ must be {TYP}.")
        if "crit" in header:
            raise InvalidDPoPProof("The DPoP proof has a critical header extension that is not understood.")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidDPoPProof(f"The DPoP proof's alg must be one of {' '.join(self.algorithms)}.")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise InvalidDPoPProof("The DPoP proof has no jwk header with its public key.")
        if _PRIVATE_MEMBERS.intersection(jwk):
            raise InvalidDPoPProof(
                "The DPoP proof's jwk must be a public key: it holds private key material."
            )
        kty, crv = _KEY_TYPES[alg]
        if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
            raise InvalidDPoPProof(f"The DPoP proof's jwk is not a {crv or kty} key, as {alg} needs.")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            raise InvalidDPoPProof("The DPoP proof's jwk is not a valid public key.") from None
        if kty == "RSA":
            if key.key_size < MIN_RSA_BITS:
                raise InvalidDPoPProof(f"The DPoP proof's RSA key must have at least {MIN_RSA_BITS} bits.")
            if key.key_size > MAX_RSA_BITS:
                raise InvalidDPoPProof(f"The DPoP proof's RSA key must have at most {MAX_RSA_BITS} bits.")
            if key.public_numbers().e != RSA_EXPONENT:
                raise InvalidDPoPProof(
                    f"The DPoP proof's RSA key must have the public exponent {RSA_EXPONENT}."
                )
        elif kty == "OKP":
            raw = _b64decode(str(jwk.get("x", "")))
            if len(raw) != 32:
                raise InvalidDPoPProof("The DPoP proof's jwk is not a valid public key.")
            flipped = raw[:31] + bytes([raw[31] ^ 0x80])
            if raw in _SMALL_ORDER_ED25519 or flipped in _SMALL_ORDER_ED25519:
                raise InvalidDPoPProof("The DPoP proof's jwk is a small-order Ed25519 key.")
            if int.from_bytes(raw, "little") & ((1 << 255) - 1) >= _ED25519_P:  # RFC 8032 §5.1.3
                raise InvalidDPoPProof("The DPoP proof's jwk is not a canonically encoded Ed25519 key.")
        return jwk, key, alg

    def _claims(self, claims: dict[str, Any], method: str, target: str) -> tuple[str, int]:
        """``jti``, ``htm``, ``htu`` (against ``target``, normalised) and ``iat`` (§4.2; §4.3 steps
        3, 8, 9, 11)."""
        jti, htm, htu, iat = (claims.get(name) for name in ("jti", "htm", "htu", "iat"))
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
            raise InvalidDPoPProof(f"The DPoP proof needs a jti of 1 to {MAX_JTI_LENGTH} characters.")
        if not isinstance(htm, str) or not isinstance(htu, str):
            raise InvalidDPoPProof("The DPoP proof needs htm and htu claims.")
        if isinstance(iat, bool) or not isinstance(iat, int | float) or not math.isfinite(iat):
            raise InvalidDPoPProof("The DPoP proof needs an iat claim (seconds since 1970).")
        if htm != method:
            raise InvalidDPoPProof(f"The DPoP proof is for another HTTP method (htm must be {method}).")
        if normalize_url(htu) != target:
            raise InvalidDPoPProof(f"The DPoP proof is for another URL (htu must be {target}).")
        now = self._clock()
        if iat < now - self.window:
            raise InvalidDPoPProof(f"The DPoP proof is too old: its iat is more than {self.window} s ago.")
        if iat > now + self.window:
            raise InvalidDPoPProof(
                f"The DPoP proof is from the future: its iat is more than {self.window} s ahead."
            )
        return jti, int(iat)


@functools.lru_cache(maxsize=1024)
def _normalized(url: str) -> str:
    """The URL a proof must name, normalised: a server's own endpoints, so a few, cached."""
    normalized = normalize_url(url)
    if normalized is None:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return normalized


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
