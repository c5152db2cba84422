"""The Photo Warehouse's route table: every path, its handler and its OpenAPI description.

:func:`add_routes` is what ``create_app`` registers, with the warehouse's RFC 9728 metadata
(:func:`protected_resource`, published by :func:`shared.protected_resource.publish`);
:func:`document` is the OpenAPI document of those routes and of the ones every app has
(``/healthz``, ``/readyz``, ``/openapi.json``; ``/metrics`` is served on a listener of its own),
built from the router as the app serves it (see :mod:`shared.openapi`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from resource_server import photos
from shared import observability, openapi
from shared.dpop import ALGORITHMS as DPOP_ALGORITHMS
from shared.openapi import OBJECT, errors, json_body, ref
from shared.protected_resource import ProtectedResource, publish

TITLE = "Photo Warehouse API"
PHOTO = {
    "type": "object",
    "required": ["id", "title", "content_type", "size", "created_at"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "title": {"type": "string"},
        "content_type": {"type": "string"},
        "size": {"type": "integer"},
        "created_at": {"type": "string"},
        "links": {"type": "object"},
    },
}
SCHEMAS = {"Photo": PHOTO}
SCOPES = ("photos:read", "photos:write", "warehouse:stats")  # every scope a route below requires

_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_PHOTO_ID = [{"name": "photo_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_PAGE = {
    "type": "object",
    "properties": {"photos": {"type": "array", "items": ref("Photo")}, "next": {"type": "string"}},
}
_UPLOAD = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary"}, "title": {"type": "string"}},
        }
    }
}
_ME = {
    "type": "object",
    "required": ["sub", "client_id", "scope"],
    "properties": {
        "sub": {"type": "string"},
        "client_id": {"type": "string"},
        "scope": {"type": "string"},
    },
}


def protected_resource(resource: str, issuer: str) -> ProtectedResource:
    """The warehouse's RFC 9728 metadata: at ``resource`` (its public URL), protected by ``issuer``."""
    return ProtectedResource(
        resource=resource,
        authorization_servers=[issuer],
        scopes_supported=SCOPES,
        resource_name=TITLE,
        dpop_signing_alg_values_supported=DPOP_ALGORITHMS,
    )


def add_routes(app: web.Application, resource: ProtectedResource | None = None) -> None:
    """Every route of the Photo Warehouse (and ``/openapi.json`` describing them); with
    ``resource``, its RFC 9728 metadata too, and challenges that name it."""
    openapi.install(app, title=TITLE, schemas=SCHEMAS)
    routes = openapi.Routes(app)
    if resource is not None:
        publish(app, resource, routes=routes)
    routes.get(
        "/api/photos",
        photos.list_photos,
        summary="The token subject's photos (photos:read)",
        security=_BEARER,
        parameters=[{"name": n, "in": "query", "schema": {"type": "string"}} for n in ("limit", "after")],
        responses={"200": json_body(_PAGE, "a page"), **errors(400, 401, 403)},
    )
    routes.post(
        "/api/photos",
        photos.upload_photo,
        summary="Upload a photo (photos:write)",
        security=_BEARER,
        requestBody={"content": _UPLOAD},
        responses={"201": json_body(ref("Photo"), "created"), **errors(400, 401, 403, 413, 415)},
    )
    routes.get(
        "/api/photos/{photo_id}",
        photos.get_photo,
        summary="One photo's metadata",
        security=_BEARER,
        parameters=_PHOTO_ID,
        responses={"200": json_body(ref("Photo"), "the photo"), **errors(401, 403, 404)},
    )
    routes.delete(
        "/api/photos/{photo_id}",
        photos.delete_photo,
        summary="Delete a photo (photos:write)",
        security=_BEARER,
        parameters=_PHOTO_ID,
        responses={"204": {"description": "deleted"}, **errors(401, 403, 404)},
    )
    routes.get(
        "/api/photos/{photo_id}/content",
        photos.photo_content,
        summary="The image bytes",
        security=_BEARER,
        parameters=_PHOTO_ID,
        responses={"200": {"description": "image"}, **errors(401, 403, 404)},
    )
    routes.get(
        "/api/me",
        photos.me,
        summary="Whom the token speaks for and what it may do (photos:read)",
        security=_BEARER,
        responses={"200": json_body(_ME, "the token's subject, client and scope"), **errors(401, 403)},
    )
    routes.get(
        "/api/stats",
        photos.stats,
        summary="Aggregate statistics for partners (warehouse:stats, client_credentials)",
        security=_BEARER,
        responses={"200": json_body(OBJECT, "statistics"), **errors(401, 403)},
    )


def document() -> dict[str, Any]:
    """The OpenAPI document ``/openapi.json`` serves, without settings or a running app: the
    routes :func:`shared.observability.install` and :func:`add_routes` add, as ``create_app`` does
    with the default settings (a resource URL with a path moves the metadata route under it: the
    document a running warehouse serves is built from its own routes, so it shows where)."""
    app = web.Application()
    app.router.add_routes(observability.ROUTES)
    add_routes(app, protected_resource("http://localhost:8001", "http://localhost:8000"))
    return openapi.document(app, title=TITLE, schemas=SCHEMAS)
