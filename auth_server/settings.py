"""Every option of the authorization server: its environment variable, rule, default and meaning,
declared once below (one :func:`~shared.config.setting` per field).

Read once at start by :meth:`Settings.from_env`; the object is frozen afterwards. The table below
and the one in README.md ("Configuration") are generated from the declarations.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import parseaddr
from ipaddress import IPv4Network, IPv6Network, ip_address
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from auth_server import theme
from auth_server.i18n import N_, localized_texts
from auth_server.scopes import ADMIN_SCOPES, OPENID_SCOPES
from auth_server.signing import ALGORITHMS as SIGNING_ALGORITHMS
from shared import settings_docs
from shared.config import (
    Choice,
    ConfigError,
    Env,
    Integer,
    OptionalUrl,
    Parsed,
    Switch,
    Text,
    is_local_http,
    read_settings,
    redact_url,
    setting,
    settings_class,
)
from shared.http import has_control_characters, parse_networks
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

log = logging.getLogger("tessera.settings")

DEFAULT_SCOPES: Mapping[str, str] = MappingProxyType(
    {
        # the consent page shows them in its language (the catalogs translate these words)
        "photos:read": N_("See your photos and their titles"),
        "photos:write": N_("Upload new photos and delete existing ones"),
        "warehouse:stats": N_("Read aggregate statistics of the photo warehouse (partners only)"),
    }
)

# Publicly known, so only ever accepted for an http://localhost issuer (development).
DEV_KEY_ENCRYPTION_KEY = b"tessera-development-only-kek!!!!"

REDIS_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)


def _issuer(env: Env, key: str, default: str, earlier: Mapping[str, Any]) -> str:
    issuer = env.url(key, ("https", "http"), default).rstrip("/")
    parts = urlsplit(issuer)
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ConfigError(f"{env.name(key)} must be scheme://host[:port] with no path, query or fragment")
    if parts.scheme == "http" and not is_local_http(issuer):
        raise ConfigError(f"{env.name(key)} must use https (plain http is allowed only on localhost)")
    return issuer


def _key_encryption_key(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> bytes:
    """Required, except for an http://localhost issuer, which gets the public development key, loudly."""
    kek = env.key_bytes(key, 32)
    if kek is None:
        if not is_local_http(earlier["issuer"]):
            raise ConfigError(
                f"{env.name(key)} is required (base64 of 32 random bytes): "
                "it encrypts the private signing keys at rest"
            )
        _warn_development_kek(env.name(key))
        kek = DEV_KEY_ENCRYPTION_KEY
    return kek


@functools.cache
def _warn_development_kek(variable: str) -> None:
    """Once per process, however often the settings are read (``tessera dev`` reads them thrice)."""
    log.warning(
        "!!! %s is not set: using the PUBLIC development key-encryption key. "
        "Signing keys are NOT protected at rest. Never do this outside local development. !!!",
        variable,
    )


_REDIS_URL = OptionalUrl(REDIS_SCHEMES)


def _redis_url(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str | None:
    """Read after TESSERA_DATABASE_URL, so the rule for both is checked here, once both are known."""
    redis_url = _REDIS_URL.read(env, key, default, earlier)
    database_url = earlier["database_url"]
    if (database_url is None or redis_url is None) and not is_local_http(earlier["issuer"]):
        missing = "DATABASE_URL" if database_url is None else key
        raise ConfigError(f"{env.name(missing)} is required when the issuer is not http://localhost")
    return redis_url


def _previous_keks(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> tuple[bytes, ...]:
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


def _audience(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str:
    return env.string(key, f"{earlier['issuer']}/api")


def _networks(
    env: Env, key: str, default: Any, earlier: Mapping[str, Any]
) -> tuple[IPv4Network | IPv6Network, ...]:
    try:
        return parse_networks(env.optional(key) or "")
    except ValueError:
        raise ConfigError(f"{env.name(key)} must be comma-separated IP addresses or CIDR blocks") from None


def _scopes(env: Env, key: str, default: Mapping[str, str], earlier: Mapping[str, Any]) -> Mapping[str, str]:
    raw = env.optional(key)
    if raw is None:
        return MappingProxyType({**OPENID_SCOPES, **ADMIN_SCOPES, **default})
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigError(f"{env.name(key)} must be a JSON object of scope -> description") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, dict)) and k and " " not in k for k, v in value.items()
    ):
        raise ConfigError(f"{env.name(key)} must be a JSON object of scope -> description")
    for name, description in value.items():  # {"en": "...", "zh": "..."}: a description per language
        if isinstance(description, dict):
            if not description or not all(isinstance(t, str) for t in description.values()):
                raise ConfigError(f"{env.name(key)}: {name}: a description per language must be text")
            try:
                value[name] = localized_texts(description)
            except ValueError as error:
                raise ConfigError(f"{env.name(key)}: {name}: {error}") from None
    openid = [name for name in value if name in OPENID_SCOPES]
    if openid:
        raise ConfigError(f"{env.name(key)}: {', '.join(openid)} are OpenID Connect's scopes, always known")
    admin = [name for name in value if name in ADMIN_SCOPES]
    if admin:
        raise ConfigError(f"{env.name(key)}: {', '.join(admin)} are the admin API's scopes, always known")
    return MappingProxyType({**OPENID_SCOPES, **ADMIN_SCOPES, **value})


