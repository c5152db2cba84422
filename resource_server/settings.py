"""The resource server's options, read once from ``TESSERA_*`` variables: each declared once below
(one :func:`~shared.config.setting` per field), with its rule, default and meaning.

The table below and the one in README.md ("Configuration") are generated from the declarations.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shared import settings_docs
from shared.config import (
    ConfigError,
    Env,
    Integer,
    Parsed,
    Switch,
    is_local_http,
    read_settings,
    setting,
    settings_class,
)
from shared.jwt_validation import DEFAULT_ALGORITHMS, FORBIDDEN_ALGORITHMS
from shared.protected_resource import check_url
from shared.serving import (
    body_timeout_setting,
    dev_data_dir_setting,
    header_timeout_setting,
    host_setting,
    port_setting,
    shutdown_grace_setting,
    workers_setting,
)


def _issuer(env: Env, key: str, default: str, earlier: Mapping[str, Any]) -> str:
    issuer = env.url(key, ("https", "http"), default).rstrip("/")
    if urlsplit(issuer).scheme == "http" and not is_local_http(issuer):
        # keys and the revocation list would come unauthenticated over the network
        raise ConfigError(f"{env.name(key)} must use https (plain http is allowed only on localhost)")
    return issuer


def _database_url(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str | None:
    database_url = env.optional(key) or env.optional("DATABASE_URL")
    if database_url is None and not is_local_http(earlier["issuer"]):
        raise ConfigError(f"{env.name(key)} is required when the issuer is not localhost")
    return database_url


def _algorithms(env: Env, key: str, default: tuple[str, ...], earlier: Mapping[str, Any]) -> tuple[str, ...]:
    algorithms = tuple(a.strip() for a in env.string(key, ",".join(default)).split(",") if a.strip())
    if not algorithms or FORBIDDEN_ALGORITHMS.intersection(algorithms):
        raise ConfigError(f"{env.name(key)} must list asymmetric algorithms only")
    return algorithms


def _audience(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str:
    return env.string(key, f"{earlier['issuer']}/api")


def _resource_url(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str | None:
    if env.optional(key) is None:
        return None  # resource_identifier() decides
    try:
        return check_url(env.string(key), env.name(key))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


SECONDS = "seconds"


@settings_class(read_by="resource server")
class ResourceSettings:
    # Read in this order: a rule may use the settings above it (the issuer).
    issuer: str = setting(
        "ISSUER",
        Parsed(_issuer, "https URL, or http on localhost"),
        "Whom the resource server trusts: the JWKS and the revocation list are found from its metadata.",
        unset="http://localhost:8000",
    )
    database_url: str | None = setting(
        "RESOURCE_DATABASE_URL",
        Parsed(_database_url, "PostgreSQL URL"),
        "The resource server's PostgreSQL. Unset: TESSERA_DATABASE_URL; with neither, the embedded"
        " development PostgreSQL (localhost issuers only).",
        unset=None,
        shown="TESSERA_DATABASE_URL",
    )
    audience: str = setting(
        "ACCESS_TOKEN_AUDIENCE",
        Parsed(_audience, "text"),
        "The `aud` of access tokens: the auth server issues it, the resource server requires it.",
        shown="{issuer}/api",
    )
    algorithms: tuple[str, ...] = setting(
        "TOKEN_ALGORITHMS",
        Parsed(_algorithms, "comma-separated asymmetric JWS algorithms"),
        "The signing algorithms access tokens may use.",
        default=DEFAULT_ALGORITHMS,
    )
    leeway: int = setting(
        "TOKEN_LEEWAY",
        Integer(maximum=300, unit=SECONDS),
        "Clock leeway for `exp`, `nbf` and `iat`.",
        default=30,
    )
    jwks_refresh_interval: int = setting(
        "JWKS_REFRESH_INTERVAL",
        Integer(minimum=5, unit=SECONDS),
        "How often the JWKS is refreshed in the background.",
        default=300,
    )
    jwks_min_refetch_interval: int = setting(
        "JWKS_MIN_REFETCH_INTERVAL",
        Integer(unit=SECONDS),
        "Least time between refetches of the JWKS on an unknown `kid`.",
        default=10,
    )
    revocation_check: bool = setting(
        "REVOCATION_CHECK",
        Switch(),
        "`on`: refuse tokens on the issuer's revocation list, pulled in the background; `off`: a"
        ' revoked token is accepted until it expires (see "Revoked tokens").',
        default=True,
    )
    revocation_refresh_interval: float = setting(
        "REVOCATION_REFRESH_INTERVAL",
        Integer(minimum=1, maximum=300, unit=SECONDS),
        "Time between pulls of the revocation list; a revocation takes effect within about this + 1 s.",
        default=5.0,
    )
    max_photo_bytes: int = setting(
        "MAX_PHOTO_BYTES",
        Integer(minimum=1024, unit="bytes"),
        "Largest photo upload.",
        default=5 * 1024 * 1024,
    )
    token_cache_size: int = setting(
        "TOKEN_CACHE_SIZE",
        Integer(maximum=10_000_000),
        "Verified tokens kept (keyed by SHA-256) until they expire; 0 verifies every request.",
        default=10_000,
    )
    dev_data_dir: Path = dev_data_dir_setting()
    shutdown_grace: int = shutdown_grace_setting()
    header_timeout: int = header_timeout_setting()
    body_timeout: int = body_timeout_setting(
        30,
        "How long a request body may take to arrive (photo uploads); a slow one gets 408 `invalid_request`.",
    )
    workers: int = workers_setting("RESOURCE_WORKERS")
    host: str = host_setting("RESOURCE_HOST")
    port: int = port_setting("RESOURCE_PORT", 8001)
    resource_url: str | None = setting(
        "RESOURCE_URL",
        Parsed(_resource_url, "https URL, or http on localhost"),
        "The Photo Warehouse's public URL, as clients call it (through any gateway): its resource"
        " identifier, published at `/.well-known/oauth-protected-resource` (followed by the URL's path)"
        " and named in its 401 and 403 challenges (RFC 9728). Unset: `http://localhost:{port}` when the"
        " issuer is on localhost; otherwise no metadata is published.",
        default=None,
        shown="none",
    )

    def resource_identifier(self) -> str | None:
        """The URL the warehouse publishes metadata for (RFC 9728); None: it publishes none."""
        if self.resource_url is not None:
            return self.resource_url
        return f"http://localhost:{self.port}" if is_local_http(self.issuer) else None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ResourceSettings:
        return read_settings(cls, environ)


__doc__ = settings_docs.docstring(__doc__, ResourceSettings)
