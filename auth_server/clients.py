"""Clients (RFC 6749 §2): the registration rules, and the record every endpoint reads.

Registration follows RFC 7591's field names. Redirect URIs are matched by exact string
comparison (RFC 9700 §4.1.3), so they are checked hard here: absolute, no fragment, no
wildcard; https, or http only on a loopback host, or a private-use scheme (RFC 8252 §7.1)
for public (native) clients.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.fetch import KINDS, PRIVATE_KINDS, FetchRefused, address_kind, host_address

# grant_type values this server implements; a client may only be registered for these.
GRANT_TYPES = ("authorization_code", "refresh_token", "implicit", "password", "client_credentials")
# grants RFC 9700 deprecates: allowed only for clients registered for them, with a warning
DEPRECATED_GRANTS = ("implicit", "password")
# the grant type that makes /authorize answer each response_type
RESPONSE_TYPE_GRANTS = {"code": "authorization_code", "token": "implicit"}
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
AUTH_METHODS = (*SECRET_METHODS, "private_key_jwt", "none")
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
# Tessera issues 22-character URL-safe ids; anything unlike an id is refused before any lookup.
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def plausible_client_id(value: str) -> bool:
    """Whether ``value`` could name a client at all (so that it is worth a lookup or a cache entry)."""
    return _CLIENT_ID.fullmatch(value) is not None


class RegistrationError(ValueError):
    """A client registration that breaks a rule; the message says which."""


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    client_name: str
    secret_hash: bytes | None
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scope: tuple[str, ...]
    token_endpoint_auth_method: str
    allow_introspection: bool = False
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    # the code grant without PKCE: only where an operator relaxed it for a confidential client
    require_pkce: bool = True
    # operated by the provider itself: a remembered consent may answer without asking again
    first_party: bool = False

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"  # noqa: S105 - the auth method named none

    def remembers_consent(self, response_type: str) -> bool:
        """Whether a consent the user gave before may answer a new request without a page.

        Not for a public client, nor for the implicit grant: anyone can send a public client's id,
        and its redirect URI may be claimed by another app (a private-use scheme, RFC 8252 §8.6),
        so the user must see each request (RFC 6749 §10.2) — unless the operator marked the
        client first-party."""
        return self.first_party or (not self.is_public and response_type == "code")

    @property
    def response_types(self) -> tuple[str, ...]:
        return tuple(rt for rt, grant in RESPONSE_TYPE_GRANTS.items() if grant in self.grant_types)

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def registration(self, client_secret: str | None = None) -> dict[str, Any]:
        """The client as RFC 7591 metadata; the secret only when just generated."""
        out: dict[str, Any] = {
            "client_id": self.client_id,
            "client_name": self.client_name,
            "redirect_uris": list(self.redirect_uris),
            "grant_types": list(self.grant_types),
            "response_types": list(self.response_types),
            "scope": " ".join(self.scope),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "allow_introspection": self.allow_introspection,
            "require_pkce": self.require_pkce,
            "first_party": self.first_party,
        }
        if self.jwks is not None:
            out["jwks"] = self.jwks
        if self.jwks_uri is not None:
            out["jwks_uri"] = self.jwks_uri
        if client_secret is not None:
            out["client_secret"] = client_secret
            out["client_secret_expires_at"] = 0
        return out


def validate_registration(
    *,
    name: str,
    redirect_uris: list[str],
    grant_types: list[str],
    scope: list[str],
    auth_method: str,
    known_scopes: set[str],
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    require_pkce: bool = True,
    development: bool | None = None,
) -> None:
    """``development``: whether the issuer is a local development one (``Settings.development``),
    which decides the ``jwks_uri`` hosts accepted (:func:`check_jwks_uri`); callers should pass it."""
    if not name.strip():
        raise RegistrationError("client name must not be empty")
    if auth_method not in AUTH_METHODS:
        raise RegistrationError(f"token endpoint auth method must be one of {', '.join(AUTH_METHODS)}")
    if not grant_types:
        raise RegistrationError("at least one grant type is required")
    for grant in grant_types:
        if grant not in GRANT_TYPES:
            raise RegistrationError(f"unsupported grant type {grant!r}; supported: {', '.join(GRANT_TYPES)}")
    if "refresh_token" in grant_types and not {"authorization_code", "password"} & set(grant_types):
        raise RegistrationError("refresh_token needs a grant that issues refresh tokens")
    if "client_credentials" in grant_types and auth_method == "none":
        raise RegistrationError("client_credentials is for confidential clients only")
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
    redirecting = any(g in RESPONSE_TYPE_GRANTS.values() for g in grant_types)
    if redirecting and not redirect_uris:
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
