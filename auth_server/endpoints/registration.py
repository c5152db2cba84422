"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).

``POST /oauth2/register`` registers a client from an RFC 7591 §2 JSON document, through the one
validation path (:func:`auth_server.registration.register`), under the operator's policy
(``TESSERA_REGISTRATION``):

* ``token`` (default): only with an initial access token (RFC 7591 §3, ``Authorization: Bearer``),
  from ``tessera registration-token create``; its expiry and use count are checked and its use
  spent atomically; the client is *pending* review unless the token auto-approves.
* ``open-native``: as ``token``, and also without a token for a public client
  (``token_endpoint_auth_method=none``) whose redirect URIs are all loopback (``http://127.0.0.1``,
  ``http://[::1]``, ``http://localhost``) or private-use schemes (RFC 8252 §7.1, §7.3), for the
  code grant only, with scopes among ``TESSERA_OPEN_SCOPES``: auto-approved. Capped per hour.
* ``off``: 404, and no ``registration_endpoint`` in the metadata.

Unknown metadata is ignored (RFC 7591 §2). Tessera's operator-only fields (``require_pkce``,
``allow_introspection``, ``first_party``) are **refused** with ``invalid_client_metadata`` (a client
must not believe it got them); so are the admin API's scopes. Software statements (§2.3) are refused
(``invalid_software_statement``): Tessera trusts no statement issuer. Every request spends the
address's registration budget (``TESSERA_RATE_REGISTER_PER_IP``).

``GET|PUT|DELETE /oauth2/register/{client_id}`` (RFC 7592) need the client's registration access
token, stored as a digest and compared in constant time; a wrong token or an unknown client is
``401 invalid_token`` alike (§2.1). ``PUT`` replaces the metadata (§2.2), validated by the same
rules, and rotates the registration access token. What a client may change is what a developer may
change (``stores.clients.CHANGEABLE``); the rest (grant types, auth method, keys, subject type…)
is fixed at registration: delete and register again. A change that widens an approved client (a
new scope or redirect URI) waits for review in ``pending_changes`` — as in the developer console —
while the approved settings keep working; an update never approves anything. ``DELETE`` revokes
the client's refresh tokens, deny-lists their access tokens and deletes the client (§2.3, 204).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from aiohttp import web

from auth_server import paths, platform, profiles
from auth_server.appkeys import REGISTRY
from auth_server.clients import Client
from auth_server.rate_limits import limit, per_address
from auth_server.registration import (
    LOOPBACK_HOSTS,
    ClientMetadata,
    RegistrationError,
    canonical_response_types,
    check_operator_scopes,
    metadata_from_document,
    register,
    sector_identifier,
    validate,
)
from auth_server.registry import Registry
from auth_server.stores.rate_limits import Limit
from shared.errors import NO_STORE, InvalidRequest, InvalidToken, NoToken, OAuthError, PayloadTooLarge
from shared.http import body_deadline
from shared.jwt_validation import bearer_token

# Tessera's own fields an operator sets (``tessera client create``), never a self-registering client
OPERATOR_ONLY = ("require_pkce", "allow_introspection", "first_party")
# the fields of a client information response (RFC 7591 §3.2.1) a client must not send back in a PUT
# (RFC 7592 §2.2); ignored when it does, as many libraries send back what they were given
SERVER_FIELDS = (
    "client_id",
    "client_secret",
    "client_id_issued_at",
    "client_secret_expires_at",
    "registration_access_token",
    "registration_client_uri",
    "tessera_status",
    "tessera_pending_changes",
)
# the grants a client registered without an initial access token may have
OPEN_GRANTS = frozenset({"authorization_code", "refresh_token"})
# what a PUT may change: the developer console's changeable details that RFC 7591 names
UPDATABLE = (
    "client_name",
    "redirect_uris",
    "scope",
    "post_logout_redirect_uris",
    "backchannel_logout_uri",
    "logo_uri",
    "client_uri",
    "policy_uri",
    "tos_uri",
)


class InvalidClientMetadata(OAuthError):
    """RFC 7591 §3.2.2."""

    error: ClassVar[str] = "invalid_client_metadata"


