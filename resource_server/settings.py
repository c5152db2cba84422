"""The resource server's options, read once from ``TESSERA_*`` variables.

=================================== ========================================================
variable                            meaning (default)
=================================== ========================================================
TESSERA_ISSUER                      whom to trust; the JWKS is discovered from its metadata
                                    (http://localhost:8000, matching the auth server)
TESSERA_RESOURCE_DATABASE_URL       its Postgres (TESSERA_DATABASE_URL; unset: embedded dev)
TESSERA_ACCESS_TOKEN_AUDIENCE       the ``aud`` it requires ({issuer}/api, as the auth server)
TESSERA_TOKEN_ALGORITHMS            accepted signing algorithms (ES256,RS256)
TESSERA_TOKEN_LEEWAY                clock leeway in seconds for exp/nbf/iat (30)
TESSERA_JWKS_REFRESH_INTERVAL       background JWKS refresh, seconds (300)
TESSERA_JWKS_MIN_REFETCH_INTERVAL   least seconds between refetches on an unknown kid (10)
TESSERA_REVOCATION_CHECK            on: refuse tokens the issuer has revoked, from its revocation
                                    list (tessera_revocation_list_uri), pulled in the background;
                                    off: a revoked token is accepted until it expires (on)
TESSERA_REVOCATION_REFRESH_INTERVAL seconds between pulls of the revocation list; a revocation
                                    takes effect here within about this + 1 s (5)
TESSERA_MAX_PHOTO_BYTES             largest upload (5242880)
TESSERA_TOKEN_CACHE_SIZE            verified tokens kept (by SHA-256) until they expire (10000; 0 = off)
TESSERA_SHUTDOWN_GRACE              seconds in-flight requests may finish after SIGTERM (30)
TESSERA_HEADER_TIMEOUT              seconds for a request's headers, and idle between requests (30)
TESSERA_BODY_TIMEOUT                seconds a request body may take to arrive (30: photo uploads)
TESSERA_RESOURCE_WORKERS            processes sharing the port with SO_REUSEPORT (1)
TESSERA_RESOURCE_HOST / _PORT       listen address (127.0.0.1 / 8001)
=================================== ========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from shared.config import ConfigError, Env, is_local_http
from shared.jwt_validation import DEFAULT_ALGORITHMS, FORBIDDEN_ALGORITHMS


@dataclass(frozen=True, slots=True)
class ResourceSettings:
    issuer: str
    database_url: str | None
    audience: str
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: int = 30
    jwks_refresh_interval: int = 300
    jwks_min_refetch_interval: int = 10
    revocation_check: bool = True
    revocation_refresh_interval: float = 5.0
    max_photo_bytes: int = 5 * 1024 * 1024
    token_cache_size: int = 10_000
    dev_data_dir: Path = Path(".tessera")
    shutdown_grace: int = 30
    header_timeout: int = 30
    body_timeout: int = 30
    workers: int = 1
    host: str = "127.0.0.1"
    port: int = 8001

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ResourceSettings:
        env = Env(os.environ if environ is None else environ)
        issuer = env.url("ISSUER", ("https", "http"), "http://localhost:8000").rstrip("/")
        if urlsplit(issuer).scheme == "http" and not is_local_http(issuer):
            # keys and the revocation list would come unauthenticated over the network
            raise ConfigError(
                f"{env.name('ISSUER')} must use https (plain http is allowed only on localhost)"
            )
        database_url = env.optional("RESOURCE_DATABASE_URL") or env.optional("DATABASE_URL")
        if database_url is None and not is_local_http(issuer):
            raise ConfigError(
                f"{env.name('RESOURCE_DATABASE_URL')} is required when the issuer is not localhost"
            )
        algorithms = tuple(
            a.strip()
            for a in env.string("TOKEN_ALGORITHMS", ",".join(DEFAULT_ALGORITHMS)).split(",")
            if a.strip()
        )
        if not algorithms or FORBIDDEN_ALGORITHMS.intersection(algorithms):
            raise ConfigError(f"{env.name('TOKEN_ALGORITHMS')} must list asymmetric algorithms only")
        return cls(
            issuer=issuer,
            database_url=database_url,
            audience=env.string("ACCESS_TOKEN_AUDIENCE", f"{issuer}/api"),
            algorithms=algorithms,
            leeway=env.integer("TOKEN_LEEWAY", 30, maximum=300),
            jwks_refresh_interval=env.integer("JWKS_REFRESH_INTERVAL", 300, minimum=5),
            jwks_min_refetch_interval=env.integer("JWKS_MIN_REFETCH_INTERVAL", 10),
            revocation_check=env.choice("REVOCATION_CHECK", "on", ("on", "off")) == "on",
            revocation_refresh_interval=env.integer("REVOCATION_REFRESH_INTERVAL", 5, minimum=1, maximum=300),
            max_photo_bytes=env.integer("MAX_PHOTO_BYTES", 5 * 1024 * 1024, minimum=1024),
            token_cache_size=env.integer("TOKEN_CACHE_SIZE", 10_000, maximum=10_000_000),
            dev_data_dir=Path(env.string("DEV_DATA_DIR", ".tessera")),
            shutdown_grace=env.integer("SHUTDOWN_GRACE", 30, maximum=600),
            header_timeout=env.integer("HEADER_TIMEOUT", 30, minimum=1, maximum=3600),
            body_timeout=env.integer("BODY_TIMEOUT", 30, minimum=1, maximum=3600),
            workers=env.integer("RESOURCE_WORKERS", 1, minimum=1, maximum=256),
            host=env.string("RESOURCE_HOST", "127.0.0.1"),
            port=env.integer("RESOURCE_PORT", 8001, maximum=65535),
        )
