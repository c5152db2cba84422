"""OpenAPI 3.1 documents built from an app's own route table, served at ``/openapi.json``.

A server registers each of its routes through :class:`Routes`, which adds it to the app's router
and keeps its OpenAPI operation beside it; :func:`document` walks ``app.router.routes()`` and
fails for a route that has no description, so a document lists exactly the routes its app serves
and their paths are written once, where the routes are. The routes every app gets from
:func:`shared.observability.install` and :func:`install` are described here, with their handlers'
modules. This module knows no server: each builds its own document (``auth_server.routes``,
``resource_server.routes``) with the helpers below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from shared import observability

Operation = dict[str, Any]  # an OpenAPI operation object: summary, parameters, responses…
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}
OBJECT = {"type": "object"}
FORM = {
    "application/x-www-form-urlencoded": {
        "schema": {"type": "object", "additionalProperties": {"type": "string"}}
    }
}
HTML = {"description": "an HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
REDIRECT = {"description": "a redirect"}


def json_body(schema: Mapping[str, Any], description: str) -> dict[str, Any]:
    """A response (or request body) of JSON matching ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*codes: int) -> dict[str, Any]:
    """Responses with an OAuth error body (RFC 6749 §5.2, RFC 6750 §3.1), by status code."""
    return {str(code): json_body({"$ref": "#/components/schemas/Error"}, "an error") for code in codes}


def ref(schema: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{schema}"}


# the operations of the routes shared.observability.install adds to every app
SHARED: dict[Handler, Operation] = {
    observability.healthz: {"summary": "Liveness", "responses": {"200": json_body(OBJECT, "alive")}},
    observability.readyz: {
        "summary": "Readiness",
        "responses": {"200": json_body(OBJECT, "ready"), "503": json_body(OBJECT, "not ready")},
    },
}

_OPERATIONS: web.AppKey[dict[web.AbstractRoute, Operation]] = web.AppKey("openapi_operations", dict)


class Routes:
    """Adds routes to ``app``, each with its OpenAPI operation (``summary``, ``responses``…)."""

    def __init__(self, app: web.Application) -> None:
        if _OPERATIONS not in app:
            app[_OPERATIONS] = {}
        self._router = app.router
        self._operations = app[_OPERATIONS]

    def get(self, path: str, handler: Handler, **operation: Any) -> None:
        """A GET route (HEAD answered too, as aiohttp does; HEAD is not documented)."""
        self._operations[self._router.add_get(path, handler)] = operation

    def post(self, path: str, handler: Handler, **operation: Any) -> None:
        self._operations[self._router.add_post(path, handler)] = operation

    def put(self, path: str, handler: Handler, **operation: Any) -> None:
        self._operations[self._router.add_put(path, handler)] = operation

    def delete(self, path: str, handler: Handler, **operation: Any) -> None:
        self._operations[self._router.add_delete(path, handler)] = operation


def document(app: web.Application, *, title: str, schemas: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI document of every route of ``app``; LookupError for a route not described."""
    described = app.get(_OPERATIONS, {})
    paths: dict[str, dict[str, Operation]] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        operation = described.get(route) or SHARED.get(route.handler)
        if operation is None:
            raise LookupError(
                f"{route.method} {path} has no OpenAPI description: add it with shared.openapi.Routes"
            )
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "0.1.0"},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR, **schemas},
            "securitySchemes": {
                "clientBasic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


def install(app: web.Application, *, title: str, schemas: Mapping[str, Any]) -> None:
    """Serve the app's document at ``/openapi.json``, built from its routes on the first request
    (when every route is in place)."""
    built: dict[str, Any] | None = None

    async def openapi(request: web.Request) -> web.Response:
        nonlocal built
        if built is None:
            built = document(request.app, title=title, schemas=schemas)
        return web.json_response(built, headers={"Cache-Control": "public, max-age=300"})

    Routes(app).get(
        "/openapi.json", openapi, summary="This document", responses={"200": json_body(OBJECT, "OpenAPI")}
    )
