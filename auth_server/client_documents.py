"""OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, which MCP
adopted): a client with no registration here names itself with an https URL as its ``client_id``,
and the document at that URL is its RFC 7591 metadata.

At /authorize, when the feature is on (``TESSERA_CLIENT_ID_METADATA_DOCUMENTS``), :func:`find_client`
takes a ``client_id`` that starts with ``https://`` for such a URL and:

1. checks the URL (:func:`check_client_id_url`, §3): https, a host, a path other than ``/``, no
   userinfo, query, fragment or dot segments, printable ASCII, at most
   :data:`~auth_server.clients.MAX_URL_CLIENT_ID` characters; and its host against the operator's
   allow-list (``TESSERA_CLIENT_ID_METADATA_HOSTS``, empty: any public host);
2. uses the client this replica's cache holds for the URL while its HTTP cache lifetime lasts
   (``Cache-Control: max-age``, kept between :data:`MIN_CACHE_SECONDS` and
   :data:`MAX_CACHE_SECONDS`; ``no-store`` and ``no-cache``: not kept; §4.3). Otherwise it spends
   the host's fetch budget (``TESSERA_RATE_CLIENT_DOCUMENT_PER_HOST``, in Redis, shared by every
   replica) and fetches the document through the one guarded fetcher (:mod:`shared.fetch`: public
   addresses only, private ones only for a local development issuer; no redirect; at most
   :data:`MAX_DOCUMENT_BYTES` within :data:`FETCH_TIMEOUT` seconds; §4, §7.6-7.7). Failures and
   invalid documents are never cached;
3. checks the document (:func:`client_of`): a JSON object served as JSON whose ``client_id`` is the
   URL exactly (§4.1); no ``client_secret`` and no method based on a shared secret (§4.1.1), hence a
   public client (``none``, PKCE required) unless it names ``private_key_jwt`` with its ``jwks`` or
   ``jwks_uri`` (§7.2); none of Tessera's operator-only fields; and then every rule a registration
   meets, through the one validation (:func:`auth_server.registration.validate`), as a client
   ``registered_via`` ``metadata_document`` (so never an admin scope);
4. answers with the client's stored row if a user allowed it before (refreshed first when the fetch
   found the document changed: §7.4), else with the client the document describes, held only in
   the bounded cache. Nothing reaches PostgreSQL before a signed-in user allows the client on the
   consent page, which stores it (:func:`keep`, approved) so that consents, codes, refresh tokens
   and the audit trail refer to a row. The token endpoint authenticates it from that row.

What a document may ask for is narrowed, not refused, where one document serves many servers: its
scopes to those open to self-registered clients (``TESSERA_OPEN_SCOPES``; all of them when it names
none), its grant types to the code grant and refresh tokens (the code flow with PKCE: no implicit,
no grant without a user). Its https redirect URIs must be on the document's own origin (§7.1): the
consent page names that host, so a code never goes to another site than the one the user was
shown; loopback and private-use redirect URIs of native apps (RFC 8252) stay allowed. A
``backchannel_logout_uri`` or ``sector_identifier_uri`` is refused: Tessera would call or fetch them
for a stranger. The consent page shows the document's host (§7.5), and not its self-asserted logo.
What only makes the client's own rules stricter, a document may ask for as a registration may:
``require_pushed_authorization_requests`` (RFC 9126 §6) and ``dpop_bound_access_tokens`` (RFC 9449
§5.2); a later document may turn them on in the stored row, never off (an operator may). A
security profile (``tessera_profile``, FAPI 2.0) is refused: it holds a registration to rules
(``private_key_jwt``, ``code`` alone) that a later document could break; such a client registers.

A failure is an ``invalid_client`` error page (never a redirect: the redirect URI is not verified).
Why a fetch failed is logged for the operator; the page says what a document must be, without the
addresses a host resolved to (which would map internal names for whoever asked).
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import time
from typing import Any, ClassVar
from urllib.parse import SplitResult, unquote, urlsplit

from multidict import MultiMapping

from auth_server.clients import MAX_URL_CLIENT_ID, VIA_METADATA_DOCUMENT, Client
from auth_server.rate_limits import limit
from auth_server.registration import (
    LOOPBACK_HOSTS,
    ClientMetadata,
    RegistrationError,
    metadata_from_document,
    redirect_uri_sector,
    validate,
)
from auth_server.registry import Registry
from auth_server.settings import Settings
from auth_server.stores.rate_limits import Limit
from shared.errors import OAuthError, TooManyRequests
from shared.fetch import Fetched, Fetcher, FetchError
from shared.http import address_bucket

log = logging.getLogger("tessera.client_documents")

MAX_DOCUMENT_BYTES = 5 * 1024  # §7.7: "The recommended maximum size to read is 5 kilobytes."
FETCH_TIMEOUT = 5.0
# §4.3: the document's HTTP cache lifetime, kept within these bounds (seconds). The floor stops a
# document that asks for none from making every authorization request a fetch; the ceiling makes a
# change (a redirect URI or key taken back) count within the hour.
MIN_CACHE_SECONDS = 60.0
MAX_CACHE_SECONDS = 3600.0
DEFAULT_CACHE_SECONDS = 300.0  # a document that says nothing of caching
# a document's client uses the code flow (with PKCE), and refresh tokens
DOCUMENT_GRANTS = ("authorization_code", "refresh_token")
# §4.1.1: no method based on a shared secret; none (a public client) when the document names none
DOCUMENT_AUTH_METHODS = ("none", "private_key_jwt")
SECRET_FIELDS = ("client_secret", "client_secret_expires_at")
# Tessera's own fields an operator sets, as for dynamic registration (endpoints/registration.py)
OPERATOR_ONLY = ("require_pkce", "allow_introspection", "first_party")
# URLs Tessera would call or fetch for whoever wrote the document
NOT_ACCEPTED = ("backchannel_logout_uri", "sector_identifier_uri")
# a security profile (auth_server/profiles.py) holds a registration to rules a later document could
# break (its auth method, its response types): for clients registered here
REGISTERED_ONLY = ("tessera_profile",)
JSON_TYPES = ("application/json",)  # and application/<anything>+json (§4)


class ClientDocumentRefused(OAuthError):
    """A ``client_id`` that is a client ID metadata document's URL, and no usable one.

    ``invalid_client``, shown on a page with 400: not 401, whose ``WWW-Authenticate`` challenge
    would make the browser ask the user for a password."""

    error: ClassVar[str] = "invalid_client"


def is_client_id_url(settings: Settings, client_id: str) -> bool:
    """Whether ``client_id`` is to be read as a client ID metadata document's URL: the feature is on
    and it starts like one (it may still break :func:`check_client_id_url`'s rules)."""
    return settings.client_id_metadata_documents and client_id.startswith(("https://", "http://"))


def check_client_id_url(client_id: str, *, development: bool) -> SplitResult:
    """The URL, parsed, if it may be a Client Identifier URL (§3); else :class:`ClientDocumentRefused`
    saying which rule it breaks. Plain http is accepted for a development issuer (http://localhost)
    alone, and only on a loopback host: its developers' documents are served from their machine."""

    def refuse(rule: str) -> ClientDocumentRefused:
        return ClientDocumentRefused(f"The client_id is not a client ID metadata document URL: {rule}.")

    if len(client_id) > MAX_URL_CLIENT_ID:
        raise refuse(f"it is longer than {MAX_URL_CLIENT_ID} characters")
    if any(not "!" <= c <= "~" for c in client_id) or "\\" in client_id:
        raise refuse("it must be printable ASCII without spaces or backslashes (a host name in punycode)")
    try:
        parts = urlsplit(client_id)
        port = parts.port
    except ValueError:
        raise refuse("it is not a valid URL") from None
    host = parts.hostname or ""
    loopback_http = development and parts.scheme == "http" and host in LOOPBACK_HOSTS
    if parts.scheme != "https" and not loopback_http:
        raise refuse("it must use https")
    if "@" in parts.netloc:
        raise refuse("it must not contain user information")
    if not host or host.endswith(".") or (port is not None and not 0 < port < 65536):
        raise refuse("it must name a host (without a trailing dot) and at most a valid port")
    if "#" in client_id:
        raise refuse("it must not contain a fragment")
    if "?" in client_id:
        raise refuse("it must not contain a query")
    if parts.path in ("", "/"):
        raise refuse("it must have a path, such as https://app.example/oauth/client.json")
    if any(unquote(segment) in (".", "..") for segment in parts.path.split("/")):
        raise refuse("it must not contain . or .. path segments")
    return parts


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether ``host`` (lower case) is on the operator's list (``*.example.com``: its subdomains);
    an empty list allows any host."""
    if not allowed:
        return True
    return any(
        host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
        if pattern.startswith("*.")
        else host == pattern
        for pattern in allowed
    )


def document_host(client: Client) -> str | None:
    """The host (and port) a client's metadata document is served from, which the consent page shows
    (§7.5); ``None`` for a client registered otherwise."""
    if not client.from_metadata_document:
        return None
    return urlsplit(client.client_id).netloc.lower() or None


def cache_lifetime(headers: MultiMapping[str]) -> float | None:
    """How long a fetched document may be used without fetching it again (RFC 9111 §5.2.2): its
    ``max-age`` less its ``Age``, within :data:`MIN_CACHE_SECONDS` and :data:`MAX_CACHE_SECONDS`;
    :data:`DEFAULT_CACHE_SECONDS` when it says nothing; ``None`` (not to be kept) for ``no-store``
    and ``no-cache`` (which asks for a revalidation before every use)."""
    values = headers.getall("Cache-Control", [])
    directives: dict[str, str] = {}
    for value in values:
        for directive in value.split(","):
            name, _, argument = directive.strip().partition("=")
            directives.setdefault(name.strip().lower(), argument.strip().strip('"'))
    if "no-store" in directives or "no-cache" in directives:
        return None
    max_age = directives.get("max-age")
    if max_age is None:
        return DEFAULT_CACHE_SECONDS
    # an invalid max-age makes the response stale (RFC 9111 §4.2.1): the floor
    seconds = int(max_age) if max_age.isascii() and max_age.isdigit() and len(max_age) <= 10 else 0
    age = headers.get("Age", "0").strip()
    if age.isascii() and age.isdigit() and len(age) <= 10:
        seconds -= int(age)
    return float(min(max(seconds, MIN_CACHE_SECONDS), MAX_CACHE_SECONDS))


async def find_client(registry: Registry, client_id: str, ip: str = "") -> Client | None:
    """The client ``client_id`` names at /authorize and /consent: a registered one by its id, or
    (the feature on) the one the metadata document at that URL describes — its stored row once a
    user allowed it. :class:`ClientDocumentRefused` when the URL or its document cannot be used."""
    settings = registry.settings
    if not is_client_id_url(settings, client_id):
        return await registry.clients.get(client_id)
    parts = check_client_id_url(client_id, development=settings.development)
    host = parts.hostname or ""
    if not host_allowed(host, settings.client_id_metadata_hosts):
        raise ClientDocumentRefused(
            f"This server does not accept client ID metadata documents from {host}: its operator"
            " allows only some hosts."
        )
    try:
        described = await described_client(registry, client_id, host, ip)
    except TooManyRequests:
        # fetches from this host are over budget (a stranger may be spending it): a client a user
        # allowed before is answered from its stored row, as its document said when last fetched
        stored = await registry.clients.get(client_id)
        if stored is None:
            raise
        return stored
    return await registry.clients.get(client_id) or described


async def keep(registry: Registry, client: Client) -> Client:
    """The client as stored, once a user allows it: one that its metadata document describes is
    stored then (or its row brought up to date), approved; any other is returned as it is."""
    if not client.from_metadata_document:
        return client
    stored = await registry.clients.save_described(client)
    if stored is None:
        raise ClientDocumentRefused("The client_id names a client registered otherwise.")
    return stored


async def described_client(registry: Registry, url: str, host: str, ip: str = "") -> Client:
    """The client the document at ``url`` describes: this replica's cached one while its cache
    lifetime lasts, else fetched and checked (and the stored row, if any, brought up to date).

    Fetches are budgeted per host and requesting address, and per host from all addresses at ten
    times that: one stranger cannot spend a host's whole budget."""
    cached = registry.clients.documents.get(url)
    if cached is not None:
        return cached
    per_host = registry.settings.rate_client_document_per_host
    await limit(
        registry,
        Limit("client-document", f"{host} {address_bucket(ip)}", per_host),
        Limit("client-document-host", host, 10 * per_host),
    )
    fetched = await _fetch(url, development=registry.settings.development)
    client = client_of(registry.settings, url, _json_object(fetched))
    lifetime = cache_lifetime(fetched.headers)
    if lifetime is not None:
        registry.clients.documents.put(url, client, until=time.monotonic() + lifetime)
    await registry.clients.refresh_described(client)
    return client


async def _fetch(url: str, *, development: bool) -> Fetched:
    """The document's answer, through the guarded fetcher; :class:`ClientDocumentRefused` if none."""
    async with Fetcher(
        allow_private=development, max_bytes=MAX_DOCUMENT_BYTES, timeout=FETCH_TIMEOUT
    ) as fetcher:
        try:
            return await fetcher.get(url)
        except FetchError as error:
            # the reason (which may name the addresses a host resolved to) is for the operator only
            log.info("client ID metadata document not fetched: %s", error)
            raise ClientDocumentRefused(
                f"The client ID metadata document could not be fetched. It must answer HTTP 200 over"
                f" https, from a public address, without redirects, within {FETCH_TIMEOUT:g} s, with a"
                f" JSON document of at most {MAX_DOCUMENT_BYTES} bytes (at {url})."
            ) from None


def _json_object(fetched: Fetched) -> dict[str, Any]:
    """The fetched document: a JSON object, served as JSON (§4)."""
    media_type = fetched.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if media_type not in JSON_TYPES and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise ClientDocumentRefused(
            f"The client ID metadata document must be served as application/json (at {fetched.url})."
        )
    try:
        document = json.loads(fetched.body)
    except (ValueError, RecursionError):
        raise ClientDocumentRefused(
            f"The client ID metadata document is not JSON (at {fetched.url})."
        ) from None
    if not isinstance(document, dict):
        raise ClientDocumentRefused(
            f"The client ID metadata document must be a JSON object (at {fetched.url})."
        )
    return document


def client_of(settings: Settings, url: str, document: dict[str, Any]) -> Client:
    """The client the document fetched from ``url`` describes, if it is a valid one (see the module
    docstring); else :class:`ClientDocumentRefused` naming the first rule it breaks."""

    def refuse(rule: str) -> ClientDocumentRefused:
        # descriptions are cut at 300 characters (shared/errors.py): the rule first, the URL last
        return ClientDocumentRefused(f"The client ID metadata document {rule} (at {url}).")

    claimed = document.get("client_id")
    # §4.1: simple string comparison, no normalisation
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed.encode(), url.encode()):
        raise refuse("must have a client_id equal to its URL, character for character")
    secrets = [name for name in SECRET_FIELDS if name in document]
    if secrets:
        raise refuse(
            f"must not contain {' or '.join(secrets)} (a client that describes itself has no secret)"
        )
    method = document.get("token_endpoint_auth_method") or "none"
    if method not in DOCUMENT_AUTH_METHODS:
        raise refuse(
            "may name the token_endpoint_auth_method none or private_key_jwt only: no secret can be"
            " shared with a client that describes itself"
        )
    for names, why in (
        (OPERATOR_ONLY, "are for this server's operator to set"),
        (NOT_ACCEPTED, "would make this server call the app's URLs for it"),
        (REGISTERED_ONLY, "hold a client registered at this server to a security profile (FAPI 2.0)"),
    ):
        given = [name for name in names if name in document]
        if given:
            raise refuse(f"must not contain {', '.join(given)}: these {why}")
    fields = {name: value for name, value in document.items() if name != "client_id"}
    try:
        metadata = metadata_from_document(fields, ignore_unknown=True)
        metadata = _narrowed(settings, metadata, url, method)
        validate(settings, metadata)
        sector = redirect_uri_sector(metadata.redirect_uris) if metadata.subject_type == "pairwise" else None
    except RegistrationError as error:
        raise refuse(f"is not valid client metadata: {error}") from None
    return Client(
        client_id=url,
        client_name=metadata.client_name,
        secret_hash=None,
        redirect_uris=tuple(metadata.redirect_uris),
        grant_types=tuple(metadata.grant_types),
        scope=tuple(metadata.scope),
        token_endpoint_auth_method=metadata.token_endpoint_auth_method,
        jwks=metadata.jwks,
        jwks_uri=metadata.jwks_uri,
        post_logout_redirect_uris=tuple(metadata.post_logout_redirect_uris),
        subject_type=metadata.subject_type,
        sector_identifier=sector,
        id_token_signed_response_alg=metadata.id_token_signed_response_alg,
        userinfo_signed_response_alg=metadata.userinfo_signed_response_alg,
        default_max_age=metadata.default_max_age,
        require_auth_time=metadata.require_auth_time,
        logo_uri=metadata.logo_uri,
        client_uri=metadata.client_uri,
        policy_uri=metadata.policy_uri,
        tos_uri=metadata.tos_uri,
        # what only tightens the client's own rules, it may ask for (RFC 9126 §6, RFC 9449 §5.2)
        require_pushed_authorization_requests=metadata.require_pushed_authorization_requests,
        dpop_bound_access_tokens=metadata.dpop_bound_access_tokens,
        status="approved",
        registered_via=VIA_METADATA_DOCUMENT,
    )


