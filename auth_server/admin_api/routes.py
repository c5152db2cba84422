"""The admin API's endpoints, each with its OpenAPI description (served at ``/openapi.json``).

Everything is JSON; errors have the shape of :mod:`shared.errors` (``error``, ``error_description``).
Reads need ``admin:read`` (or ``admin:write``), changes ``admin:write``. Client decisions go through
:mod:`auth_server.platform` and client creation through :func:`auth_server.registration.register`,
as everywhere else; every change is in the audit trail with the token's subject as the actor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from auth_server import keys, platform, resources, usernames
from auth_server.admin_api.auth import READ, WRITE, actor, require
from auth_server.appkeys import REGISTRY
from auth_server.clients import Client
from auth_server.crypto import hash_password
from auth_server.endpoints.registration import read_json, refused
from auth_server.registration import RegistrationError, metadata_from_document, register
from auth_server.registry import Registry
from auth_server.signing import ALGORITHMS
from auth_server.stores.users import UsernameTaken
from shared import openapi
from shared.errors import NO_STORE, InvalidRequest, OAuthError
from shared.openapi import OBJECT, errors, json_body

TITLE = "Tessera admin API"


class NotFound(OAuthError):
    error = "not_found"
    status = 404


class Conflict(OAuthError):
    error = "conflict"
    status = 409


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers=NO_STORE, dumps=_dumps)


def _dumps(data: Any) -> str:
    import json

    return json.dumps(data, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def _client(client: Client) -> dict[str, Any]:
    shown = client.registration()
    shown.update(
        status=client.status,
        registered_via=client.registered_via,
        owner_id=client.owner_id,
        review_note=client.review_note,
        pending_changes=client.pending_changes,
    )
    return shown


async def _found_client(registry: Registry, client_id: str) -> Client:
    client = await registry.clients.load(client_id)
    if client is None:
        raise NotFound(f"No client {client_id!r}.")
    return client


def _user_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["user_id"])
    except ValueError:
        raise NotFound("No such user.") from None


def _text(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{name} must be a non-empty string.")
    return value


# --- clients ---------------------------------------------------------------------------------


@require(READ)
async def list_clients(request: web.Request) -> web.Response:
    status = request.query.get("status")
    clients = await request.app[REGISTRY].clients.list()
    return _json([_client(c) for c in clients if status is None or c.status == status])


@require(READ)
async def get_client(request: web.Request) -> web.Response:
    return _json(_client(await _found_client(request.app[REGISTRY], request.match_info["client_id"])))


@require(WRITE)
async def create_client(request: web.Request) -> web.Response:
    """An operator's registration: any metadata ``tessera client create --metadata-file`` takes."""
    registry = request.app[REGISTRY]
    try:
        metadata = metadata_from_document(await read_json(request))
        client, secret, notices = await register(registry, metadata)
    except RegistrationError as error:
        raise refused(error) from None
    return _json({**_client(client), **client.registration(secret), "notices": list(notices)}, 201)


