"""The authorization server's route table: every path, its handler and its OpenAPI description.

:func:`add_routes` is what ``create_app`` registers; :func:`document` is the OpenAPI document of
those routes and of the ones every app has (``/healthz``, ``/readyz``, ``/metrics``,
``/openapi.json``), built from the router as the app serves it (see :mod:`shared.openapi`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from auth_server import paths
from auth_server.endpoints import admin_console, developers
from auth_server.endpoints.account import account_page, revoke_app
from auth_server.endpoints.authorize import authorize
from auth_server.endpoints.consent import consent
from auth_server.endpoints.end_session import end_session
from auth_server.endpoints.introspection import introspect
from auth_server.endpoints.jwks import jwks
from auth_server.endpoints.login import login, login_page, logout
from auth_server.endpoints.metadata import metadata
from auth_server.endpoints.registration import delete_client, read_client, register_client, update_client
from auth_server.endpoints.revocation import revoke
from auth_server.endpoints.revocation_list import endpoint as revocation_list
from auth_server.endpoints.token import token
from auth_server.endpoints.userinfo import userinfo
from auth_server.endpoints.welcome import welcome
from shared import observability, openapi
from shared.openapi import FORM, HTML, OBJECT, REDIRECT, errors, json_body, ref

TITLE = "Tessera authorization server"
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
SCHEMAS = {"Token": TOKEN}

CLIENT_ID_IN_PATH = {"name": "client_id", "in": "path", "required": True, "schema": {"type": "string"}}
_CLIENT_AUTH: list[dict[str, list[str]]] = [{"clientBasic": []}, {}]
_FORM_POST: dict[str, Any] = {"requestBody": {"required": True, "content": FORM}, "security": _CLIENT_AUTH}
_AUTHORIZE_PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "nonce",
    "prompt",
    "max_age",
    "login_hint",
    "id_token_hint",
    "acr_values",
    "claims",
    "ui_locales",
    "display",
)
_END_SESSION_PARAMETERS = (
    "id_token_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "ui_locales",
    "logout_hint",
)
_REVOCATION_LIST = {
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
                "properties": {"jti": {"type": "string"}, "exp": {"type": "integer"}},
            },
        },
    },
}


def add_routes(app: web.Application) -> None:
    """Every route of the authorization server (and ``/openapi.json`` describing them)."""
    openapi.install(app, title=TITLE, schemas=SCHEMAS)
    routes = openapi.Routes(app)
    routes.get(paths.WELCOME, welcome, summary="Welcome page: what this server is", responses={"200": HTML})
    routes.get(
        paths.METADATA,
        metadata,
        summary="RFC 8414 metadata",
        responses={"200": json_body(OBJECT, "metadata")},
    )
    routes.get(
        paths.OPENID_CONFIGURATION,
        metadata,
        summary="OpenID Connect Discovery 1.0 provider metadata (the RFC 8414 document)",
        responses={"200": json_body(OBJECT, "metadata")},
    )
    routes.get(paths.JWKS, jwks, summary="RFC 7517 key set", responses={"200": {"description": "JWK Set"}})
    for register in (routes.get, routes.post):
        register(
            paths.USERINFO,
            userinfo,
            summary="OpenID Connect Core §5.3 userinfo endpoint",
            security=[{"bearer": []}],
            responses={
                "200": json_body(OBJECT, "the user's claims (or application/jwt)"),
                **errors(400, 401, 403, 503),
            },
        )
    routes.get(
        paths.AUTHORIZE,
        authorize,
        summary="RFC 6749 §4.1/§4.2 authorization endpoint (OpenID Connect Core §3.1.2)",
        parameters=[
            {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
            for n in _AUTHORIZE_PARAMETERS
        ],
        responses={"200": HTML, "302": REDIRECT, "400": HTML, "429": HTML, "503": HTML},
    )
    routes.post(
        paths.AUTHORIZE,
        authorize,
        summary="The authorization endpoint, its parameters as a form (OpenID Connect Core §3.1.2.1)",
        requestBody={"required": True, "content": FORM},
        responses={"200": HTML, "302": REDIRECT, "400": HTML, "413": HTML, "429": HTML, "503": HTML},
    )
    routes.post(
        paths.TOKEN,
        token,
        summary="RFC 6749 §3.2 token endpoint",
        **_FORM_POST,
        responses={"200": json_body(ref("Token"), "tokens"), **errors(400, 401, 413, 429, 503)},
    )
    routes.post(
        paths.REVOKE,
        revoke,
        summary="RFC 7009 revocation",
        **_FORM_POST,
        responses={"200": {"description": "revoked"}, **errors(400, 401, 413, 503)},
    )
    routes.post(
        paths.INTROSPECT,
        introspect,
        summary="RFC 7662 introspection",
        **_FORM_POST,
        responses={
            "200": json_body({"type": "object", "required": ["active"]}, "token state"),
            **errors(400, 401, 413, 503),
        },
    )
    routes.get(
        paths.REVOCATION_LIST,
        revocation_list(),
        summary="Revoked access tokens (jti, exp) for resource servers; Tessera-specific",
        parameters=[
            {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}}
        ],
        responses={
            "200": json_body(_REVOCATION_LIST, "the revocation list"),
            "304": {"description": "unchanged since the ETag sent in If-None-Match"},
            **errors(503),
        },
    )
    routes.get(paths.LOGIN, login_page, summary="Sign-in page", responses={"200": HTML, "303": REDIRECT})
    routes.post(
        paths.LOGIN,
        login,
        summary="Sign in",
        requestBody={"content": FORM},
        responses={"303": REDIRECT, "400": HTML, "429": HTML, "503": HTML},
    )
    routes.post(
        paths.LOGOUT,
        logout,
        summary="Sign out",
        requestBody={"content": FORM},
        responses={"303": REDIRECT, "400": HTML},
    )
    routes.post(
        paths.CONSENT,
        consent,
        summary="Answer a consent page",
        requestBody={"content": FORM},
        responses={"303": REDIRECT, "400": HTML},
    )
    routes.get(
        paths.ACCOUNT,
        account_page,
        summary="Account page: the apps that can act for the signed-in user",
        responses={"200": HTML, "303": REDIRECT},
    )
    routes.post(
        paths.ACCOUNT,
        revoke_app,
        summary="Take back an app's access (revoke=client_id): consent, refresh tokens, back-channel logout",
        requestBody={"content": FORM},
        responses={"303": REDIRECT, "400": HTML, "413": HTML},
    )
    routes.get(
        paths.END_SESSION,
        end_session,
        summary="OpenID Connect RP-Initiated Logout 1.0 end-session endpoint",
        parameters=[
            {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
            for n in _END_SESSION_PARAMETERS
        ],
        responses={"200": HTML, "302": REDIRECT, "400": HTML},
    )
    routes.post(
        paths.END_SESSION,
        end_session,
        summary="OpenID Connect RP-Initiated Logout 1.0 end-session endpoint (form), and its confirmation",
        requestBody={"content": FORM},
        responses={"200": HTML, "303": REDIRECT, "400": HTML},
    )
    add_registration_routes(routes)


def add_registration_routes(routes: openapi.Routes) -> None:
    """RFC 7591 registration and RFC 7592 management (404 while TESSERA_REGISTRATION is off)."""
    metadata_body = {"required": True, "content": {"application/json": {"schema": OBJECT}}}
    client_info = json_body(OBJECT, "RFC 7591 §3.2.1 client information")
    managed = {
        "parameters": [CLIENT_ID_IN_PATH],
        "security": [{"bearer": []}],
    }
    routes.post(
        paths.REGISTRATION,
        register_client,
        summary="RFC 7591 dynamic client registration",
        requestBody=metadata_body,
        security=[{"bearer": []}, {}],
        responses={"201": client_info, **errors(400, 401, 404, 413, 429, 503)},
    )
    routes.get(
        paths.REGISTRATION_CLIENT,
        read_client,
        summary="RFC 7592 §2.1 read a client's registration",
        **managed,
        responses={"200": client_info, **errors(401, 404, 429, 503)},
    )
    routes.put(
        paths.REGISTRATION_CLIENT,
        update_client,
        summary="RFC 7592 §2.2 replace a client's metadata (rotates the registration access token)",
        requestBody=metadata_body,
        **managed,
        responses={"200": client_info, **errors(400, 401, 404, 413, 429, 503)},
    )
    routes.delete(
        paths.REGISTRATION_CLIENT,
        delete_client,
        summary="RFC 7592 §2.3 delete a client",
        **managed,
        responses={"204": {"description": "deleted"}, **errors(401, 404, 429, 503)},
    )
    _add_console_routes(routes)


def _add_console_routes(routes: openapi.Routes) -> None:
    """The developer console and the admin console (issue 15): HTML pages for signed-in people."""
    page = {"200": HTML, "303": REDIRECT, "404": HTML}
    answer = {"requestBody": {"content": FORM}, "responses": {**page, "400": HTML, "409": HTML}}
    one_app = {"parameters": [CLIENT_ID_IN_PATH]}
    app_path = f"{paths.DEVELOPERS}/apps/{{client_id}}"
    routes.get(
        paths.DEVELOPERS, developers.developers, summary="Developer console: your apps", responses=page
    )
    routes.get(f"{paths.DEVELOPERS}/apply", developers.apply_page, summary="Apply for an app", responses=page)
    routes.post(f"{paths.DEVELOPERS}/apply", developers.apply, summary="Send an application", **answer)
    routes.get(app_path, developers.app_page, summary="One of your apps", responses=page, **one_app)
    routes.post(
        f"{app_path}/secret", developers.secret, summary="Get or rotate an app's secret", **answer, **one_app
    )
    routes.get(f"{app_path}/edit", developers.edit_page, summary="Change an app", responses=page, **one_app)
    routes.post(f"{app_path}/edit", developers.edit, summary="Save an app's changes", **answer, **one_app)
    routes.get(paths.ADMIN, admin_console.applications, summary="Admin console: applications", responses=page)
    routes.get(
        f"{paths.ADMIN}/apps/{{client_id}}",
        admin_console.application,
        summary="An application",
        responses=page,
        **one_app,
    )
    routes.post(
        f"{paths.ADMIN}/apps/{{client_id}}",
        admin_console.decide,
        summary="Approve, reject, suspend or reinstate an application",
        **answer,
        **one_app,
    )


def document() -> dict[str, Any]:
    """The OpenAPI document ``/openapi.json`` serves, without settings or a running app: the
    routes :func:`shared.observability.install` and :func:`add_routes` add, as ``create_app`` does."""
    app = web.Application()
    app.router.add_routes(observability.ROUTES)
    add_routes(app)
    return openapi.document(app, title=TITLE, schemas=SCHEMAS)