def _theme_dir(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> Path | None:
    """A theme directory whose every file checks (:func:`auth_server.theme.load`)."""
    raw = env.optional(key)
    if raw is None:
        return None
    directory = Path(raw)
    try:
        theme.load(directory)
    except theme.ThemeError as error:
        raise ConfigError(f"{env.name(key)}: {error}") from None
    return directory


REGISTRATION_POLICIES = ("token", "open-native", "off")


def _open_scopes(env: Env, key: str, default: tuple[str, ...], earlier: Mapping[str, Any]) -> tuple[str, ...]:
    """Space-separated known scopes; never an admin scope (those are for operators alone)."""
    raw = env.optional(key)
    names = default if raw is None else tuple(dict.fromkeys(raw.split()))
    unknown = [name for name in names if name not in earlier["scopes"]]
    if unknown:
        raise ConfigError(f"{env.name(key)}: unknown scope(s) {', '.join(unknown)} (see TESSERA_SCOPES)")
    admin = [name for name in names if name in ADMIN_SCOPES]
    if admin:
        raise ConfigError(f"{env.name(key)}: {', '.join(admin)} can never be open to self-registered clients")
    return names


_HOST_NAME = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


def _document_hosts(
    env: Env, key: str, default: tuple[str, ...], earlier: Mapping[str, Any]
) -> tuple[str, ...]:
    """Host names (``*.example.com``: its subdomains, not itself), separated by commas or spaces."""
    raw = env.optional(key)
    names = default if raw is None else tuple(dict.fromkeys(raw.replace(",", " ").lower().split()))
    wrong = [name for name in names if len(name) > 253 or not _HOST_NAME.fullmatch(name)]
    if wrong:
        raise ConfigError(
            f"{env.name(key)}: {wrong[0]!r} is not a host name (no scheme, port or path;"
            " `*.example.com` for its subdomains)"
        )
    return names


SMTP_SCHEMES = ("smtp", "smtps")


def _admin_url(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str | None:
    """An origin: scheme, host and port only (the admin API's paths are its own)."""
    if env.optional(key) is None:
        return None
    url = env.url(key, ("https", "http"))
    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username is not None:
        raise ConfigError(f"{env.name(key)} must be an origin such as https://admin.example.com, not {url!r}")
    return url.rstrip("/")


def admin_origin(settings: Settings) -> str | None:
    """The admin API's public origin: :attr:`Settings.admin_url`, else its listening address when
    that is one host (a wildcard names none a caller could have used)."""
    if settings.admin_url is not None:
        return settings.admin_url
    host = settings.admin_host
    if not host or host == "0":  # inet_aton's spelling of 0.0.0.0
        return None
    try:
        address = ip_address(host)
    except ValueError:  # a host name: callers must use this very name
        pass
    else:
        mapped = getattr(address, "ipv4_mapped", None)
        if address.is_unspecified or (mapped is not None and mapped.is_unspecified):
            return None
    return f"http://[{host}]:{settings.admin_port}" if ":" in host else f"http://{host}:{settings.admin_port}"


def _smtp_url(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str | None:
    """``smtp://`` or ``smtps://``, a host, maybe a port and credentials; no path, query or fragment."""
    raw = env.optional(key)
    if raw is None:
        return None
    url = env.url(key, SMTP_SCHEMES)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1 or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(
            f"{env.name(key)} must be smtp://[user[:password]@]host[:port] (or smtps://), with no path or"
            f" query, got {redact_url(url)!r}"
        )
    return url


def _mail_from(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str:
    """An address, maybe with a display name; by default the site's name at no-reply@ the issuer's host."""
    raw = env.optional(key)
    if raw is None:
        host = urlsplit(earlier["issuer"]).hostname or "localhost"
        return str(Address(earlier["site_name"], addr_spec=f"no-reply@{host}"))
    name, address = parseaddr(raw)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or has_control_characters(raw):
        raise ConfigError(
            f"{env.name(key)} must be an email address, such as `Photos <no-reply@example.com>`"
        )
    try:
        return str(Address(name, addr_spec=address))
    except (ValueError, IndexError, HeaderParseError):
        raise ConfigError(f"{env.name(key)} must be an email address, got {raw!r}") from None


def _signup(env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> bool:
    """``on`` needs a mail server: every sign-up is sent a verification link."""
    on = Switch().read(env, key, default, earlier)
    if on and earlier["smtp_url"] is None:
        raise ConfigError(
            f"{env.name(key)}=on needs {env.name('SMTP_URL')}: each new account is sent a link to"
            " verify its email address"
        )
    return on


SECONDS = "seconds"
PER_MINUTE = "requests per minute"
PER_HOUR = "requests per hour"


@settings_class(read_by="auth server")
class Settings:
    # Read in this order: a rule may use the settings above it (the issuer, most often).
    issuer: str = setting(
        "ISSUER",
        Parsed(_issuer, "https URL, or http on localhost; no path, query or fragment"),
        "The public URL of the server; every URL in the metadata is built from it, never from the Host"
        " header.",
        unset="http://localhost:8000",
    )
    key_encryption_key: bytes = setting(
        "KEY_ENCRYPTION_KEY",
        Parsed(_key_encryption_key, "base64 of 32 random bytes"),
        "Encrypts the private signing keys at rest (AES-256-GCM). Required unless the issuer is"
        " http on localhost, where a public development key is used, with a loud warning.",
        shown="none (required)",
    )
    database_url: str | None = setting(
        "DATABASE_URL",
        OptionalUrl(("postgresql", "postgres")),
        "PostgreSQL. Required unless the issuer is http://localhost; unset there, the embedded"
        " development PostgreSQL in TESSERA_DEV_DIR.",
        unset=None,
    )
    redis_url: str | None = setting(
        "REDIS_URL",
        Parsed(_redis_url, _REDIS_URL.describe()),
        "Redis: `redis+cluster://host:port` for a cluster, `redis+sentinel://host:port,…/service` for"
        " Sentinel. Required unless the issuer is http://localhost; unset there, the embedded"
        " development Redis.",
        unset=None,
    )
    access_token_ttl: int = setting(
        "ACCESS_TOKEN_TTL",
        Integer(minimum=30, maximum=86400, unit=SECONDS),
        "Lifetime of access tokens.",
        default=600,
    )
    id_token_ttl: int = setting(
        "ID_TOKEN_TTL",
        Integer(minimum=30, maximum=86400, unit=SECONDS),
        "Lifetime of ID tokens (OpenID Connect): how long a client may accept one it receives.",
        default=600,
    )
    key_encryption_keys_previous: tuple[bytes, ...] = setting(
        "KEY_ENCRYPTION_KEYS_PREVIOUS",
        Parsed(_previous_keks, "comma-separated, each as TESSERA_KEY_ENCRYPTION_KEY"),
        "Only while rotating the key-encryption key: the old key(s), which decrypt signing keys but"
        " never encrypt. Remove them once `tessera keys rewrap` has run.",
        default=(),
    )
    dev_data_dir: Path = dev_data_dir_setting()
    redis_prefix: str = setting("REDIS_PREFIX", Text(), "Prefix of every Redis key.", default="tessera:")
    access_token_audience: str = setting(
        "ACCESS_TOKEN_AUDIENCE",
        Parsed(_audience, "text"),
        "The `aud` of access tokens: the auth server issues it, the resource server requires it.",
        default="",
        shown="{issuer}/api",
    )
    refresh_token_ttl: int = setting(
        "REFRESH_TOKEN_TTL",
        Integer(minimum=60, unit=SECONDS),
        "Lifetime of a refresh token, from its issue or rotation.",
        default=30 * 24 * 3600,
    )
    refresh_grace_period: int = setting(
        "REFRESH_GRACE_PERIOD",
        Integer(maximum=60, unit=SECONDS),
        "How long a client may retry a refresh token it has just rotated, if it lost the response;"
        " 0 turns it off.",
        default=0,
    )
    refresh_family_lifetime: int = setting(
        "REFRESH_FAMILY_LIFETIME",
        Integer(minimum=1, unit=SECONDS),
        "How long a refresh-token family lives at most, however often it is used; then the user"
        " signs in again.",
        default=30 * 24 * 3600,
    )
    code_ttl: int = setting(
        "CODE_TTL",
        Integer(minimum=10, maximum=600, unit=SECONDS),
        "Lifetime of an authorization code.",
        default=600,
    )
    device_code_ttl: int = setting(
        "DEVICE_CODE_TTL",
        Integer(minimum=60, maximum=1800, unit=SECONDS),
        "Lifetime of a device code and its user code (RFC 8628 `expires_in`).",
        default=600,
    )
    device_poll_interval: int = setting(
        "DEVICE_POLL_INTERVAL",
        Integer(minimum=1, maximum=60, unit=SECONDS),
        "How long a device waits between two polls of the token endpoint (RFC 8628 `interval`);"
        " one polling sooner is told `slow_down`, and must wait 5 s more from then on.",
        default=5,
    )
    device_code_failures_per_ip: int = setting(
        "DEVICE_CODE_FAILURES_PER_IP",
        Integer(minimum=1),
        "Wrong user codes one client address (an IPv6 client's whole /64) may enter on the device"
        " page in 10 minutes (RFC 8628 §5.1).",
        default=10,
    )
    device_code_failures: int = setting(
        "DEVICE_CODE_FAILURES",
        Integer(minimum=1),
        "Wrong user codes everyone together may enter on the device page in 10 minutes: the bound on"
        " guessing from many addresses (when spent, nobody can enter a code until the window ends).",
        default=1000,
    )
    session_ttl: int = setting(
        "SESSION_TTL", Integer(minimum=60, unit=SECONDS), "Lifetime of a login session.", default=8 * 3600
    )
    secret_overlap: int = setting(
        "SECRET_OVERLAP",
        Integer(maximum=30 * 86400, unit=SECONDS),
        "How long a client's old secret keeps working after the developer console rotates it.",
        default=86400,
    )
    signing_alg: str = setting(
        "SIGNING_ALG", Choice(SIGNING_ALGORITHMS), "Algorithm of new signing keys.", default="ES256"
    )
    key_prepublication: int = setting(
        "KEY_PREPUBLICATION",
        Integer(unit=SECONDS),
        "How long `tessera keys rotate` publishes a new key before it signs.",
        default=900,
    )
    jwks_max_age: int = setting(
        "JWKS_MAX_AGE",
        Integer(maximum=86400, unit=SECONDS),
        "`Cache-Control: max-age` of the JWKS.",
        default=300,
    )
    key_refresh_interval: int = setting(
        "KEY_REFRESH_INTERVAL",
        Integer(minimum=1, unit=SECONDS),
        "How often each replica reloads the signing keys.",
        default=30,
    )
    login_max_failures: int = setting(
        "LOGIN_MAX_FAILURES",
        Integer(minimum=1),
        "Failed logins per username before a lockout; each address the user signed in from before"
        ' has its own count (see "Security behaviour").',
        default=5,
    )
    login_max_failures_per_ip: int = setting(
        "LOGIN_MAX_FAILURES_PER_IP",
        Integer(minimum=1),
        "Failed logins per client address (an IPv6 client's whole /64) before a lockout.",
        default=50,
    )
    login_lockout_window: int = setting(
        "LOGIN_LOCKOUT_WINDOW",
        Integer(minimum=1, unit=SECONDS),
        "How long failures are counted, and a lockout lasts.",
        default=900,
    )
    login_known_address_ttl: int = setting(
        "LOGIN_KNOWN_ADDRESS_TTL",
        Integer(unit=SECONDS),
        "How long an address a user signed in from stays known, sparing it that user's lockout.",
        default=30 * 24 * 3600,
    )
    rate_token_per_client: int = setting(
        "RATE_TOKEN_PER_CLIENT",
        Integer(unit=PER_MINUTE),
        "Token requests per client; 0 turns the limit off (as for every TESSERA_RATE_*).",
        default=60000,
    )
    rate_token_per_ip: int = setting(
        "RATE_TOKEN_PER_IP", Integer(unit=PER_MINUTE), "Token requests per client address.", default=60000
    )
    rate_authorize_per_ip: int = setting(
        "RATE_AUTHORIZE_PER_IP",
        Integer(unit=PER_MINUTE),
        "Authorization requests per client address.",
        default=600,
    )
    rate_login_per_ip: int = setting(
        "RATE_LOGIN_PER_IP", Integer(unit=PER_MINUTE), "Login form posts per client address.", default=120
    )
    rate_device_authorization_per_ip: int = setting(
        "RATE_DEVICE_AUTHORIZATION_PER_IP",
        Integer(unit=PER_MINUTE),
        "Device authorization requests (RFC 8628) per client address.",
        default=120,
    )
    rate_device_authorization_per_client: int = setting(
        "RATE_DEVICE_AUTHORIZATION_PER_CLIENT",
        Integer(unit=PER_MINUTE),
        "Device authorization requests per client (a public client's per client address).",
        default=6000,
    )
    rate_revoke_per_client: int = setting(
        "RATE_REVOKE_PER_CLIENT", Integer(unit=PER_MINUTE), "Revocation requests per client.", default=6000
    )
    rate_revoke_per_ip: int = setting(
        "RATE_REVOKE_PER_IP",
        Integer(unit=PER_MINUTE),
        "Revocation requests per client address.",
        default=6000,
    )
    rate_introspect_per_client: int = setting(
        "RATE_INTROSPECT_PER_CLIENT",
        Integer(unit=PER_MINUTE),
        "Introspection requests per client.",
        default=60000,
    )
    rate_introspect_per_ip: int = setting(
        "RATE_INTROSPECT_PER_IP",
        Integer(unit=PER_MINUTE),
        "Introspection requests per client address.",
        default=60000,
    )
    rate_sync_ms: int = setting(
        "RATE_SYNC_MS",
        Integer(maximum=10_000, unit="milliseconds"),
        "How often each replica adds its rate-limit counts to Redis; 0: a round trip per request, exact.",
        default=100,
    )
    scopes: Mapping[str, str] = setting(
        "SCOPES",
        Parsed(_scopes, "JSON object: scope -> description, or scope -> {language: description}"),
        "The API scopes, each with the description the consent page shows (OpenID Connect's `openid`,"
        " `profile`, `email` and `offline_access` are always known). A description per language:"
        ' `{"photos:read": {"en": "See your photos", "zh": "查看您的照片"}}`; a plain one is shown as'
        " given, translated only if the catalogs know it (the built-in ones).",
        default_factory=lambda: DEFAULT_SCOPES,
    )
    theme_dir: Path | None = setting(
        "THEME_DIR",
        Parsed(_theme_dir, "a directory"),
        'The operator\'s look for the pages (README, "Themes"): `templates/` in it replace the shipped'
        " templates of the same name; `theme.json` sets colours and a logo, `theme.css` adds CSS. Checked"
        " at start.",
        default=None,
        shown="none",
    )
    site_name: str = setting(
        "SITE_NAME",
        Text(),
        "The name of the site people sign in to, shown on the login, consent and welcome pages.",
        default="Tessera",
    )
    max_body_bytes: int = setting(
        "MAX_BODY_BYTES", Integer(minimum=1024, unit="bytes"), "Largest request body accepted.", default=65536
    )
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = setting(
        "TRUSTED_PROXIES",
        Parsed(_networks, "comma-separated IP addresses or CIDRs"),
        "The gateway's addresses, and nothing more: `X-Forwarded-For` is believed only from these.",
        default=(),
    )
    shutdown_grace: int = shutdown_grace_setting()
    header_timeout: int = header_timeout_setting()
    body_timeout: int = body_timeout_setting(
        10, "How long a request body may take to arrive; a slow one gets 408 `invalid_request`."
    )
    workers: int = workers_setting("WORKERS")
    hashing_threads: int = setting(
        "HASHING_THREADS",
        Integer(maximum=256),
        "argon2id threads per process, each keeping 19 MiB once it has hashed (`MALLOC_ARENA_MAX=1`"
        " hands it back after each hash, about 3 ms more per hash); 0: one per usable core, a"
        " container's CPU quota counted.",
        default=0,
    )
    hashing_queue: int = setting(
        "HASHING_QUEUE",
        Integer(minimum=1, maximum=10_000),
        "Password checks that may wait per hashing thread; past that a login is refused at once"
        " with 503 and `Retry-After`.",
        default=64,
    )
    assertion_audience_compat: bool = setting(
        "ASSERTION_AUDIENCE_COMPAT",
        Switch(),
        "`off`: a `private_key_jwt` assertion's `aud` must be the issuer alone (RFC 7523 fix);"
        " `on`: the token endpoint or the endpoint called is accepted too.",
        default=False,
    )
    # --- dynamic client registration (RFC 7591/7592) and the admin API (issue 15) ---
    registration: str = setting(
        "REGISTRATION",
        Choice(REGISTRATION_POLICIES),
        "Dynamic client registration (RFC 7591): `token`, only with an initial access token"
        " (`tessera registration-token create`); `open-native`, also without one for public clients"
        " whose redirect URIs are all loopback or private-use schemes (RFC 8252), auto-approved with"
        " TESSERA_OPEN_SCOPES; `off`, no registration endpoint.",
        default="token",
    )
    open_scopes: tuple[str, ...] = setting(
        "OPEN_SCOPES",
        Parsed(_open_scopes, "space-separated known scopes"),
        "The scopes a client registered without an initial access token (`open-native`), or"
        " identified by its client ID metadata document, may have (the user still consents to each;"
        " `offline_access` lets an agent keep access while she is away).",
        default=("openid", "profile", "offline_access"),
        shown="`openid profile offline_access`",
    )
    rate_register_per_ip: int = setting(
        "RATE_REGISTER_PER_IP",
        Integer(unit=PER_MINUTE),
        "Dynamic registration requests per client address (well under the open registrations per"
        " hour, so that one address cannot spend them all).",
        default=5,
    )
    open_registrations_per_hour: int = setting(
        "OPEN_REGISTRATIONS_PER_HOUR",
        Integer(),
        "Registrations without an initial access token per hour, from all addresses together"
        " (`open-native`); 0: no cap.",
        default=1000,
    )
    # --- client ID metadata documents (draft-ietf-oauth-client-id-metadata-document, issue 16) ---
    client_id_metadata_documents: bool = setting(
        "CLIENT_ID_METADATA_DOCUMENTS",
        Switch(),
        "`on`: an https URL with a path is accepted as `client_id` at /authorize; the client metadata"
        " document there is fetched (public addresses only, at most 5 KiB, HTTP caching honoured) and"
        " the app is stored once a user allows it. `off`: such ids are unknown clients. Off by default,"
        " as it lets anyone make this server fetch a URL and show a consent page for an app nobody"
        " reviewed.",
        default=False,
    )
    client_id_metadata_hosts: tuple[str, ...] = setting(
        "CLIENT_ID_METADATA_HOSTS",
        Parsed(_document_hosts, "host names, comma-separated"),
        "The only hosts whose client ID metadata documents are fetched (`*.example.com`: its"
        " subdomains); empty: any public host.",
        default=(),
        shown="empty",
    )
    rate_client_document_per_host: int = setting(
        "RATE_CLIENT_DOCUMENT_PER_HOST",
        Integer(unit="fetches per minute"),
        "Fetches of client ID metadata documents per host (a cached document is not fetched again),"
        " so that this server cannot be made to flood anyone's site; 0: no limit.",
        default=30,
    )
    # --- DPoP (RFC 9449, issue 17) ---
    dpop_proof_window: int = setting(
        "DPOP_PROOF_WINDOW",
        Integer(minimum=5, maximum=600, unit=SECONDS),
        "How far a DPoP proof's `iat` may be from this server's clock, either way; its `jti` is"
        " remembered in Redis for twice as long, so a proof is accepted once across every replica.",
        default=60,
    )
    dpop_nonce: bool = setting(
        "DPOP_NONCE",
        Switch(),
        "`on`: DPoP proofs at the token endpoint must carry a nonce of this server (RFC 9449 §8): a"
        " proof without one gets `use_dpop_nonce` and a `DPoP-Nonce` header to sign the next one with."
        " Nonces are stateless (an HMAC of the time under a secret every replica shares).",
        default=False,
    )
    dpop_nonce_lifetime: int = setting(
        "DPOP_NONCE_LIFETIME",
        Integer(minimum=10, maximum=3600, unit=SECONDS),
        "How often the DPoP nonce changes; a nonce is accepted for one such period before and after its"
        " own (replicas' clocks differ a little).",
        default=300,
    )
    # --- pushed authorization requests (RFC 9126, issue 17) ---
    require_par: bool = setting(
        "REQUIRE_PAR",
        Switch(),
        "`on`: /authorize answers only requests pushed to the PAR endpoint first (a `request_uri`"
        " from it), for every client (`require_pushed_authorization_requests` in the metadata);"
        " `off`: only clients registered with `require_pushed_authorization_requests` must push.",
        default=False,
    )
    par_ttl: int = setting(
        "PAR_TTL",
        Integer(minimum=5, maximum=599, unit=SECONDS),
        "Lifetime of a `request_uri` from the PAR endpoint (its `expires_in`): the client must send"
        " the user to /authorize with it within this time; it is good for one use. Below 600, as the"
        " FAPI 2.0 Security Profile asks.",
        default=60,
    )
    rate_par_per_client: int = setting(
        "RATE_PAR_PER_CLIENT",
        Integer(unit=PER_MINUTE),
        "Pushed authorization requests per confidential client (each is kept in Redis for"
        " TESSERA_PAR_TTL, at most 8 KiB of it). A public client, which anyone may name, has this budget"
        " per address.",
        default=6000,
    )
    rate_par_per_ip: int = setting(
        "RATE_PAR_PER_IP",
        Integer(unit=PER_MINUTE),
        "Pushed authorization requests per client address: what one address can keep in Redis (up to"
        " 8 KiB a push, for TESSERA_PAR_TTL) by pushing for a public client. A backend pushing for many"
        " users from one address may need more.",
        default=60,
    )
    # --- accounts: sign-up, email verification, password reset, and their mail (issue 18) ---
    smtp_url: str | None = setting(
        "SMTP_URL",
        Parsed(_smtp_url, "`smtp://` or `smtps://` URL: `[user[:password]@]host[:port]`"),
        "The mail server that sends sign-up, verification and password-reset mail. `smtp://` (port 587"
        " unless given) upgrades with STARTTLS, which is required except to a loopback host; `smtps://`"
        " (port 465) speaks TLS from the start. Credentials may be in the URL (percent-encoded) or in"
        " TESSERA_SMTP_USERNAME and TESSERA_SMTP_PASSWORD. Unset: no mail is sent, sign-up must stay"
        " off, and the login page offers no password reset. `tessera dev` sets it to its own mail catcher.",
        default=None,
    )
    smtp_username: str | None = setting(
        "SMTP_USERNAME",
        Parsed(lambda env, key, default, earlier: env.optional(key), "text"),
        "The user name to authenticate to the mail server with (instead of one in TESSERA_SMTP_URL).",
        default=None,
    )
    smtp_password: str | None = setting(
        "SMTP_PASSWORD",
        Parsed(lambda env, key, default, earlier: env.optional(key), "text"),
        "Its password (instead of one in TESSERA_SMTP_URL); never logged.",
        default=None,
    )
    mail_from: str = setting(
        "MAIL_FROM",
        Parsed(_mail_from, "an address, maybe with a name: `Photos <no-reply@example.com>`"),
        "The sender of every mail.",
        default="",
        shown="TESSERA_SITE_NAME `<no-reply@`the issuer's host`>`",
    )
    signup: bool = setting(
        "SIGNUP",
        Parsed(_signup, "`on`, `off`"),
        "`on`: anyone may create an account at /signup (a verification link is mailed; needs"
        " TESSERA_SMTP_URL). Off by default: accounts are then created by operators only, as before, and"
        " opening sign-up is a decision (`tessera dev` turns it on).",
        default=False,
        shown="off",
    )
    signup_email_domains: tuple[str, ...] = setting(
        "SIGNUP_EMAIL_DOMAINS",
        Parsed(_document_hosts, "host names, comma-separated"),
        "The only email domains sign-up accepts (`*.example.com`: its subdomains); empty: any.",
        default=(),
        shown="empty",
    )
    password_min_length: int = setting(
        "PASSWORD_MIN_LENGTH",
        Integer(minimum=8, maximum=64),
        "The fewest characters a password chosen at sign-up or reset may have (NIST SP 800-63B's"
        " floor is 8); it must also not be a common or breached one, nor contain the username or email.",
        default=8,
    )
    email_verification_ttl: int = setting(
        "EMAIL_VERIFICATION_TTL",
        Integer(minimum=300, maximum=7 * 86400, unit=SECONDS),
        "How long an email verification link works (once); a new one can be asked for at /signup/resend.",
        default=86400,
    )
    password_reset_ttl: int = setting(
        "PASSWORD_RESET_TTL",
        Integer(minimum=300, maximum=86400, unit=SECONDS),
        "How long a password-reset link works (once, and only until the password changes).",
        default=1800,
    )
    rate_signup_per_ip: int = setting(
        "RATE_SIGNUP_PER_IP",
        Integer(unit=PER_HOUR),
        "Sign-ups per client address (an IPv6 client's whole /64) per hour; 0: no limit.",
        default=20,
    )
    rate_reset_per_email: int = setting(
        "RATE_RESET_PER_EMAIL",
        Integer(unit=PER_HOUR),
        "Password-reset requests per hour for one username or email address, whether or not it has an"
        " account; 0: no limit.",
        default=5,
    )
    rate_verify_resend: int = setting(
        "RATE_VERIFY_RESEND",
        Integer(unit=PER_HOUR),
        "Requests for a new verification mail per hour for one username or email address; 0: no limit.",
        default=5,
    )
    rate_account_mail_per_ip: int = setting(
        "RATE_ACCOUNT_MAIL_PER_IP",
        Integer(unit=PER_HOUR),
        "Password-reset and verification-mail requests per client address per hour; 0: no limit.",
        default=30,
    )
    rate_mail_per_address: int = setting(
        "RATE_MAIL_PER_ADDRESS",
        Integer(unit="mails per hour"),
        "Sign-up, verification and reset mails sent to one address per hour, however they were asked"
        " for; past it they are dropped, so that nobody can flood an inbox through these pages; 0: no limit.",
        default=10,
    )
    admin_port: int = setting(
        "ADMIN_PORT",
        Integer(maximum=65535),
        "Port of the admin HTTP API (its own listener on TESSERA_ADMIN_HOST, never the public port);"
        " 0: off. `--admin-port` on the command line wins.",
        default=0,
    )
    admin_host: str = setting(
        "ADMIN_HOST", Text("an address"), "Listen address of the admin HTTP API.", default="127.0.0.1"
    )
    admin_url: str | None = setting(
        "ADMIN_URL",
        Parsed(_admin_url, "`https://` or `http://` origin (no path)"),
        "The admin API's origin as its callers reach it (through any gateway, which must pass paths"
        " through unchanged): the URL DPoP proofs sent to it must name (RFC 9449 `htu`). Unset:"
        " `http://{TESSERA_ADMIN_HOST}:{port}`, or none when that host is a wildcard address, and then"
        " DPoP-bound tokens are refused there (bearer tokens keep working).",
        default=None,
        shown="`http://{TESSERA_ADMIN_HOST}:{port}`",
    )
    host: str = host_setting("HOST")
    port: int = port_setting("PORT", 8000)
    metrics_port: int = metrics_port_setting("METRICS_PORT")

    @property
    def development(self) -> bool:
        """Plain http on localhost: relaxed cookie and key-encryption rules apply only here."""
        return is_local_http(self.issuer)

    @property
    def mail_enabled(self) -> bool:
        """A mail server is configured: verification and password-reset mail can be sent."""
        return self.smtp_url is not None

    @property
    def secure_cookies(self) -> bool:
        return not self.development

    def endpoint(self, path: str) -> str:
        return f"{self.issuer}{path}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        return read_settings(cls, environ)


__doc__ = settings_docs.docstring(__doc__, Settings)
