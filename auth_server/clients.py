"""Clients (RFC 6749 §2): the record every endpoint reads, in RFC 7591's field names.

The rules a registration must meet, and the service that creates clients, are in
:mod:`auth_server.registration`; the grants a client may be registered for are declared in
:mod:`auth_server.grants`. This module loads neither, so that the stores can use it: the one rule
here that depends on the grants, the response types of a client registered without any
(:attr:`Client.response_types`), imports their registry only when it is asked.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SUBJECT_TYPES = ("public", "pairwise")
# A client's place in the platform's review (issue 15): only an approved client may be used.
STATUSES = ("pending", "approved", "rejected", "suspended")
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
AUTH_METHODS = (*SECRET_METHODS, "private_key_jwt", "none")
# Tessera issues 22-character URL-safe ids; anything unlike an id is refused before any lookup.
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A client ID metadata document's URL (auth_server/client_documents.py) is its client's id: printable
# ASCII without spaces, and never longer than this (what a consent page can show, and a bound on
# what a flood of made-up ids can make any cache hold).
MAX_URL_CLIENT_ID = 512
_URL_CLIENT_ID = re.compile(rf"https?://[!-~]{{1,{MAX_URL_CLIENT_ID - len('https://')}}}")
# how a client whose metadata document describes it was registered (Client.registered_via)
VIA_METADATA_DOCUMENT = "metadata_document"


def plausible_client_id(value: str, *, urls: bool = False) -> bool:
    """Whether ``value`` could name a client at all (so that it is worth a lookup or a cache entry).

    ``urls``: whether client ID metadata documents are on, so that a URL (of at most
    :data:`MAX_URL_CLIENT_ID` characters) may be a client id too."""
    if _CLIENT_ID.fullmatch(value) is not None:
        return True
    return urls and len(value) <= MAX_URL_CLIENT_ID and _URL_CLIENT_ID.fullmatch(value) is not None


# optional RFC 7591 / OpenID metadata, listed in a client's registration only when set
_OPTIONAL_METADATA = (
    "sector_identifier_uri",
    "userinfo_signed_response_alg",
    "default_max_age",
    "default_acr_values",
    "logo_uri",
    "client_uri",
    "policy_uri",
    "tos_uri",
)


def canonical_response_type(value: str) -> str:
    """A response type with its space-separated values sorted: ``id_token code`` is ``code id_token``."""
    return " ".join(sorted(value.split()))


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
    # RFC 9126 §6: /authorize answers it only for requests pushed to the PAR endpoint first
    require_pushed_authorization_requests: bool = False
    # RFC 9449 §5.2: every token request must carry a DPoP proof (its tokens are all DPoP-bound)
    dpop_bound_access_tokens: bool = False
    # the security profile it is registered under (auth_server/profiles.py: "fapi2"); None: none
    tessera_profile: str | None = None
    # OpenID Connect (Dynamic Registration 1.0 §2; RP-Initiated Logout §3.1; Back-Channel Logout §2.2)
    registered_response_types: tuple[str, ...] | None = None  # None: those of the grant types
    post_logout_redirect_uris: tuple[str, ...] = ()
    subject_type: str = "public"
    sector_identifier_uri: str | None = None
    sector_identifier: str | None = None  # the host pairwise subjects are computed for
    id_token_signed_response_alg: str = "RS256"  # noqa: S105 - an algorithm name
    userinfo_signed_response_alg: str | None = None  # None: userinfo answers plain JSON
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False
    default_max_age: int | None = None
    # Registration §2: the acr values asked for when a request names none (two-step sign-in: issue 18)
    default_acr_values: tuple[str, ...] | None = None
    require_auth_time: bool = False
    logo_uri: str | None = None
    client_uri: str | None = None
    policy_uri: str | None = None
    tos_uri: str | None = None
    # the open platform: its review, its developer, and what the developer told the reviewer
    status: str = "approved"
    owner_id: uuid.UUID | None = None
    registered_via: str = "operator"  # operator | developer | dynamic | metadata_document
    description: str | None = None
    contact_name: str | None = None
    contact_email: str | None = None
    scope_justification: str | None = None
    review_note: str | None = None  # a rejection's or suspension's reason, shown to the developer
    reviewed_at: datetime | None = None
    pending_changes: dict[str, Any] | None = None  # a change waiting for review
    previous_secret_hash: bytes | None = None  # accepted until previous_secret_expires_at
    previous_secret_expires_at: datetime | None = None
    secret_issued_at: datetime | None = None  # the developer console shows the first secret once

    @property
    def active(self) -> bool:
        """Whether the client may be used at all: approved by the platform's review."""
        return self.status == "approved"

    @property
    def from_metadata_document(self) -> bool:
        """Whether the client is what the document at its id says (client ID metadata documents):
        its name, logo and links are its own claims, which nobody here reviewed."""
        return self.registered_via == VIA_METADATA_DOCUMENT

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
        """What the client may ask for at /authorize: as registered, or as RFC 7591 §2.1 pairs them
        with its grant types (:meth:`auth_server.grants.Grants.default_response_types`)."""
        if self.registered_response_types is not None:
            return self.registered_response_types
        # read when asked: the grants' modules import this one (and the stores, which must not
        # load the grants, import it too)
        from auth_server.grants import GRANTS

        return GRANTS.default_response_types(self.grant_types)

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
        out["subject_type"] = self.subject_type
        out["id_token_signed_response_alg"] = self.id_token_signed_response_alg
        if self.post_logout_redirect_uris:
            out["post_logout_redirect_uris"] = list(self.post_logout_redirect_uris)
        if self.backchannel_logout_uri is not None:
            out["backchannel_logout_uri"] = self.backchannel_logout_uri
            out["backchannel_logout_session_required"] = self.backchannel_logout_session_required
        if self.require_auth_time:
            out["require_auth_time"] = True
        if self.require_pushed_authorization_requests:
            out["require_pushed_authorization_requests"] = True
        if self.dpop_bound_access_tokens:
            out["dpop_bound_access_tokens"] = True
        if self.tessera_profile is not None:
            out["tessera_profile"] = self.tessera_profile
        for name in _OPTIONAL_METADATA:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.jwks is not None:
            out["jwks"] = self.jwks
        if self.jwks_uri is not None:
            out["jwks_uri"] = self.jwks_uri
        if client_secret is not None:
            out["client_secret"] = client_secret
            out["client_secret_expires_at"] = 0
        return out
