"""Every option of the authorization server, its environment variable and its default, in one place.

Read once at start by :meth:`Settings.from_env`; the object is frozen afterwards.

=================================== ========================================================
variable                            meaning (default)
=================================== ========================================================
TESSERA_ISSUER                      the issuer URL; every URL in metadata is built from it.
                                    https, or http on localhost for development. No query,
                                    fragment or path. (http://localhost:8000)
TESSERA_DATABASE_URL                postgresql:// URL. Unset: the embedded development
                                    Postgres in TESSERA_DEV_DATA_DIR (localhost issuers only).
TESSERA_REDIS_URL                   redis://, rediss://, unix://, redis+cluster://host:port or
                                    redis+sentinel://host:port,…/service. Unset: embedded dev Redis.
TESSERA_DEV_DATA_DIR                where the embedded development servers keep data (.tessera)
TESSERA_KEY_ENCRYPTION_KEY          base64 of 32 bytes (AES-256-GCM) that encrypts private
                                    signing keys at rest. Required unless the issuer is
                                    http on localhost, where a public dev key is used loudly.
TESSERA_KEY_ENCRYPTION_KEYS_PREVIOUS
                                    comma-separated base64 32-byte keys that only decrypt
                                    (never encrypt) private signing keys: the old KEK during a
                                    rotation, until ``tessera keys rewrap`` has run (none)
TESSERA_REDIS_PREFIX                prefix of every Redis key (tessera:)
TESSERA_ACCESS_TOKEN_AUDIENCE       ``aud`` of access tokens ({issuer}/api, the resource server)
TESSERA_ACCESS_TOKEN_TTL            seconds (600)
TESSERA_REFRESH_TOKEN_TTL           seconds (2592000, 30 days)
TESSERA_REFRESH_GRACE_PERIOD        seconds a just-rotated refresh token may be retried (0 = off)
TESSERA_REFRESH_FAMILY_LIFETIME     seconds a refresh-token family lives at most, however often it
                                    is used; then the user signs in again (2592000, 30 days)
TESSERA_CODE_TTL                    authorization code lifetime in seconds (600)
TESSERA_SESSION_TTL                 login session lifetime in seconds (28800)
TESSERA_SIGNING_ALG                 ES256 or RS256 for new signing keys (ES256)
TESSERA_KEY_PREPUBLICATION          seconds a rotated-in key is published before it signs (900)
TESSERA_JWKS_MAX_AGE                Cache-Control max-age of the JWKS, seconds (300)
TESSERA_KEY_REFRESH_INTERVAL        how often each replica reloads signing keys, seconds (30)
TESSERA_LOGIN_MAX_FAILURES          failed logins per username before a lockout (5)
TESSERA_LOGIN_MAX_FAILURES_PER_IP   failed logins per client IP before a lockout (50)
TESSERA_LOGIN_LOCKOUT_WINDOW        seconds failures are counted and a lockout lasts (900)
                                    A username's lockout spares the addresses it signed in from
                                    before (each has its own TESSERA_LOGIN_MAX_FAILURES).
TESSERA_LOGIN_KNOWN_ADDRESS_TTL     seconds an address a user signed in from stays known (2592000)
TESSERA_RATE_TOKEN_PER_CLIENT       token requests per client per minute (60000; 0 = off)
TESSERA_RATE_TOKEN_PER_IP           token requests per client IP per minute (60000)
TESSERA_RATE_AUTHORIZE_PER_IP       /authorize requests per client IP per minute (600)
TESSERA_RATE_LOGIN_PER_IP           login form posts per client IP per minute (120)
TESSERA_RATE_REVOKE_PER_CLIENT      revocation requests per client per minute (6000)
TESSERA_RATE_REVOKE_PER_IP          revocation requests per client IP per minute (6000)
TESSERA_RATE_INTROSPECT_PER_CLIENT  introspection requests per client per minute (60000)
TESSERA_RATE_INTROSPECT_PER_IP      introspection requests per client IP per minute (60000)
                                    (per-IP budgets and lockouts count an IPv6 client's whole /64)
TESSERA_RATE_SYNC_MS                how often each replica adds its rate-limit counts to Redis,
                                    milliseconds (100); 0 = a round trip per request, exact
TESSERA_SCOPES                      JSON object scope -> description shown on the consent page
                                    (photos:read, photos:write, warehouse:stats)
TESSERA_MAX_BODY_BYTES              largest accepted request body (65536)
TESSERA_TRUSTED_PROXIES             comma-separated addresses/CIDRs of the gateway; X-Forwarded-For
                                    is believed only from these (none)
TESSERA_SHUTDOWN_GRACE              seconds in-flight requests may finish after SIGTERM (30)
TESSERA_HEADER_TIMEOUT              seconds a connection may take to send a request's headers,
                                    and may stay idle between requests (30): slow-loris guard
TESSERA_BODY_TIMEOUT                seconds a request body may take to arrive (10)
TESSERA_HASHING_THREADS             argon2id threads per process (0: one per usable core, a
                                    container's CPU quota counted; each holds 19 MiB while hashing)
TESSERA_HASHING_QUEUE               password checks that may wait per hashing thread (64); past
                                    that a login is refused at once with 503 and Retry-After
TESSERA_ASSERTION_AUDIENCE_COMPAT   on: private_key_jwt assertions may also name the endpoint
                                    they are sent to as ``aud`` (off: only the issuer, as a
                                    single string, per the RFC 7523 audience-injection fix)
TESSERA_WORKERS                     server processes sharing the port with SO_REUSEPORT (1);
                                    ``--workers`` on the command line wins
TESSERA_HOST / TESSERA_PORT         listen address (127.0.0.1 / 8000)
=================================== ========================================================
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from auth_server.signing import ALGORITHMS as SIGNING_ALGORITHMS
from shared.config import ConfigError, Env, is_local_http
from shared.http import parse_networks

log = logging.getLogger("tessera.settings")

DEFAULT_SCOPES: Mapping[str, str] = MappingProxyType(
    {
        "photos:read": "See your photos and their titles",
        "photos:write": "Upload new photos and delete existing ones",
        "warehouse:stats": "Read aggregate statistics of the photo warehouse (partners only)",
    }
)

# Publicly known, so only ever accepted for an http://localhost issuer (development).
DEV_KEY_ENCRYPTION_KEY = b"tessera-development-only-kek!!!!"


@dataclass(frozen=True, slots=True)
class Settings:
    issuer: str
    database_url: str | None
    redis_url: str | None
    key_encryption_key: bytes
    key_encryption_keys_previous: tuple[bytes, ...] = ()
    dev_data_dir: Path = Path(".tessera")
    redis_prefix: str = "tessera:"
    access_token_audience: str = ""
    access_token_ttl: int = 600
    refresh_token_ttl: int = 30 * 24 * 3600
    refresh_grace_period: int = 0
    refresh_family_lifetime: int = 30 * 24 * 3600
    code_ttl: int = 600
    session_ttl: int = 8 * 3600
    signing_alg: str = "ES256"
    key_prepublication: int = 900
    jwks_max_age: int = 300
    key_refresh_interval: int = 30
    login_max_failures: int = 5
    login_max_failures_per_ip: int = 50
    login_lockout_window: int = 900
    login_known_address_ttl: int = 30 * 24 * 3600
    rate_token_per_client: int = 60000
    rate_token_per_ip: int = 60000
    rate_authorize_per_ip: int = 600
    rate_login_per_ip: int = 120
    rate_revoke_per_client: int = 6000
    rate_revoke_per_ip: int = 6000
    rate_introspect_per_client: int = 60000
    rate_introspect_per_ip: int = 60000
    rate_sync_ms: int = 100
    scopes: Mapping[str, str] = field(default_factory=lambda: DEFAULT_SCOPES)
    max_body_bytes: int = 65536
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    shutdown_grace: int = 30
    header_timeout: int = 30
    body_timeout: int = 10
    workers: int = 1
    hashing_threads: int = 0
    hashing_queue: int = 64
    assertion_audience_compat: bool = False
    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def development(self) -> bool:
        """Plain http on localhost: relaxed cookie and key-encryption rules apply only here."""
        return is_local_http(self.issuer)

    @property
    def secure_cookies(self) -> bool:
        return not self.development

    def endpoint(self, path: str) -> str:
        return f"{self.issuer}{path}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = Env(os.environ if environ is None else environ)
        issuer = env.url("ISSUER", ("https", "http"), "http://localhost:8000").rstrip("/")
        parts = urlsplit(issuer)
        if parts.query or parts.fragment or parts.path not in ("", "/"):
            raise ConfigError(
                f"{env.name('ISSUER')} must be scheme://host[:port] with no path, query or fragment"
            )
        if parts.scheme == "http" and not is_local_http(issuer):
            raise ConfigError(
                f"{env.name('ISSUER')} must use https (plain http is allowed only on localhost)"
            )
        kek = env.key_bytes("KEY_ENCRYPTION_KEY", 32)
        if kek is None:
            if not is_local_http(issuer):
                raise ConfigError(
                    f"{env.name('KEY_ENCRYPTION_KEY')} is required (base64 of 32 random bytes): "
                    "it encrypts the private signing keys at rest"
                )
            log.warning(
                "!!! %s is not set: using the PUBLIC development key-encryption key. "
                "Signing keys are NOT protected at rest. Never do this outside local development. !!!",
                env.name("KEY_ENCRYPTION_KEY"),
            )
            kek = DEV_KEY_ENCRYPTION_KEY
        database_url = env.optional("DATABASE_URL")
        if database_url is not None:
            database_url = env.url("DATABASE_URL", ("postgresql", "postgres"))
        redis_url = env.optional("REDIS_URL")
        if redis_url is not None:
            redis_url = env.url(
                "REDIS_URL",
                (
                    "redis",
                    "rediss",
                    "unix",
                    "redis+cluster",
                    "rediss+cluster",
                    "redis+sentinel",
                    "rediss+sentinel",
                ),
            )
        if (database_url is None or redis_url is None) and not is_local_http(issuer):
            missing = "DATABASE_URL" if database_url is None else "REDIS_URL"
            raise ConfigError(f"{env.name(missing)} is required when the issuer is not http://localhost")
        access_ttl = env.integer("ACCESS_TOKEN_TTL", 600, minimum=30, maximum=86400)
        return cls(
            issuer=issuer,
            database_url=database_url,
            redis_url=redis_url,
            key_encryption_key=kek,
            key_encryption_keys_previous=_previous_keks(env, "KEY_ENCRYPTION_KEYS_PREVIOUS"),
            dev_data_dir=Path(env.string("DEV_DATA_DIR", ".tessera")),
            redis_prefix=env.string("REDIS_PREFIX", "tessera:"),
            access_token_audience=env.string("ACCESS_TOKEN_AUDIENCE", f"{issuer}/api"),
            access_token_ttl=access_ttl,
            refresh_token_ttl=env.integer("REFRESH_TOKEN_TTL", 30 * 24 * 3600, minimum=60),
            refresh_grace_period=env.integer("REFRESH_GRACE_PERIOD", 0, maximum=60),
            refresh_family_lifetime=env.integer("REFRESH_FAMILY_LIFETIME", 30 * 24 * 3600, minimum=1),
            code_ttl=env.integer("CODE_TTL", 600, minimum=10, maximum=600),
            session_ttl=env.integer("SESSION_TTL", 8 * 3600, minimum=60),
            signing_alg=env.choice("SIGNING_ALG", "ES256", SIGNING_ALGORITHMS),
            key_prepublication=env.integer("KEY_PREPUBLICATION", 900),
            jwks_max_age=env.integer("JWKS_MAX_AGE", 300, maximum=86400),
            key_refresh_interval=env.integer("KEY_REFRESH_INTERVAL", 30, minimum=1),
            login_max_failures=env.integer("LOGIN_MAX_FAILURES", 5, minimum=1),
            login_max_failures_per_ip=env.integer("LOGIN_MAX_FAILURES_PER_IP", 50, minimum=1),
            login_lockout_window=env.integer("LOGIN_LOCKOUT_WINDOW", 900, minimum=1),
            login_known_address_ttl=env.integer("LOGIN_KNOWN_ADDRESS_TTL", 30 * 24 * 3600),
            rate_token_per_client=env.integer("RATE_TOKEN_PER_CLIENT", 60000),
            rate_token_per_ip=env.integer("RATE_TOKEN_PER_IP", 60000),
            rate_authorize_per_ip=env.integer("RATE_AUTHORIZE_PER_IP", 600),
            rate_login_per_ip=env.integer("RATE_LOGIN_PER_IP", 120),
            rate_revoke_per_client=env.integer("RATE_REVOKE_PER_CLIENT", 6000),
            rate_revoke_per_ip=env.integer("RATE_REVOKE_PER_IP", 6000),
            rate_introspect_per_client=env.integer("RATE_INTROSPECT_PER_CLIENT", 60000),
            rate_introspect_per_ip=env.integer("RATE_INTROSPECT_PER_IP", 60000),
            rate_sync_ms=env.integer("RATE_SYNC_MS", 100, maximum=10_000),
            scopes=_scopes(env),
            max_body_bytes=env.integer("MAX_BODY_BYTES", 65536, minimum=1024),
            trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
            shutdown_grace=env.integer("SHUTDOWN_GRACE", 30, maximum=600),
            header_timeout=env.integer("HEADER_TIMEOUT", 30, minimum=1, maximum=3600),
            body_timeout=env.integer("BODY_TIMEOUT", 10, minimum=1, maximum=3600),
            workers=env.integer("WORKERS", 1, minimum=1, maximum=256),
            hashing_threads=env.integer("HASHING_THREADS", 0, maximum=256),
            hashing_queue=env.integer("HASHING_QUEUE", 64, minimum=1, maximum=10_000),
            assertion_audience_compat=env.choice("ASSERTION_AUDIENCE_COMPAT", "off", ("on", "off")) == "on",
            host=env.string("HOST", "127.0.0.1"),
            port=env.integer("PORT", 8000, maximum=65535),
        )


def _previous_keks(env: Env, key: str) -> tuple[bytes, ...]:
    """Each comma-separated entry read and checked exactly like TESSERA_KEY_ENCRYPTION_KEY."""
    keys = []
    for position, entry in enumerate((env.optional(key) or "").split(","), start=1):
        if not entry.strip():
            continue
        try:
            decoded = Env({env.name(key): entry}, prefix=env.name("")).key_bytes(key, 32)
        except ConfigError as error:
            raise ConfigError(f"{error} (entry {position})") from None
        assert decoded is not None
        keys.append(decoded)
    return tuple(keys)


def _networks(env: Env, key: str) -> tuple[IPv4Network | IPv6Network, ...]:
    try:
        return parse_networks(env.optional(key) or "")
    except ValueError:
        raise ConfigError(f"{env.name(key)} must be comma-separated IP addresses or CIDR blocks") from None


def _scopes(env: Env) -> Mapping[str, str]:
    raw = env.optional("SCOPES")
    if raw is None:
        return DEFAULT_SCOPES
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigError(f"{env.name('SCOPES')} must be a JSON object of scope -> description") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and " " not in k for k, v in value.items()
    ):
        raise ConfigError(f"{env.name('SCOPES')} must be a JSON object of scope -> description")
    return MappingProxyType(dict(value))
