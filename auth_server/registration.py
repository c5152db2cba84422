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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from auth_server.clients import AUTH_METHODS, Client
from auth_server.grants import GRANTS, Grants
from auth_server.registry import Registry
from shared.fetch import KINDS, PRIVATE_KINDS, FetchRefused, address_kind, host_address

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


class RegistrationError(ValueError):
    """A client registration that breaks a rule; the message says which."""


@dataclass(frozen=True, slots=True)
class ClientMetadata:
    """What a client asks to be registered with, in RFC 7591 §2 names (the last three are Tessera's)."""

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


class Registered(NamedTuple):
    client: Client
    # the newly generated secret, shown once (None unless the client authenticates with one)
    secret: str | None
    # what the operator should be told, such as a deprecated grant's warning
    notices: tuple[str, ...]


async def register(registry: Registry, metadata: ClientMetadata) -> Registered:
    """Check ``metadata`` against every rule (:class:`RegistrationError` if one is broken), then
    create the client."""
    settings = registry.settings
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
    )
    return Registered(client, secret, notices(metadata.grant_types))


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
        raise RegistrationError("grant types that use /authorize need at least one redirect URI")
    for uri in redirect_uris:
        check_redirect_uri(uri, public=auth_method == "none")
    unknown = [s for s in scope if s not in known_scopes]
    if unknown:
        raise RegistrationError(
            f"unknown scope(s): {' '.join(unknown)}; known: {' '.join(sorted(known_scopes))}"
        )


def check_redirect_uri(uri: str, *, public: bool) -> None:
    if any(c in uri for c in "* \t\r\n") or "\\" in uri:
        raise RegistrationError(f"redirect URI {uri!r}: wildcards and whitespace are not allowed")
    parts = urlsplit(uri)
    if not parts.scheme:
        raise RegistrationError(f"redirect URI {uri!r} must be absolute")
    if parts.fragment or uri.endswith("#"):
        raise RegistrationError(f"redirect URI {uri!r} must not contain a fragment (RFC 6749 §3.1.2)")
    if parts.username is not None or parts.password is not None:
        raise RegistrationError(f"redirect URI {uri!r} must not contain user information")
    if parts.scheme == "https":
        if not parts.hostname:
            raise RegistrationError(f"redirect URI {uri!r} has no host")
    elif parts.scheme == "http":
        if parts.hostname not in LOOPBACK_HOSTS:
            raise RegistrationError(f"redirect URI {uri!r}: plain http is allowed only for loopback hosts")
    elif public and "." in parts.scheme:
        pass  # private-use URI scheme of a native app, e.g. com.example.app:/callback (RFC 8252 §7.1)
    else:
        raise RegistrationError(
            f"redirect URI {uri!r}: use https (or a reverse-domain private scheme for a public native app)"
        )


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
    """Early feedback on a ``jwks_uri``; the real guard is :mod:`shared.fetch` at every fetch, which
    checks the addresses a name resolves to when it connects (a name can change its answer).

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
            raise RegistrationError(f"jwks_uri {uri!r} must be https")
        raise RegistrationError(f"jwks_uri {uri!r} must be https (http only on a loopback host)")
    if development is False and (host == "localhost" or host.endswith(".localhost")):
        raise RegistrationError(f"jwks_uri {uri!r}: {host} is a loopback name; use a public https URL")
    try:
        address = host_address(host)
    except FetchRefused as error:
        raise RegistrationError(f"jwks_uri {uri!r}: {error}") from None
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
            f"jwks_uri {uri!r}: {address} is {KINDS[kind]}; Tessera fetches keys only from public addresses"
        )
