"""Client registration as one service (RFC 7591 §2 metadata; RFC 6749 §2, §3.1.2; RFC 8252 §7).

:func:`register` checks a registration against every rule and creates the client; the CLI
(``tessera client create``), the development seed (``auth_server/dev.py``) and the tests' client
factory call it, as the registration endpoint and the admin API will. It returns notices for the
operator, such as the warning that goes with a grant RFC 9700 deprecates.

The grant rules are derived from the grant declarations (``grants/base.py``): which grant types
exist, which are deprecated or for confidential clients only, which issue refresh tokens, and which
are served at /authorize (and so need a redirect URI). Redirect URIs are matched by exact string
comparison at /authorize (RFC 9700 §4.1.3), so they are checked hard here: absolute, no fragment,
no wildcard; https, or http only on a loopback host, or a private-use scheme (RFC 8252 §7.1) for
public (native) clients.

The OpenID Connect metadata (Dynamic Registration 1.0 §2, RP-Initiated Logout 1.0 §3.1, Back-Channel
Logout 1.0 §2.2) has rules of its own, one function each, run by :func:`validate_openid_metadata`;
a pairwise client's sector identifier (Core §8.1) is computed at registration, fetching its
``sector_identifier_uri`` through the one guarded fetcher (:mod:`shared.fetch`).
:func:`metadata_from_document` reads an RFC 7591 JSON document (``tessera client create
--metadata-file``, later the registration endpoint). A :class:`RegistrationError` carries the RFC 7591
§3.2.2 error code such an endpoint answers with.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import SplitResult, urlsplit

from aiohttp.abc import AbstractResolver

from auth_server import profiles
from auth_server.clients import (
    AUTH_METHODS,
    SUBJECT_TYPES,
    Client,
    canonical_response_type,
)
from auth_server.grants import GRANTS, Grants
from auth_server.registry import Registry
from auth_server.scopes import ADMIN_SCOPES
from auth_server.settings import Settings
from auth_server.signing import ID_TOKEN_ALGORITHMS
from auth_server.stores.clients import EXTENSION_FIELDS, OIDC_FIELDS, PLATFORM_FIELDS
from shared.fetch import KINDS, PRIVATE_KINDS, Fetcher, FetchError, FetchRefused, address_kind, host_address

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
MAX_ACR_VALUES, MAX_ACR_LENGTH = 10, 200  # default_acr_values: how many, how long each
# the largest default_max_age the database holds (a PostgreSQL integer)
MAX_AGE_LIMIT = 2**31 - 1
# the web pages about a client that the consent page may link to (RFC 7591 §2)
INFO_URIS = ("logo_uri", "client_uri", "policy_uri", "tos_uri")


class RegistrationError(ValueError):
    """A client registration that breaks a rule; the message says which.

    ``error``: the RFC 7591 §3.2.2 error code a registration endpoint answers with
    (``invalid_redirect_uri`` or ``invalid_client_metadata``).
    """

    def __init__(self, message: str, *, error: str = "invalid_client_metadata") -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True, slots=True)
class ClientMetadata:
    """What a client asks to be registered with, in RFC 7591 §2 and OpenID Connect Dynamic Registration
    1.0 §2 names (``require_pkce``, ``allow_introspection`` and ``first_party`` are Tessera's)."""

    client_name: str
    redirect_uris: Sequence[str]
    grant_types: Sequence[str]
    scope: Sequence[str]
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105 - RFC 7591 §2: the default method
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    # the code grant without PKCE: refused for a public client (RFC 9700 §2.1.1)
    require_pkce: bool = True
    # may call the introspection endpoint (RFC 7662 §2.1)
    allow_introspection: bool = False
    # operated by the provider itself: a remembered consent may answer without asking again
    first_party: bool = False
    # RFC 9126 §6: the client's authorization requests must be pushed to the PAR endpoint first
    require_pushed_authorization_requests: bool = False
    # RFC 9449 §5.2: the client always sends DPoP proofs; token requests without one are refused
    dpop_bound_access_tokens: bool = False
    # Tessera's: the security profile it is held to (auth_server/profiles.py: "fapi2"); None: none
    tessera_profile: str | None = None
    # OpenID Connect Dynamic Registration 1.0 §2; None: those that go with the grant types (RFC 7591 §2.1)
    response_types: Sequence[str] | None = None
    # RP-Initiated Logout 1.0 §3.1
    post_logout_redirect_uris: Sequence[str] = ()
    subject_type: str = "public"
    sector_identifier_uri: str | None = None
    id_token_signed_response_alg: str = "RS256"  # noqa: S105 - an algorithm name
    userinfo_signed_response_alg: str | None = None  # None: userinfo answers plain JSON
    # Back-Channel Logout 1.0 §2.2
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False
    default_max_age: int | None = None
    default_acr_values: Sequence[str] | None = None  # Registration §2 (two-step sign-in: issue 18)
    require_auth_time: bool = False
    logo_uri: str | None = None
    client_uri: str | None = None
    policy_uri: str | None = None
    tos_uri: str | None = None
    # the open platform (issue 15): the review's starting point, who applied and what they said
    status: str = "approved"
    owner_id: uuid.UUID | None = None
    registered_via: str = "operator"  # operator | developer | dynamic
    description: str | None = None
    contact_name: str | None = None
    contact_email: str | None = None
    scope_justification: str | None = None


class Registered(NamedTuple):
    client: Client
    # the newly generated secret, shown once (None unless the client authenticates with one)
    secret: str | None
    # what the operator should be told, such as a deprecated grant's warning
    notices: tuple[str, ...]


def validate(settings: Settings, metadata: ClientMetadata) -> None:
    """Every rule a registration (or an update of one) must meet: :class:`RegistrationError` names
    the first one broken."""
    check_operator_scopes(metadata.scope, registered_via=metadata.registered_via)
    validate_registration(
        name=metadata.client_name,
        redirect_uris=metadata.redirect_uris,
        grant_types=metadata.grant_types,
        scope=metadata.scope,
        auth_method=metadata.token_endpoint_auth_method,
        known_scopes=set(settings.scopes),
        jwks=metadata.jwks,
        jwks_uri=metadata.jwks_uri,
        require_pkce=metadata.require_pkce,
        development=settings.development,
    )
    validate_openid_metadata(metadata, development=settings.development)
    # a security profile's rules (FAPI 2.0), on what profiles.applied() has filled in
    problem = profiles.registration_problem(metadata)
    if problem is not None:
        raise RegistrationError(problem)
    check_dpop_response_types(metadata)


async def register(
    registry: Registry, metadata: ClientMetadata, *, resolver: AbstractResolver | None = None
) -> Registered:
    """Check ``metadata`` against every rule (:class:`RegistrationError` if one is broken), then
    create the client.

    ``resolver``: answers the host names of a ``sector_identifier_uri`` instead of the system
    resolver (tests); the fetch allows private addresses only for a development issuer either way.
    """
    settings = registry.settings
    metadata = profiles.applied(metadata)  # what a security profile implies (FAPI 2.0: PAR, DPoP...)
    validate(settings, metadata)
    sector = await sector_identifier(metadata, development=settings.development, resolver=resolver)
    openid = {name: getattr(metadata, name) for name in OIDC_FIELDS if name != "sector_identifier"}
    platform = {name: getattr(metadata, name) for name in PLATFORM_FIELDS}
    extensions = {name: getattr(metadata, name) for name in EXTENSION_FIELDS}
    client, secret = await registry.clients.create(
        name=metadata.client_name,
        redirect_uris=list(metadata.redirect_uris),
        grant_types=list(metadata.grant_types),
        scope=list(metadata.scope),
        auth_method=metadata.token_endpoint_auth_method,
        allow_introspection=metadata.allow_introspection,
        jwks=metadata.jwks,
        jwks_uri=metadata.jwks_uri,
        require_pkce=metadata.require_pkce,
        first_party=metadata.first_party,
        response_types=None
        if metadata.response_types is None
        else list(canonical_response_types(metadata.response_types)),
        openid={**openid, **platform, **extensions, "sector_identifier": sector},
    )
    return Registered(client, secret, notices(metadata.grant_types))


def check_dpop_response_types(metadata: ClientMetadata, grants: Grants = GRANTS) -> None:
    """RFC 9449 §5.2: every access token of a client registered with ``dpop_bound_access_tokens`` is
    DPoP-bound, and one returned from /authorize (``token``, ``id_token token``) cannot be (there is
    no proof to bind it to): such a client may not have those response types."""
    if not metadata.dpop_bound_access_tokens:
        return
    response_types = (
        grants.default_response_types(metadata.grant_types)
        if metadata.response_types is None
        else metadata.response_types
    )
    returning = [value for value in response_types if "token" in value.split()]
    if returning:
        raise RegistrationError(
            "a client with dpop_bound_access_tokens cannot have response types that return an access"
            f" token from the authorization endpoint ({', '.join(returning)}): its tokens must be"
            " DPoP-bound (RFC 9449 §5.2); use code"
        )


def check_operator_scopes(scope: Sequence[str], *, registered_via: str) -> None:
    """The admin API's scopes (:data:`auth_server.scopes.ADMIN_SCOPES`) are for clients an operator
    registers (``tessera client create``, the admin API) alone: never for one registered dynamically
    (RFC 7591) or by a developer, whose every scope would otherwise be one request away."""
    admin = [name for name in scope if name in ADMIN_SCOPES]
    if admin and registered_via != "operator":
        raise RegistrationError(f"the scope(s) {' '.join(admin)} can only be registered by an operator")


def notices(grant_types: Sequence[str], grants: Grants = GRANTS) -> tuple[str, ...]:
    """Warnings for the operator registering a client for ``grant_types``."""
    return tuple(
        f"the {grant_type} grant is deprecated by RFC 9700 (OAuth 2.0 Security BCP); "
        "prefer authorization_code with PKCE (see README)"
        for grant_type in grants.deprecated
        if grant_type in grant_types
    )


def validate_registration(
    *,
    name: str,
    redirect_uris: Sequence[str],
    grant_types: Sequence[str],
    scope: Sequence[str],
    auth_method: str,
    known_scopes: set[str],
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    require_pkce: bool = True,
    development: bool | None = None,
    grants: Grants = GRANTS,
) -> None:
    """Raise :class:`RegistrationError` naming the first rule the registration breaks.

    ``development``: whether the issuer is a local development one (``Settings.development``),
    which decides the ``jwks_uri`` hosts accepted (:func:`check_jwks_uri`); callers should pass it.
    ``grants``: the grants this server implements (the registry of ``grants/``).
    """
    if not name.strip():
        raise RegistrationError("client name must not be empty")
    if auth_method not in AUTH_METHODS:
        raise RegistrationError(f"token endpoint auth method must be one of {', '.join(AUTH_METHODS)}")
    if not grant_types:
        raise RegistrationError("at least one grant type is required")
    for grant_type in grant_types:
        if grant_type not in grants:
            raise RegistrationError(f"unsupported grant type {grant_type!r}; supported: {', '.join(grants)}")
    declared = [grants[grant_type] for grant_type in grant_types]
    if "refresh_token" in grant_types and not any(grant.issues_refresh_tokens for grant in declared):
        raise RegistrationError("refresh_token needs a grant that issues refresh tokens")
    for grant in declared:
        if grant.confidential_only and auth_method == "none":
            raise RegistrationError(f"{grant.grant_type} is for confidential clients only")
    if not require_pkce and auth_method == "none":
        raise RegistrationError("a public client must use PKCE (RFC 9700 §2.1.1)")
    if auth_method == "private_key_jwt":
        if (jwks is None) == (jwks_uri is None):
            raise RegistrationError("private_key_jwt needs exactly one of a JWKS or a jwks_uri")
        if jwks is not None:
            check_jwks(jwks)
        if jwks_uri is not None:
            check_jwks_uri(jwks_uri, development=development)
    elif jwks is not None or jwks_uri is not None:
        raise RegistrationError("a JWKS is only used with the private_key_jwt auth method")
    if any(grant.response_types for grant in declared) and not redirect_uris:
        raise RegistrationError(
            "grant types that use /authorize need at least one redirect URI", error="invalid_redirect_uri"
        )
    for uri in redirect_uris:
        check_redirect_uri(uri, public=auth_method == "none")
    unknown = [s for s in scope if s not in known_scopes]
    if unknown:
        raise RegistrationError(
            f"unknown scope(s): {' '.join(unknown)}; known: {' '.join(sorted(known_scopes))}"
        )


def check_redirect_uri(
    uri: str, *, public: bool, label: str = "redirect URI", error: str = "invalid_redirect_uri"
) -> None:
    """A redirect URI (RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §4.1.3); ``label`` names it in
    messages, ``error`` is the RFC 7591 error code (post-logout redirect URIs follow the same rules)."""

    def refuse(message: str) -> RegistrationError:
        return RegistrationError(f"{label} {uri!r}{message}", error=error)

    if any(c in uri for c in "* \t\r\n") or "\\" in uri:
        raise refuse(": wildcards and whitespace are not allowed")
    parts = urlsplit(uri)
    if not parts.scheme:
        raise refuse(" must be absolute")
    if parts.fragment or uri.endswith("#"):
        raise refuse(" must not contain a fragment (RFC 6749 §3.1.2)")
    if parts.username is not None or parts.password is not None:
        raise refuse(" must not contain user information")
    if parts.scheme == "https":
        if not parts.hostname:
            raise refuse(" has no host")
    elif parts.scheme == "http":
        if parts.hostname not in LOOPBACK_HOSTS:
            raise refuse(": plain http is allowed only for loopback hosts")
    elif public and "." in parts.scheme:
        pass  # private-use URI scheme of a native app, e.g. com.example.app:/callback (RFC 8252 §7.1)
    else:
        raise refuse(": use https (or a reverse-domain private scheme for a public native app)")


def check_jwks(jwks: dict[str, Any]) -> None:
    """A public JWK Set usable for signature verification: no private or symmetric keys."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        raise RegistrationError('the JWKS must be an object with a non-empty "keys" array')
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in ("RSA", "EC", "OKP"):
            raise RegistrationError("JWKS keys must be RSA, EC or OKP public keys")
        if "d" in key or any(p in key for p in ("p", "q", "dp", "dq", "qi", "k")):
            raise RegistrationError("the JWKS must hold public keys only")


def check_jwks_uri(uri: str, *, development: bool | None = None) -> None:
    """Early feedback on a ``jwks_uri`` (:func:`check_fetched_uri`)."""
    check_fetched_uri(uri, field="jwks_uri", development=development, fetched="keys")


def check_fetched_uri(uri: str, *, field: str, development: bool | None = None, fetched: str) -> None:
    """Early feedback on a URL Tessera will fetch (``jwks_uri``, ``sector_identifier_uri``); the real
    guard is :mod:`shared.fetch` at every fetch, which checks the addresses a name resolves to when it
    connects (a name can change its answer). ``field`` and ``fetched`` (what is fetched) are for messages.

    * ``development=False`` (a production issuer): https only, and the host must not be a loopback
      name (``localhost``, ``*.localhost``, RFC 6761 §6.3) nor an IP literal outside the public
      unicast space (loopback, private, link-local, CGNAT, multicast, reserved...).
    * ``development=True`` (an http://localhost issuer): https, or http on a loopback host;
      private and loopback IP literals are fine, link-local, multicast and reserved ones are not.
    * ``None`` (the caller did not say): as in production, except that the loopback hosts stay
      allowed (http too), as before this rule existed; a production fetch refuses them anyway.
    """
    parts = urlsplit(uri)
    host = (parts.hostname or "").rstrip(".")
    loopback_http = parts.scheme == "http" and host in LOOPBACK_HOSTS and development is not False
    if not (parts.scheme == "https" and host) and not loopback_http:
        if development is False:
            raise RegistrationError(f"{field} {uri!r} must be https")
        raise RegistrationError(f"{field} {uri!r} must be https (http only on a loopback host)")
    if development is False and (host == "localhost" or host.endswith(".localhost")):
        raise RegistrationError(f"{field} {uri!r}: {host} is a loopback name; use a public https URL")
    try:
        address = host_address(host)
    except FetchRefused as error:
        raise RegistrationError(f"{field} {uri!r}: {error}") from None
    if address is None:
        return
    kind = address_kind(address)
    allowed = (
        kind == "public"
        or (development is True and kind in PRIVATE_KINDS)
        or (development is None and kind == "loopback")
    )
    if not allowed:
        raise RegistrationError(
            f"{field} {uri!r}: {address} is {KINDS[kind]};"
            f" Tessera fetches {fetched} only from public addresses"
        )


def canonical_response_types(response_types: Sequence[str]) -> tuple[str, ...]:
    """Each response type in canonical form (:func:`canonical_response_type`), each once."""
    return tuple(dict.fromkeys(canonical_response_type(value) for value in response_types))


def validate_openid_metadata(metadata: ClientMetadata, *, development: bool) -> None:
    """Raise :class:`RegistrationError` naming the first OpenID Connect metadata rule broken (what
    :func:`validate_registration` checks is taken as checked). The sector identifier document is
    fetched later, by :func:`sector_identifier`.

    ``development``: whether the issuer is a local development one, which allows http on loopback
    hosts for the URLs Tessera fetches or shows (``sector_identifier_uri``, ``logo_uri``...).
    """
    if metadata.response_types is not None:
        check_response_types(metadata.response_types, grant_types=metadata.grant_types, scope=metadata.scope)
    for uri in metadata.post_logout_redirect_uris:
        check_redirect_uri(
            uri,
            public=metadata.token_endpoint_auth_method == "none",  # noqa: S105 - the method named none
            label="post_logout_redirect_uri",
            error="invalid_client_metadata",
        )
    check_subject_type(metadata.subject_type)
    if metadata.sector_identifier_uri is not None:
        check_fetched_uri(
            metadata.sector_identifier_uri,
            field="sector_identifier_uri",
            development=development,
            fetched="sector identifier documents",
        )
    elif metadata.subject_type == "pairwise":
        redirect_uri_sector(metadata.redirect_uris)
    check_signing_alg("id_token_signed_response_alg", metadata.id_token_signed_response_alg)
    if metadata.userinfo_signed_response_alg is not None:
        check_signing_alg("userinfo_signed_response_alg", metadata.userinfo_signed_response_alg)
    if metadata.backchannel_logout_uri is not None:
        check_backchannel_logout_uri(metadata.backchannel_logout_uri)
    if metadata.default_max_age is not None:
        check_default_max_age(metadata.default_max_age)
    if metadata.default_acr_values is not None:
        check_default_acr_values(metadata.default_acr_values)
    for field in INFO_URIS:
        uri = getattr(metadata, field)
        if uri is not None:
            check_info_uri(field, uri, development=development)


def check_response_types(
    response_types: Sequence[str],
    *,
    grant_types: Sequence[str],
    scope: Sequence[str],
    grants: Grants = GRANTS,
) -> None:
    """OpenID Connect Dynamic Registration 1.0 §2 ``response_types``: each one served by a grant of
    ``grants`` (compared in canonical form: the order of its values does not matter), with every
    grant type it needs registered too (RFC 7591 §2.1, :meth:`Grants.needed_for`); one that returns
    an ID token needs ``openid`` in the client's scope (Core §3.1.2.1). An empty list is refused:
    leaving the field out means the response types of the grant types."""
    if not response_types:
        raise RegistrationError("response_types must not be empty (leave it out to use the grant types')")
    for value in response_types:
        needed = grants.needed_for(value)
        if needed is None:
            raise RegistrationError(
                f"unsupported response type {value!r}; supported: {', '.join(grants.response_types)}"
            )
        missing = [grant_type for grant_type in needed if grant_type not in grant_types]
        if missing:
            raise RegistrationError(
                f"response type {value!r} needs the grant type(s) {', '.join(missing)} (RFC 7591 §2.1)"
            )
        if "id_token" in value.split() and "openid" not in scope:
            raise RegistrationError(
                f"response type {value!r} returns an ID token: the client's scope must include openid"
            )


def check_subject_type(subject_type: str) -> None:
    """OpenID Connect Core §8: ``public`` (one ``sub`` for every client) or ``pairwise`` (one per sector)."""
    if subject_type not in SUBJECT_TYPES:
        raise RegistrationError(
            f"subject_type must be one of {', '.join(SUBJECT_TYPES)} (OpenID Connect Core §8)"
        )


def redirect_uri_sector(redirect_uris: Sequence[str]) -> str:
    """OpenID Connect Core §8.1: without a ``sector_identifier_uri``, the sector of a pairwise client
    is the host of its redirect URIs, which must then all have one host."""
    hosts = {urlsplit(uri).hostname for uri in redirect_uris}
    if len(hosts) != 1 or None in hosts:
        raise RegistrationError(
            "a pairwise client's redirect URIs must all have one host; otherwise register a"
            " sector_identifier_uri that lists them (OpenID Connect Core §8.1)"
        )
    (host,) = hosts
    assert host is not None
    if host in LOOPBACK_HOSTS:
        # every native app on this machine would share one sector, and so one subject per user
        raise RegistrationError(
            "a pairwise client with loopback redirect URIs must register a sector_identifier_uri"
            " (OpenID Connect Core §8.1): the loopback host names no sector of its own"
        )
    return host


async def sector_identifier(
    metadata: ClientMetadata, *, development: bool, resolver: AbstractResolver | None = None
) -> str | None:
    """The host that pairwise subjects are computed for (OpenID Connect Core §8.1): that of the
    ``sector_identifier_uri`` once its document is fetched and checked (:func:`check_sector_document`),
    else that of the redirect URIs for a pairwise client, else none (a public client).

    The fetch goes through :class:`shared.fetch.Fetcher`, private addresses allowed only for a
    development issuer; ``resolver`` replaces the system resolver (tests).
    """
    uri = metadata.sector_identifier_uri
    if uri is None:
        return redirect_uri_sector(metadata.redirect_uris) if metadata.subject_type == "pairwise" else None
    async with Fetcher(allow_private=development, resolver=resolver) as fetcher:
        try:
            document = await fetcher.fetch_json(uri)
        except FetchError as error:
            raise RegistrationError(f"sector_identifier_uri: {error}") from None
    check_sector_document(uri, document, metadata.redirect_uris)
    host = urlsplit(uri).hostname
    assert host is not None  # check_fetched_uri saw to it
    return host


def check_sector_document(uri: str, document: Any, redirect_uris: Sequence[str]) -> None:
    """OpenID Connect Core §8.1, Dynamic Registration 1.0 §5: the document at a
    ``sector_identifier_uri`` is a JSON array of URIs that lists every redirect URI of the client."""
    if not isinstance(document, list) or not all(isinstance(item, str) for item in document):
        raise RegistrationError(
            f"sector_identifier_uri {uri!r} must hold a JSON array of redirect URIs"
            " (OpenID Connect Core §8.1)"
        )
    missing = [redirect for redirect in redirect_uris if redirect not in document]
    if missing:
        raise RegistrationError(
            f"sector_identifier_uri {uri!r} does not list the redirect URI(s) {', '.join(missing)};"
            " it must list every one (OpenID Connect Core §8.1)",
            error="invalid_redirect_uri",
        )


def check_signing_alg(field: str, alg: str) -> None:
    """``id_token_signed_response_alg`` / ``userinfo_signed_response_alg`` (Dynamic Registration 1.0
    §2): an algorithm Tessera signs with. ``none`` is refused: Core §2 permits unsigned ID tokens only
    to a client that asks for them and gets ID tokens from the token endpoint alone, and Tessera
    offers none."""
    if alg == "none":
        raise RegistrationError(
            f"{field}: Tessera signs every token (alg none is not offered);"
            f" use one of {', '.join(ID_TOKEN_ALGORITHMS)}"
        )
    if alg not in ID_TOKEN_ALGORITHMS:
        raise RegistrationError(f"{field} must be one of {', '.join(ID_TOKEN_ALGORITHMS)}, not {alg!r}")


def check_backchannel_logout_uri(uri: str) -> None:
    """Back-Channel Logout 1.0 §2.2: an absolute URL, https (http only on a loopback host, as for
    redirect URIs), which may have a query but no fragment."""
    _web_url("backchannel_logout_uri", uri, loopback_http=True)


def check_default_acr_values(values: Sequence[str]) -> None:
    """Dynamic Registration 1.0 §2 ``default_acr_values``: acr values (strings without spaces), in
    order of preference; ``urn:tessera:acr:mfa`` alone demands two-step sign-in
    (:mod:`auth_server.oidc.acr`), other values are voluntary."""
    if len(values) > MAX_ACR_VALUES or any(
        not value or len(value) > MAX_ACR_LENGTH or not value.isprintable() or " " in value
        for value in values
    ):
        raise RegistrationError(
            f"default_acr_values must be at most {MAX_ACR_VALUES} acr values, each a non-empty string"
            f" of at most {MAX_ACR_LENGTH} printable characters without spaces"
        )


def check_default_max_age(max_age: int) -> None:
    """Dynamic Registration 1.0 §2 ``default_max_age``: a number of seconds, not negative."""
    if isinstance(max_age, bool) or not isinstance(max_age, int) or not 0 <= max_age <= MAX_AGE_LIMIT:
        raise RegistrationError(
            f"default_max_age must be a whole number of seconds from 0 to {MAX_AGE_LIMIT}"
        )


def check_info_uri(field: str, uri: str, *, development: bool) -> None:
    """``logo_uri``, ``client_uri``, ``policy_uri``, ``tos_uri`` (RFC 7591 §2), shown or linked on the
    consent page: https URLs without a fragment; http on a loopback host for a development issuer only."""
    _web_url(field, uri, loopback_http=development)


def _web_url(field: str, uri: str, *, loopback_http: bool) -> SplitResult:
    """``uri`` parsed if it is an absolute https URL with a host (or http on a loopback host, with
    ``loopback_http``), with neither user information, fragment nor whitespace."""
    if any(c.isspace() for c in uri):
        raise RegistrationError(f"{field} {uri!r} must not contain whitespace")
    parts = urlsplit(uri)
    allowed = parts.scheme == "https" or (
        loopback_http and parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    )
    if not allowed or not parts.hostname:
        where = " (http only on a loopback host)" if loopback_http else ""
        raise RegistrationError(f"{field} {uri!r} must be an absolute https URL{where}")
    if parts.username is not None or parts.password is not None:
        raise RegistrationError(f"{field} {uri!r} must not contain user information")
    if parts.fragment or uri.endswith("#"):
        raise RegistrationError(f"{field} {uri!r} must not contain a fragment")
    return parts


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise RegistrationError(f"{field} must be a string")
    return value


def _texts(field: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RegistrationError(f"{field} must be an array of strings")
    return tuple(value)


def _flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise RegistrationError(f"{field} must be true or false")
    return value


def _whole_number(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RegistrationError(f"{field} must be a whole number")
    return value


def _json_object(field: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RegistrationError(f"{field} must be a JSON object")
    return value


def _scope(field: str, value: Any) -> tuple[str, ...]:
    return tuple(_text(field, value).split())


# Each field of an RFC 7591 document Tessera reads, with how its JSON value is read.
DOCUMENT_FIELDS: dict[str, Callable[[str, Any], Any]] = {
    "client_name": _text,
    "redirect_uris": _texts,
    "grant_types": _texts,
    "response_types": _texts,
    "scope": _scope,  # RFC 7591 §2: one string, space-separated
    "token_endpoint_auth_method": _text,
    "jwks": _json_object,
    "jwks_uri": _text,
    "post_logout_redirect_uris": _texts,
    "subject_type": _text,
    "sector_identifier_uri": _text,
    "id_token_signed_response_alg": _text,
    "userinfo_signed_response_alg": _text,
    "backchannel_logout_uri": _text,
    "backchannel_logout_session_required": _flag,
    "default_max_age": _whole_number,
    "default_acr_values": _texts,
    "require_auth_time": _flag,
    **dict.fromkeys(INFO_URIS, _text),
    "require_pkce": _flag,
    "allow_introspection": _flag,
    "first_party": _flag,
    "require_pushed_authorization_requests": _flag,  # RFC 9126 §6
    "dpop_bound_access_tokens": _flag,  # RFC 9449 §5.2
    "tessera_profile": _text,  # Tessera's: a security profile (auth_server/profiles.py)
}
assert set(DOCUMENT_FIELDS) <= {field.name for field in dataclasses.fields(ClientMetadata)}


def metadata_from_document(document: Mapping[str, Any], *, ignore_unknown: bool = False) -> ClientMetadata:
    """:class:`ClientMetadata` from an RFC 7591 §2 JSON object; a ``null`` value is the same as a
    field left out, and fields left out take RFC 7591's defaults (``grant_types``:
    ``authorization_code``; ``token_endpoint_auth_method``: ``client_secret_basic``).

    A value of the wrong JSON type is a :class:`RegistrationError`, and so is a field Tessera does not
    read unless ``ignore_unknown``: a registration endpoint ignores those (RFC 7591 §2), but an
    operator's file is refused, so that a misspelt name does not pass unnoticed.
    """
    unknown = [name for name in document if name not in DOCUMENT_FIELDS]
    if unknown and not ignore_unknown:
        raise RegistrationError(
            f"unknown client metadata: {', '.join(unknown)}; known: {', '.join(DOCUMENT_FIELDS)}"
        )
    fields = {
        name: DOCUMENT_FIELDS[name](name, value)
        for name, value in document.items()
        if name in DOCUMENT_FIELDS and value is not None
    }
    fields.setdefault("client_name", "")
    fields.setdefault("redirect_uris", ())
    fields.setdefault("grant_types", ("authorization_code",))
    fields.setdefault("scope", ())
    return ClientMetadata(**fields)