def _narrowed(settings: Settings, metadata: ClientMetadata, url: str, method: str) -> ClientMetadata:
    """What Tessera gives a client its document describes: the scopes open to self-registered
    clients among those it names (all of them when it names none), the code grant and refresh
    tokens among its grant types, redirect URIs on its own origin or on the user's machine."""
    open_scopes = settings.open_scopes
    scope = tuple(name for name in metadata.scope if name in open_scopes) if metadata.scope else open_scopes
    grant_types = tuple(grant for grant in metadata.grant_types if grant in DOCUMENT_GRANTS)
    if "authorization_code" not in grant_types:
        raise RegistrationError("grant_types must include authorization_code (the code flow with PKCE)")
    origin = _origin(urlsplit(url))
    for uri in (*metadata.redirect_uris, *metadata.post_logout_redirect_uris):
        parts = urlsplit(uri)
        if parts.scheme == "https" and _origin(parts) != origin:
            raise RegistrationError(
                f"the https redirect URI {uri!r} must be on the document's own origin {origin}"
                " (the consent page names that host)"
            )
    # links the consent page shows: on the document's own origin only (another site's address
    # beside an unchecked name is a spoofing aid, the review found)

    def own(link: str | None) -> str | None:
        return link if link is not None and _origin(urlsplit(link)) == origin else None

    return dataclasses.replace(
        metadata,
        client_uri=own(metadata.client_uri),
        policy_uri=own(metadata.policy_uri),
        tos_uri=own(metadata.tos_uri),
        client_name=metadata.client_name.strip() or (urlsplit(url).hostname or url),
        scope=scope,
        grant_types=grant_types,
        response_types=None,  # those of the code grant
        token_endpoint_auth_method=method,
        require_pkce=True,
        status="approved",
        registered_via=VIA_METADATA_DOCUMENT,
    )


def _origin(parts: SplitResult) -> str:
    """``scheme://host[:port]`` in lower case, the default port left out."""
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"https": 443, "http": 80}.get(parts.scheme)
    shown = "" if port is None or port == default else f":{port}"
    host = parts.hostname or ""
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}{shown}"