@require(WRITE)
async def delete_client(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    client = await _found_client(registry, request.match_info["client_id"])
    families = await platform.revoke_grants(registry, "client deleted", client_id=client.client_id)
    await registry.clients.delete(client.client_id)
    return _json({"deleted": client.client_id, "refresh_token_families_revoked": families})


def _decision(name: str) -> Any:
    @require(WRITE)
    async def decide(request: web.Request) -> web.Response:
        registry = request.app[REGISTRY]
        client_id = request.match_info["client_id"]
        await _found_client(registry, client_id)
        body = await read_json(request) if request.can_read_body else {}
        reviewer = actor(request)
        try:
            if name in ("reject", "suspend"):
                reason = _text(body, "reason")
                assert reason is not None
                client = await getattr(platform, name)(registry, client_id, reason, reviewer=reviewer)
            else:
                client = await getattr(platform, name)(registry, client_id, reviewer=reviewer)
        except platform.ReviewError as error:
            raise Conflict(str(error)) from None
        return _json(_client(client))

    decide.__name__ = f"{name}_client"
    return decide


# --- users -----------------------------------------------------------------------------------


async def _user(registry: Registry, user_id: uuid.UUID) -> dict[str, Any]:
    summary = await registry.users.summary(user_id)
    if summary is None:
        raise NotFound("No such user.")
    return {**dataclasses.asdict(summary), "is_admin": await registry.users.is_admin(user_id)}


@require(READ)
async def list_users(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    return _json([await _user(registry, u.user_id) for u in await registry.users.list()])


@require(READ)
async def get_user(request: web.Request) -> web.Response:
    return _json(await _user(request.app[REGISTRY], _user_id(request)))


@require(WRITE)
async def create_user(request: web.Request) -> web.Response:
    """``{"username", "password", "admin"?}``; the password is hashed (argon2id) and never shown."""
    registry = request.app[REGISTRY]
    body = await read_json(request)
    username, password = _text(body, "username"), _text(body, "password")
    assert username is not None and password is not None
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise InvalidRequest("admin must be true or false.")
    problem = usernames.problem(username)
    if problem is not None:
        raise InvalidRequest(problem)
    try:
        user = await registry.users.create(username, await asyncio.to_thread(hash_password, password))
    except UsernameTaken as error:
        raise Conflict(str(error)) from None
    if admin:
        await registry.users.set_admin(user.user_id, True)
    await registry.audit.record("user.created", subject=user.subject, admin=admin, by=actor(request))
    return _json(await _user(registry, user.user_id), 201)


@require(WRITE)
async def set_admin(request: web.Request) -> web.Response:
    """``{"admin": true|false}``: grant or take away the admin role."""
    registry = request.app[REGISTRY]
    user_id = _user_id(request)
    admin = (await read_json(request)).get("admin")
    if not isinstance(admin, bool):
        raise InvalidRequest("admin must be true or false.")
    if not await registry.users.set_admin(user_id, admin):
        raise NotFound("No such user.")
    await registry.audit.record("user.admin_changed", subject=str(user_id), admin=admin, by=actor(request))
    return _json(await _user(registry, user_id))


@require(WRITE)
async def delete_user(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    user_id = _user_id(request)
    await _user(registry, user_id)
    families = await platform.revoke_grants(registry, "user deleted", subject=str(user_id))
    await registry.users.delete(user_id)
    await registry.audit.record(
        "user.deleted", subject=str(user_id), refresh_token_families_revoked=families, by=actor(request)
    )
    return _json({"deleted": str(user_id), "refresh_token_families_revoked": families})


@require(WRITE)
async def revoke_user_grants(request: web.Request) -> web.Response:
    """End a user's sessions with every app: each refresh-token family revoked, live access tokens
    deny-listed (``?client_id=`` for one app only)."""
    registry = request.app[REGISTRY]
    user_id = _user_id(request)
    await _user(registry, user_id)
    client_id = request.query.get("client_id")
    families = await platform.revoke_grants(
        registry, "revoked by an administrator", subject=str(user_id), client_id=client_id
    )
    await registry.audit.record(
        "user.grants_revoked",
        subject=str(user_id),
        client_id=client_id,
        refresh_token_families_revoked=families,
        by=actor(request),
    )
    return _json({"refresh_token_families_revoked": families})


# --- consents --------------------------------------------------------------------------------


@require(READ)
async def list_consents(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    raw_user = request.query.get("user_id")
    try:
        user_id = None if raw_user is None else uuid.UUID(raw_user)
    except ValueError:
        raise InvalidRequest("user_id must be a user's id.") from None
    consents = await registry.consents.list(user_id=user_id, client_id=request.query.get("client_id"))
    return _json([{**dataclasses.asdict(c), "scope": " ".join(c.scope)} for c in consents])


@require(WRITE)
async def revoke_consent(request: web.Request) -> web.Response:
    """Forget the consent and end that app's grants from the user (as ``tessera consent revoke``)."""
    registry = request.app[REGISTRY]
    user_id, client_id = _user_id(request), request.match_info["client_id"]
    forgotten = await registry.consents.revoke(user_id, client_id)
    families = await platform.revoke_grants(
        registry, "consent revoked", subject=str(user_id), client_id=client_id
    )
    if not forgotten and not families:
        raise NotFound("No such consent.")
    await registry.audit.record(
        "consent.revoked",
        client_id=client_id,
        subject=str(user_id),
        refresh_token_families_revoked=families,
        by=actor(request),
    )
    return _json({"consent_revoked": forgotten, "refresh_token_families_revoked": families})


# --- signing keys and the audit log ----------------------------------------------------------


@require(READ)
async def list_keys(request: web.Request) -> web.Response:
    statuses = request.app[REGISTRY].keyring.statuses(datetime.now(UTC))
    return _json([dataclasses.asdict(s) for s in statuses])


@require(WRITE)
async def rotate_key(request: web.Request) -> web.Response:
    """``{"alg"?, "prepublication"?}``: a new key, signing after its pre-publication period."""
    registry = request.app[REGISTRY]
    body = await read_json(request) if request.can_read_body else {}
    alg, prepublication = body.get("alg"), body.get("prepublication")
    if alg is not None and alg not in ALGORITHMS:
        raise InvalidRequest(f"alg must be one of {', '.join(ALGORITHMS)}.")
    if prepublication is not None and (
        isinstance(prepublication, bool) or not isinstance(prepublication, int) or prepublication < 0
    ):
        raise InvalidRequest("prepublication must be a number of seconds.")
    record = await keys.rotate(registry, prepublication=prepublication, alg=alg)
    await keys.reload(registry)
    return _json({"kid": record.kid, "alg": record.alg, "activates_at": record.activates_at}, 201)


# --- resources (RFC 8707) --------------------------------------------------------------------


@require(READ)
async def list_resources(request: web.Request) -> web.Response:
    return _json([resources.shown(r) for r in await request.app[REGISTRY].resources.list()])


@require(READ)
async def get_resource(request: web.Request) -> web.Response:
    identifier = request.query.get("identifier", "")
    resource = await request.app[REGISTRY].resources.get(identifier)
    if resource is None:
        raise NotFound(f"No resource {identifier!r}.")
    return _json(resources.shown(resource))


@require(WRITE)
async def create_resource(request: web.Request) -> web.Response:
    """``{"identifier", "name", "scopes": [...], "service_client_id"?}``, as ``tessera resource create``."""
    registry = request.app[REGISTRY]
    body = await read_json(request)
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise InvalidRequest("scopes must be a list of scope names.")
    try:
        resource = await resources.register(
            registry,
            identifier=str(_text(body, "identifier")),
            name=str(_text(body, "name")),
            scopes=scopes,
            service_client_id=_text(body, "service_client_id", required=False),
            by=actor(request),
        )
    except resources.ResourceRefused as refusal:
        raise InvalidRequest(f"{refusal}.") from None
    return _json(resources.shown(resource), 201)


@require(WRITE)
async def delete_resource(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    identifier = request.query.get("identifier", "")
    if not await registry.resources.delete(identifier):
        raise NotFound(f"No resource {identifier!r}.")
    await registry.audit.record("resource.deleted", resource=identifier, by=actor(request))
    return _json({"deleted": identifier})


@require(READ)
async def list_audit(request: web.Request) -> web.Response:
    """The most recent events first; ``?event=``, ``?client_id=``, ``?subject=``, ``?limit=`` (≤ 1000)."""
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise InvalidRequest("limit must be a number from 1 to 1000.")
    client_id, subject = request.query.get("client_id"), request.query.get("subject")
    # filtered here from the most recent events: enough for an operator's look, not an export
    events = await request.app[REGISTRY].audit.recent(request.query.get("event"), limit=10 * int(raw))
    chosen = [
        dataclasses.asdict(e)
        for e in events
        if (client_id is None or e.client_id == client_id) and (subject is None or e.subject == subject)
    ]
    return _json(chosen[: int(raw)])


# --- the route table -------------------------------------------------------------------------

_ADMIN: list[dict[str, list[str]]] = [{"bearer": []}]
_JSON_BODY = {"required": True, "content": {"application/json": {"schema": OBJECT}}}
_OPTIONAL_BODY = {"required": False, "content": {"application/json": {"schema": OBJECT}}}
_READ_ERRORS = errors(400, 401, 403, 404, 503)
_WRITE_ERRORS = errors(400, 401, 403, 404, 409, 413, 503)


def _path(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


def _query(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in names]


def add_routes(app: web.Application) -> None:
    """Every route of the admin API (and ``/openapi.json`` describing them)."""
    openapi.install(app, title=TITLE, schemas={})
    routes = openapi.Routes(app)
    many, one = json_body({"type": "array"}, "a list"), json_body(OBJECT, "the resource")
    read: dict[str, Any] = {"security": _ADMIN}
    routes.get(
        "/clients",
        list_clients,
        summary="Every client",
        parameters=_query("status"),
        **read,
        responses={"200": many, **_READ_ERRORS},
    )
    routes.post(
        "/clients",
        create_client,
        summary="Register a client (RFC 7591 metadata, operator fields too)",
        requestBody=_JSON_BODY,
        **read,
        responses={"201": one, **_WRITE_ERRORS},
    )
    routes.get(
        "/clients/{client_id}",
        get_client,
        summary="A client",
        parameters=_path("client_id"),
        **read,
        responses={"200": one, **_READ_ERRORS},
    )
    routes.delete(
        "/clients/{client_id}",
        delete_client,
        summary="Delete a client, revoking its grants",
        parameters=_path("client_id"),
        **read,
        responses={"200": one, **_WRITE_ERRORS},
    )
    for name, summary in (
        ("approve", "Approve a pending client, or the change it waits with"),
        ("reject", 'Reject a pending client or change: {"reason"}'),
        ("suspend", 'Suspend an approved client, revoking its tokens: {"reason"}'),
        ("reinstate", "Reinstate a suspended client"),
    ):
        routes.post(
            f"/clients/{{client_id}}/{name}",
            _decision(name),
            summary=summary,
            parameters=_path("client_id"),
            requestBody=_OPTIONAL_BODY,
            **read,
            responses={"200": one, **_WRITE_ERRORS},
        )
    routes.get(
        "/users",
        list_users,
        summary="Every user (never a password hash)",
        **read,
        responses={"200": many, **_READ_ERRORS},
    )
    routes.post(
        "/users",
        create_user,
        summary='Create a user: {"username", "password", "admin"?}',
        requestBody=_JSON_BODY,
        **read,
        responses={"201": one, **_WRITE_ERRORS},
    )
    routes.get(
        "/users/{user_id}",
        get_user,
        summary="A user",
        parameters=_path("user_id"),
        **read,
        responses={"200": one, **_READ_ERRORS},
    )
    routes.delete(
        "/users/{user_id}",
        delete_user,
        summary="Delete a user, revoking their grants",
        parameters=_path("user_id"),
        **read,
        responses={"200": one, **_WRITE_ERRORS},
    )
    routes.put(
        "/users/{user_id}/admin",
        set_admin,
        summary='Grant or take the admin role: {"admin": bool}',
        parameters=_path("user_id"),
        requestBody=_JSON_BODY,
        **read,
        responses={"200": one, **_WRITE_ERRORS},
    )
    routes.delete(
        "/users/{user_id}/grants",
        revoke_user_grants,
        summary="End a user's sessions with apps: refresh-token families revoked",
        parameters=_path("user_id") + _query("client_id"),
        **read,
        responses={"200": one, **_WRITE_ERRORS},
    )
    routes.get(
        "/consents",
        list_consents,
        summary="Remembered consents",
        parameters=_query("user_id", "client_id"),
        **read,
        responses={"200": many, **_READ_ERRORS},
    )
    routes.delete(
        "/consents/{user_id}/{client_id}",
        revoke_consent,
        summary="Revoke a consent and that app's grants from the user",
        parameters=_path("user_id", "client_id"),
        **read,
        responses={"200": one, **_WRITE_ERRORS},
    )
    routes.get(
        "/keys",
        list_keys,
        summary="Signing keys and their states",
        **read,
        responses={"200": many, **_READ_ERRORS},
    )
    routes.post(
        "/keys/rotate",
        rotate_key,
        summary='Add a signing key: {"alg"?, "prepublication"?}',
        requestBody=_OPTIONAL_BODY,
        **read,
        responses={"201": one, **_WRITE_ERRORS},
    )
    routes.get(
        "/resources",
        list_resources,
        summary="The APIs tokens are issued for (RFC 8707)",
        **read,
        responses={"200": many, **_READ_ERRORS},
    )
    routes.post(
        "/resources",
        create_resource,
        summary='Register an API: {"identifier", "name", "scopes", "service_client_id"?}',
        requestBody=_JSON_BODY,
        **read,
        responses={"201": one, **_WRITE_ERRORS},
    )
    # identifiers are URIs: named in the query, not the path
    routes.get(
        "/resource",
        get_resource,
        summary="One API",
        parameters=_query("identifier"),
        **read,
        responses={"200": one, **_READ_ERRORS},
    )
    routes.delete(
        "/resource",
        delete_resource,
        summary="Forget an API (tokens issued for it stay valid until they expire)",
        parameters=_query("identifier"),
        **read,
        responses={"200": one, **_WRITE_ERRORS},
    )
    routes.get(
        "/audit",
        list_audit,
        summary="The audit trail, newest first",
        parameters=_query("event", "client_id", "subject", "limit"),
        **read,
        responses={"200": many, **_READ_ERRORS},
    )


def document() -> dict[str, Any]:
    """The admin API's OpenAPI document, without settings or a running app."""
    app = web.Application()
    add_routes(app)
    return openapi.document(app, title=TITLE, schemas={})
