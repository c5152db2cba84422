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
    metrics_port_setting,
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


def _redis_url(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str | None:
    return env.optional(key) or env.optional("REDIS_URL")


def _resource_url(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str | None:
    if env.optional(key) is None:
        return None  # resource_identifier() decides
    try:
        return check_url(env.string(key), env.name(key))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


SECONDS = "seconds"


# --- the settings the warehouse and the MCP server both read, declared once (rows shared in the docs)


# (the issuer is declared in each class, with these: a field the constructor requires must be a
# setting() call where it is declared, for the type checker)
_ISSUER = Parsed(_issuer, "https URL, or http on localhost")
_ISSUER_DOC = "Whom the resource server trusts: the JWKS and the revocation list are found from its metadata."


def _algorithms_setting() -> tuple[str, ...]:
    return setting(
        "TOKEN_ALGORITHMS",
        Parsed(_algorithms, "comma-separated asymmetric JWS algorithms"),
        "The signing algorithms access tokens may use.",
        default=DEFAULT_ALGORITHMS,
    )


def _leeway_setting() -> int:
    return setting(
        "TOKEN_LEEWAY",
        Integer(maximum=300, unit=SECONDS),
        "Clock leeway for `exp`, `nbf` and `iat`.",
        default=30,
    )


def _jwks_refresh_interval_setting() -> int:
    return setting(
        "JWKS_REFRESH_INTERVAL",
        Integer(minimum=5, unit=SECONDS),
        "How often the JWKS is refreshed in the background.",
        default=300,
    )


def _jwks_min_refetch_interval_setting() -> int:
    return setting(
        "JWKS_MIN_REFETCH_INTERVAL",
        Integer(unit=SECONDS),
        "Least time between refetches of the JWKS on an unknown `kid`.",
        default=10,
    )


def _dpop_proof_window_setting() -> int:
    return setting(
        "DPOP_PROOF_WINDOW",
        Integer(minimum=5, maximum=600, unit=SECONDS),
        "How far a DPoP proof's `iat` may be from this server's clock, either way; its `jti` is"
        " remembered for twice as long.",
        default=60,
    )


def _replay_redis_setting(key: str, who: str) -> str | None:
    return setting(
        key,
        Parsed(_redis_url, "Redis URL"),
        f"Where {who} remembers the `jti` of DPoP proofs, so that each is accepted once across every"
        " replica and worker (one `SET NX` per DPoP request; bearer requests never touch it). Unset:"
        " TESSERA_REDIS_URL; with neither, each process remembers its own (one replica, one worker"
        " only).",
        default=None,
        shown="TESSERA_REDIS_URL",
    )


def _revocation_check_setting() -> bool:
    return setting(
        "REVOCATION_CHECK",
        Switch(),
        "`on`: refuse tokens on the issuer's revocation list, pulled in the background; `off`: a"
        ' revoked token is accepted until it expires (see "Revoked tokens").',
        default=True,
    )


def _revocation_refresh_interval_setting() -> float:
    return setting(
        "REVOCATION_REFRESH_INTERVAL",
        Integer(minimum=1, maximum=300, unit=SECONDS),
        "Time between pulls of the revocation list; a revocation takes effect within about this + 1 s.",
        default=5.0,
    )


def _token_cache_size_setting() -> int:
    return setting(
        "TOKEN_CACHE_SIZE",
        Integer(maximum=10_000_000),
        "Verified tokens kept (keyed by SHA-256) until they expire; 0 verifies every request.",
        default=10_000,
    )


@settings_class(read_by="resource server")
class ResourceSettings:
    # Read in this order: a rule may use the settings above it (the issuer).
    issuer: str = setting("ISSUER", _ISSUER, _ISSUER_DOC, unset="http://localhost:8000")
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
    algorithms: tuple[str, ...] = _algorithms_setting()
    leeway: int = _leeway_setting()
    jwks_refresh_interval: int = _jwks_refresh_interval_setting()
    jwks_min_refetch_interval: int = _jwks_min_refetch_interval_setting()
    revocation_check: bool = _revocation_check_setting()
    revocation_refresh_interval: float = _revocation_refresh_interval_setting()
    max_photo_bytes: int = setting(
        "MAX_PHOTO_BYTES",
        Integer(minimum=1024, unit="bytes"),
        "Largest photo upload.",
        default=5 * 1024 * 1024,
    )
    token_cache_size: int = _token_cache_size_setting()
    dpop_proof_window: int = _dpop_proof_window_setting()
    redis_url: str | None = _replay_redis_setting("RESOURCE_REDIS_URL", "the Photo Warehouse")
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
    metrics_port: int = metrics_port_setting("RESOURCE_METRICS_PORT")
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


# --- the Photo Warehouse's MCP server (``tessera mcp-server``, resource_server/mcp_server.py) -------

MCP_PATH = "/mcp"  # where the MCP endpoint is served when TESSERA_MCP_URL does not say
MCP_SCOPES = ("photos:read",)  # what every request to the MCP server needs (its tools only read)
MCP_PORT = 8003


class Secret(str):
    """A string that never shows itself in a ``repr`` (settings objects may end up in a log)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')"


def _url(env: Env, key: str) -> str | None:
    value = env.optional(key)
    if value is None:
        return None
    try:
        return check_url(value, env.name(key))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _mcp_url(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str | None:
    url = _url(env, key)
    if url is None and not is_local_http(earlier["issuer"]):
        raise ConfigError(
            f"{env.name(key)} is required when the issuer is not localhost: the MCP server's public URL,"
            " as agents call it (its resource identifier)"
        )
    return url  # None: resource_identifier() decides


def _warehouse_url(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str:
    """This, else the warehouse's own TESSERA_RESOURCE_URL, else its localhost URL (as
    ResourceSettings.resource_identifier() decides it), so one environment configures both."""
    url = _url(env, key) or _url(env, "RESOURCE_URL")
    if url is not None:
        return url
    if not is_local_http(earlier["issuer"]):
        raise ConfigError(
            f"{env.name(key)} (or {env.name('RESOURCE_URL')}) is required when the issuer is not"
            " localhost: the Photo Warehouse's resource identifier"
        )
    return f"http://localhost:{Integer(maximum=65535).read(env, 'RESOURCE_PORT', 8001, earlier)}"


def _required_text(what: str) -> Parsed[str]:
    def read(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str:
        value = env.optional(key)
        if value is None:
            raise ConfigError(f"{env.name(key)} is required: {what}")
        return value

    return Parsed(read, "text")


def _client_secret(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str:
    return Secret(_required_text("the MCP server's client secret").read(env, key, default, earlier))


@settings_class(read_by="MCP server")
class McpSettings:
    """What ``tessera mcp-server`` reads: a resource server like the warehouse (the same token
    checks), which calls the warehouse's API with tokens it gets by token exchange (RFC 8693)."""

    # Read in this order: a rule may use the settings above it (the issuer).
    issuer: str = setting("ISSUER", _ISSUER, _ISSUER_DOC, unset="http://localhost:8000")
    client_id: str = setting(
        "MCP_CLIENT_ID",
        _required_text(
            "the MCP server's own client, registered for the token-exchange grant (see README,"
            " 'The Photo Warehouse as an MCP server')"
        ),
        "The MCP server's own confidential client: it exchanges the agent's token for one addressed to"
        " the warehouse (RFC 8693), authenticating with `client_secret_basic`.",
        shown="none (required)",
    )
    client_secret: str = setting(
        "MCP_CLIENT_SECRET",
        Parsed(_client_secret, "text"),
        "That client's secret.",
        shown="none (required)",
    )
    warehouse_url: str = setting(
        "MCP_WAREHOUSE_URL",
        Parsed(_warehouse_url, "https URL, or http on localhost"),
        "The Photo Warehouse the MCP server calls: its resource identifier (the `resource` of the token"
        " exchange, RFC 8707), which is also the base of its API. Unset: TESSERA_RESOURCE_URL; else"
        " `http://localhost:{TESSERA_RESOURCE_PORT}` when the issuer is on localhost.",
        shown="TESSERA_RESOURCE_URL",
    )
    host: str = host_setting("MCP_HOST")
    port: int = port_setting("MCP_PORT", MCP_PORT)
    url: str | None = setting(
        "MCP_URL",
        Parsed(_mcp_url, "https URL, or http on localhost"),
        "The MCP server's public URL, as agents call it (through any gateway): its resource identifier,"
        " the `aud` its tokens must have, published at `/.well-known/oauth-protected-resource`"
        " followed by the URL's path (RFC 9728); the MCP endpoint is served at its path. Unset:"
        f" `http://localhost:{{TESSERA_MCP_PORT}}{MCP_PATH}` when the issuer is on localhost; otherwise"
        " required.",
        default=None,
        shown=f"`http://localhost:{{TESSERA_MCP_PORT}}{MCP_PATH}`",
    )
    algorithms: tuple[str, ...] = _algorithms_setting()
    leeway: int = _leeway_setting()
    jwks_refresh_interval: int = _jwks_refresh_interval_setting()
    jwks_min_refetch_interval: int = _jwks_min_refetch_interval_setting()
    revocation_check: bool = _revocation_check_setting()
    revocation_refresh_interval: float = _revocation_refresh_interval_setting()
    token_cache_size: int = _token_cache_size_setting()
    dpop_proof_window: int = _dpop_proof_window_setting()
    redis_url: str | None = _replay_redis_setting("MCP_REDIS_URL", "the MCP server")
    metrics_port: int = metrics_port_setting("MCP_METRICS_PORT", workers=False)
    shutdown_grace: int = shutdown_grace_setting()
    header_timeout: int = header_timeout_setting()

    def resource_identifier(self) -> str:
        """The MCP server's resource identifier (RFC 8707, RFC 9728): its public URL."""
        return self.url if self.url is not None else f"http://localhost:{self.port}{MCP_PATH}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> McpSettings:
        return read_settings(cls, environ)


__doc__ = settings_docs.docstring(settings_docs.docstring(__doc__, ResourceSettings), McpSettings)