class InvalidRedirectUri(OAuthError):
    error: ClassVar[str] = "invalid_redirect_uri"


class InvalidSoftwareStatement(OAuthError):
    error: ClassVar[str] = "invalid_software_statement"


def refused(error: RegistrationError) -> OAuthError:
    """The RFC 7591 §3.2.2 error response for a broken registration rule."""
    if error.error == "invalid_redirect_uri":
        return InvalidRedirectUri(str(error))
    return InvalidClientMetadata(str(error))


# --- RFC 7591 §3: registration ---------------------------------------------------------------


async def register_client(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    settings = registry.settings
    if settings.registration == "off":
        raise web.HTTPNotFound()
    await limit(registry, per_address("register", request, settings.rate_register_per_ip))
    initial_token = bearer_token(request)
    document = await read_json(request)
    metadata = client_metadata(document, default_scope=settings.open_scopes)
    auto_approve = False
    if initial_token is not None:
        used = await registry.registration_tokens.use(initial_token)
        if used is None:
            raise InvalidToken("The initial access token is unknown, expired or used up.")
        auto_approve = used.auto_approve
    elif settings.registration == "open-native":
        check_open_native(metadata, open_scopes=settings.open_scopes)
        await open_cap(registry)
        auto_approve = True
    else:
        raise NoToken("Registration needs an initial access token (Authorization: Bearer).")
    metadata = dataclasses.replace(
        metadata, registered_via="dynamic", status="approved" if auto_approve else "pending"
    )
    try:
        client, secret, _ = await register(registry, metadata)
    except RegistrationError as error:
        if initial_token is not None:
            await registry.registration_tokens.refund(initial_token)
        raise refused(error) from None
    access_token = await registry.registration_tokens.issue_access_token(client.client_id)
    await registry.audit.record(
        "client.registered_dynamically",
        client_id=client.client_id,
        initial_access_token=initial_token is not None,
        status=client.status,
    )
    body = client_information(registry, client, access_token, secret=secret)
    body["client_id_issued_at"] = int(time.time())
    return web.json_response(body, status=201, headers=NO_STORE)


def client_metadata(document: Mapping[str, Any], *, default_scope: Sequence[str]) -> ClientMetadata:
    """The RFC 7591 §2 document as :class:`ClientMetadata`, refusing what a client may not ask for."""
    if "software_statement" in document:
        raise InvalidSoftwareStatement("Software statements are not accepted by this server (RFC 7591 §2.3).")
    given = [name for name in OPERATOR_ONLY if name in document]
    if given:
        raise InvalidClientMetadata(f"{', '.join(given)} can only be set by the operator of this server.")
    fields = {name: value for name, value in document.items() if name not in SERVER_FIELDS}
    try:
        metadata = metadata_from_document(fields, ignore_unknown=True)
        check_operator_scopes(metadata.scope, registered_via="dynamic")
    except RegistrationError as error:
        raise refused(error) from None
    if not metadata.scope:  # RFC 7591 §2: a default set of scopes when none is asked for
        metadata = dataclasses.replace(metadata, scope=tuple(default_scope))
    return metadata


def is_native_redirect(uri: str) -> bool:
    """A loopback http redirect URI or a private-use scheme (RFC 8252 §7.1, §7.3)."""
    parts = urlsplit(uri)
    if parts.scheme == "http":
        return parts.hostname in LOOPBACK_HOSTS
    return parts.scheme not in ("https", "") and "." in parts.scheme


def check_open_native(metadata: ClientMetadata, *, open_scopes: Sequence[str]) -> None:
    """The ``open-native`` policy's conditions for a registration without an initial access token."""
    if metadata.token_endpoint_auth_method != "none":  # noqa: S105 - the auth method named none
        raise InvalidClientMetadata(
            "Without an initial access token only public native clients may register"
            " (token_endpoint_auth_method none, RFC 8252)."
        )
    if not metadata.redirect_uris or not all(is_native_redirect(uri) for uri in metadata.redirect_uris):
        raise InvalidRedirectUri(
            "Without an initial access token every redirect URI must be a loopback http URI or a"
            " private-use scheme (RFC 8252 §7)."
        )
    if not all(is_native_redirect(uri) for uri in metadata.post_logout_redirect_uris):
        raise InvalidRedirectUri(
            "Without an initial access token every post_logout_redirect_uri must be a loopback http URI"
            " or a private-use scheme, as the redirect URIs (else this server would redirect anywhere)."
        )
    if metadata.backchannel_logout_uri is not None:
        raise InvalidClientMetadata(
            "Without an initial access token no backchannel_logout_uri may be registered."
        )
    if not set(metadata.grant_types) <= OPEN_GRANTS:
        raise InvalidClientMetadata(
            "Without an initial access token only the authorization_code (and refresh_token) grants"
            " may be registered."
        )
    closed = [name for name in metadata.scope if name not in open_scopes]
    if closed:
        raise InvalidClientMetadata(
            f"Without an initial access token only the scopes {' '.join(open_scopes) or '(none)'}"
            f" may be registered, not {' '.join(closed)}."
        )


async def open_cap(registry: Registry) -> None:
    """Registrations without an initial access token, from every address together, within
    ``TESSERA_OPEN_REGISTRATIONS_PER_HOUR`` (spent per minute, counted atomically in Redis, shared
    by every replica); registrations with a token are not counted."""
    cap = registry.settings.open_registrations_per_hour
    if cap:
        await limit(registry, Limit("open-register", "everyone", max(1, cap // 60)))


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, read within the body size and time limits."""
    if request.content_type != "application/json":
        raise InvalidRequest("The request body must be application/json.")
    try:
        async with body_deadline(request):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"The request body is larger than {request.client_max_size} bytes.") from None
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise InvalidClientMetadata("The request body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise InvalidClientMetadata("The client metadata must be a JSON object.")
    return document


def client_information(
    registry: Registry, client: Client, access_token: str, *, secret: str | None = None
) -> dict[str, Any]:
    """RFC 7591 §3.2.1 / RFC 7592 §3: the metadata as registered, the registration access token and
    URI, and (Tessera's extensions) the review status and any change waiting for review."""
    body = {name: value for name, value in client.registration(secret).items() if name not in OPERATOR_ONLY}
    body["registration_access_token"] = access_token
    body["registration_client_uri"] = registry.settings.endpoint(
        paths.REGISTRATION_CLIENT.format(client_id=client.client_id)
    )
    body["tessera_status"] = client.status
    if client.pending_changes:
        body["tessera_pending_changes"] = client.pending_changes
    return body


# --- RFC 7592: management ----------------------------------------------------------------------


async def _authorized(request: web.Request) -> tuple[Registry, Client, str]:
    """The client the registration access token is for; 401 invalid_token otherwise (§2.1)."""
    registry = request.app[REGISTRY]
    if registry.settings.registration == "off":
        raise web.HTTPNotFound()
    # RFC 7592 requests carry their registration access token: the token endpoint's budget, not the
    # tight one that keeps strangers from registering without end
    await limit(registry, per_address("register-manage", request, registry.settings.rate_token_per_ip))
    token = bearer_token(request)
    client_id = request.match_info["client_id"]
    if token is None:
        raise NoToken("The registration access token is required.")
    if not await registry.registration_tokens.access_token_matches(client_id, token):
        raise InvalidToken("The registration access token is invalid.")
    client = await registry.clients.load(client_id)
    if client is None:
        raise InvalidToken("The registration access token is invalid.")
    return registry, client, token


async def read_client(request: web.Request) -> web.Response:
    """RFC 7592 §2.1; the token presented is the one that stays valid (it is not rotated on read)."""
    registry, client, token = await _authorized(request)
    return web.json_response(client_information(registry, client, token), headers=NO_STORE)


async def update_client(request: web.Request) -> web.Response:
    """RFC 7592 §2.2: a full replacement of the metadata, validated as a registration is."""
    registry, client, _ = await _authorized(request)
    document = await read_json(request)
    if document.get("client_id", client.client_id) != client.client_id:
        raise InvalidRequest("client_id does not match the client being updated (RFC 7592 §2.2).")
    metadata = client_metadata(document, default_scope=registry.settings.open_scopes)
    try:
        changes = await validated_update(registry, client, metadata)
    except RegistrationError as error:
        raise refused(error) from None
    updated = (await platform.request_change(registry, client, changes)).client
    access_token = await registry.registration_tokens.issue_access_token(client.client_id)
    return web.json_response(client_information(registry, updated, access_token), headers=NO_STORE)


def _fixed(client: Client, metadata: ClientMetadata) -> dict[str, tuple[Any, Any]]:
    """What is fixed at registration: each field's registered value and the one asked for."""
    response_types = (
        None if metadata.response_types is None else canonical_response_types(metadata.response_types)
    )
    return {
        "grant_types": (tuple(client.grant_types), tuple(metadata.grant_types)),
        "token_endpoint_auth_method": (
            client.token_endpoint_auth_method,
            metadata.token_endpoint_auth_method,
        ),
        "jwks": (client.jwks, metadata.jwks),
        "jwks_uri": (client.jwks_uri, metadata.jwks_uri),
        # left out: those that go with the grant types, which are fixed too
        "response_types": (tuple(client.response_types), response_types or tuple(client.response_types)),
        "subject_type": (client.subject_type, metadata.subject_type),
        "sector_identifier_uri": (client.sector_identifier_uri, metadata.sector_identifier_uri),
        "id_token_signed_response_alg": (
            client.id_token_signed_response_alg,
            metadata.id_token_signed_response_alg,
        ),
        "userinfo_signed_response_alg": (
            client.userinfo_signed_response_alg,
            metadata.userinfo_signed_response_alg,
        ),
        "backchannel_logout_session_required": (
            client.backchannel_logout_session_required,
            metadata.backchannel_logout_session_required,
        ),
        "default_max_age": (client.default_max_age, metadata.default_max_age),
        "require_auth_time": (client.require_auth_time, metadata.require_auth_time),
        # security requirements (RFC 9126 §6, RFC 9449 §5.2): an update never drops them silently
        "require_pushed_authorization_requests": (
            client.require_pushed_authorization_requests,
            metadata.require_pushed_authorization_requests,
        ),
        "dpop_bound_access_tokens": (client.dpop_bound_access_tokens, metadata.dpop_bound_access_tokens),
        "tessera_profile": (client.tessera_profile, metadata.tessera_profile),  # auth_server/profiles.py
    }


async def validated_update(registry: Registry, client: Client, metadata: ClientMetadata) -> dict[str, Any]:
    """The changes ``metadata`` makes to ``client`` (by :data:`UPDATABLE` name), checked by the rules
    of :func:`auth_server.registration.register`; :class:`RegistrationError` for a broken rule or a
    change of what is fixed at registration."""
    settings = registry.settings
    metadata = dataclasses.replace(
        metadata, require_pkce=client.require_pkce, registered_via=client.registered_via
    )
    metadata = profiles.applied(metadata)  # what the client's security profile implies, as at registration
    validate(settings, metadata)
    fixed = [name for name, (old, new) in _fixed(client, metadata).items() if old != new]
    if fixed:
        raise RegistrationError(
            f"{', '.join(fixed)} cannot be changed after registration; delete the client and register again"
        )
    # a pairwise client's sector must stay the one its subjects were computed for
    if (
        metadata.subject_type == "pairwise"
        and await sector_identifier(metadata, development=settings.development) != client.sector_identifier
    ):
        raise RegistrationError("the change would move the client to another sector (pairwise subjects)")
    return {
        name: getattr(metadata, name)
        for name in UPDATABLE
        if _comparable(getattr(metadata, name)) != _comparable(getattr(client, name))
    }


def _comparable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


async def delete_client(request: web.Request) -> web.Response:
    """RFC 7592 §2.3: the client is gone, its grants revoked; 204."""
    registry, client, _ = await _authorized(request)
    if client.status == "suspended":  # else it would register afresh and leave its suspension behind
        raise InvalidToken("A suspended client cannot delete itself; its operator can.")
    families = await platform.revoke_grants(registry, "client deleted", client_id=client.client_id)
    await registry.clients.delete(client.client_id)
    await registry.audit.record(
        "client.deleted_dynamically", client_id=client.client_id, refresh_token_families_revoked=families
    )
    return web.Response(status=204, headers=NO_STORE)
