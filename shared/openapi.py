"""OpenAPI 3.1 documents of both servers, served at ``/openapi.json`` and kept true by a test that
compares them with the apps' routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}
TOKEN = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in"],
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
        "refresh_token": {"type": "string"},
        "scope": {"type": "string"},
    },
}
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
FORM = {
    "application/x-www-form-urlencoded": {
        "schema": {"type": "object", "additionalProperties": {"type": "string"}}
    }
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json({"$ref": "#/components/schemas/Error"}, "an error") for code in codes}


def _ops(**operations: dict[str, Any]) -> dict[str, Any]:
    return operations


COMMON: dict[str, Any] = {
    "/healthz": _ops(get={"summary": "Liveness", "responses": {"200": _json({"type": "object"}, "alive")}}),
    "/readyz": _ops(
        get={
            "summary": "Readiness",
            "responses": {
                "200": _json({"type": "object"}, "ready"),
                "503": _json({"type": "object"}, "not ready"),
            },
        }
    ),
    "/metrics": _ops(
        get={"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition"}}}
    ),
    "/openapi.json": _ops(
        get={"summary": "This document", "responses": {"200": _json({"type": "object"}, "OpenAPI")}}
    ),
}


def _document(title: str, paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "0.1.0"},
        "paths": {**paths, **COMMON},
        "components": {
            "schemas": {"Error": ERROR, **schemas},
            "securitySchemes": {
                "clientBasic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


def auth_document() -> dict[str, Any]:
    client_auth: list[dict[str, list[str]]] = [{"clientBasic": []}, {}]
    form_post = {"requestBody": {"required": True, "content": FORM}, "security": client_auth}
    html = {"description": "an HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
    redirect = {"description": "a redirect"}
    paths = {
        "/.well-known/oauth-authorization-server": _ops(
            get={"summary": "RFC 8414 metadata", "responses": {"200": _json({"type": "object"}, "metadata")}}
        ),
        "/oauth2/jwks": _ops(
            get={"summary": "RFC 7517 key set", "responses": {"200": {"description": "JWK Set"}}}
        ),
        "/oauth2/authorize": _ops(
            get={
                "summary": "RFC 6749 §4.1/§4.2 authorization endpoint",
                "parameters": [
                    {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                    for n in (
                        "response_type",
                        "client_id",
                        "redirect_uri",
                        "scope",
                        "state",
                        "code_challenge",
                        "code_challenge_method",
                    )
                ],
                "responses": {"200": html, "302": redirect, "400": html, "429": html, "503": html},
            }
        ),
        "/oauth2/token": _ops(
            post={
                "summary": "RFC 6749 §3.2 token endpoint",
                **form_post,
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Token"}, "tokens"),
                    **_errors(400, 401, 413, 429, 503),
                },
            }
        ),
        "/oauth2/revoke": _ops(
            post={
                "summary": "RFC 7009 revocation",
                **form_post,
                "responses": {"200": {"description": "revoked"}, **_errors(400, 401, 413, 503)},
            }
        ),
        "/oauth2/introspect": _ops(
            post={
                "summary": "RFC 7662 introspection",
                **form_post,
                "responses": {
                    "200": _json({"type": "object", "required": ["active"]}, "token state"),
                    **_errors(400, 401, 413, 503),
                },
            }
        ),
        "/oauth2/revoked": _ops(
            get={
                "summary": "Revoked access tokens (jti, exp) for resource servers; Tessera-specific",
                "parameters": [
                    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["issuer", "generated_at", "next_update", "revoked"],
                            "properties": {
                                "issuer": {"type": "string"},
                                "generated_at": {"type": "integer"},
                                "next_update": {"type": "integer"},
                                "revoked": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["jti", "exp"],
                                        "properties": {
                                            "jti": {"type": "string"},
                                            "exp": {"type": "integer"},
                                        },
                                    },
                                },
                            },
                        },
                        "the revocation list",
                    ),
                    "304": {"description": "unchanged since the ETag sent in If-None-Match"},
                    **_errors(503),
                },
            }
        ),
        "/login": _ops(
            get={"summary": "Sign-in page", "responses": {"200": html, "303": redirect}},
            post={
                "summary": "Sign in",
                "requestBody": {"content": FORM},
                "responses": {"303": redirect, "400": html, "429": html, "503": html},
            },
        ),
        "/logout": _ops(
            post={
                "summary": "Sign out",
                "requestBody": {"content": FORM},
                "responses": {"303": redirect, "400": html},
            }
        ),
        "/consent": _ops(
            post={
                "summary": "Answer a consent page",
                "requestBody": {"content": FORM},
                "responses": {"303": redirect, "400": html},
            }
        ),
    }
    return _document("Tessera authorization server", paths, {"Token": TOKEN})


def resource_document() -> dict[str, Any]:
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    photo = {"$ref": "#/components/schemas/Photo"}
    photo_id = [{"name": "photo_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    paths = {
        "/api/photos": _ops(
            get={
                "summary": "The token subject's photos (photos:read)",
                "security": bearer,
                "parameters": [
                    {"name": n, "in": "query", "schema": {"type": "string"}} for n in ("limit", "after")
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "photos": {"type": "array", "items": photo},
                                "next": {"type": "string"},
                            },
                        },
                        "a page",
                    ),
                    **_errors(400, 401, 403),
                },
            },
            post={
                "summary": "Upload a photo (photos:write)",
                "security": bearer,
                "requestBody": {
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    "title": {"type": "string"},
                                },
                            }
                        }
                    }
                },
                "responses": {"201": _json(photo, "created"), **_errors(400, 401, 403, 413, 415)},
            },
        ),
        "/api/photos/{photo_id}": _ops(
            get={
                "summary": "One photo's metadata",
                "security": bearer,
                "parameters": photo_id,
                "responses": {"200": _json(photo, "the photo"), **_errors(401, 403, 404)},
            },
            delete={
                "summary": "Delete a photo (photos:write)",
                "security": bearer,
                "parameters": photo_id,
                "responses": {"204": {"description": "deleted"}, **_errors(401, 403, 404)},
            },
        ),
        "/api/photos/{photo_id}/content": _ops(
            get={
                "summary": "The image bytes",
                "security": bearer,
                "parameters": photo_id,
                "responses": {"200": {"description": "image"}, **_errors(401, 403, 404)},
            }
        ),
        "/api/me": _ops(
            get={
                "summary": "Whom the token speaks for and what it may do (photos:read)",
                "security": bearer,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["sub", "client_id", "scope"],
                            "properties": {
                                "sub": {"type": "string"},
                                "client_id": {"type": "string"},
                                "scope": {"type": "string"},
                            },
                        },
                        "the token's subject, client and scope",
                    ),
                    **_errors(401, 403),
                },
            }
        ),
        "/api/stats": _ops(
            get={
                "summary": "Aggregate statistics for partners (warehouse:stats, client_credentials)",
                "security": bearer,
                "responses": {"200": _json({"type": "object"}, "statistics"), **_errors(401, 403)},
            }
        ),
    }
    return _document("Photo Warehouse API", paths, {"Photo": PHOTO})


def endpoint(document: dict[str, Any]) -> Any:
    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document, headers={"Cache-Control": "public, max-age=300"})

    return openapi
