"""The authorization server's route table: every path, its handler and its OpenAPI description.

:func:`add_routes` is what ``create_app`` registers; :func:`document` is the OpenAPI document of
those routes and of the ones every app has (``/healthz``, ``/readyz``, ``/openapi.json``;
``/metrics`` is served on a listener of its own), built from the router as the app serves it
(see :mod:`shared.openapi`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from auth_server import paths, theme
from auth_server.endpoints import (
    admin_console,
    developers,
    language,
    password_reset,
    security,
    signup,
    two_step,
)
from auth_server.endpoints.account import account_page, revoke_app
from auth_server.endpoints.authorize import authorize
from auth_server.endpoints.consent import consent
from auth_server.endpoints.device import decide, device_page, enter_code
from auth_server.endpoints.device_authorization import device_authorization
from auth_server.endpoints.end_session import end_session
from auth_server.endpoints.introspection import introspect
from auth_server.endpoints.jwks import jwks
from auth_server.endpoints.login import login, login_page, logout, passkey_login, passkey_options
from auth_server.endpoints.metadata import metadata
from auth_server.endpoints.par import pushed_authorization_request
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
PUSHED_AUTHORIZATION_RESPONSE = {  # RFC 9126 §2.2
    "type": "object",
    "required": ["request_uri", "expires_in"],
    "properties": {"request_uri": {"type": "string"}, "expires_in": {"type": "integer"}},
}
SCHEMAS = {"Token": TOKEN, "PushedAuthorizationResponse": PUSHED_AUTHORIZATION_RESPONSE}

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
    "request_uri",  # RFC 9126 §4: from the PAR endpoint (with client_id, and nothing else)
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
        paths.LANGUAGE,
        language.switch,
        summary="The language switch: remember a page language (lang) and go back (next, a path here)",
        parameters=[
            {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
            for n in ("lang", "next")
        ],
        responses={"303": REDIRECT},
    )
    routes.get(
        paths.THEME_LOGO,
        theme.logo,
        summary="The operator's logo (TESSERA_THEME_DIR)",
        responses={"200": {"description": "an image"}, "404": {"description": "no logo in the theme"}},
    )
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
        paths.PUSHED_AUTHORIZATION_REQUEST,
        pushed_authorization_request,
        summary="RFC 9126 pushed authorization request endpoint: the authorization request's"
        " parameters (those of /oauth2/authorize) and the client's authentication, as a form",
        **_FORM_POST,
        responses={
            "201": json_body(ref("PushedAuthorizationResponse"), "the request_uri"),
            **errors(400, 401, 413, 429, 503),
        },
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
    _add_device_routes(routes)
    _add_account_routes(routes)
    _add_two_step_routes(routes)
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


_DEVICE_AUTHORIZATION = {
    "type": "object",
    "required": ["device_code", "user_code", "verification_uri", "expires_in"],
    "properties": {
        "device_code": {"type": "string"},
        "user_code": {"type": "string"},
        "verification_uri": {"type": "string"},
        "verification_uri_complete": {"type": "string"},
        "expires_in": {"type": "integer"},
        "interval": {"type": "integer"},
    },
}


def _add_two_step_routes(routes: openapi.Routes) -> None:
    """Two-step sign-in, passkeys and sessions (issue 18): the second step of signing in, signing in
    with a passkey, and the security page."""
    answer = {"requestBody": {"content": FORM}, "responses": {"200": HTML, "303": REDIRECT, "400": HTML}}
    options = {
        "requestBody": {"content": FORM},
        "responses": {"200": json_body(OBJECT, "challenge_id and WebAuthn options"), **errors(400, 429)},
    }
    routes.get(
        paths.TWO_STEP,
        two_step.two_step_page,
        summary="The second step of signing in (or the one a request demands)",
        parameters=[{"name": "return_to", "in": "query", "required": False, "schema": {"type": "string"}}],
        responses={"200": HTML, "303": REDIRECT},
    )
    routes.post(
        paths.TWO_STEP,
        two_step.two_step_answer,
        summary="Answer the second step: a code from the authenticator app, a recovery code or a passkey",
        requestBody={"content": FORM},
        responses={"200": HTML, "303": REDIRECT, "400": HTML, "429": HTML, "503": HTML},
    )
    routes.post(
        paths.TWO_STEP_PASSKEY_OPTIONS,
        two_step.passkey_options,
        summary="WebAuthn options for a passkey as the second step",
        **options,
    )
    routes.post(
        paths.PASSKEY_LOGIN_OPTIONS,
        passkey_options,
        summary="WebAuthn options to sign in with a passkey",
        **options,
    )
    routes.post(paths.PASSKEY_LOGIN, passkey_login, summary="Sign in with a passkey", **answer)
    routes.get(
        paths.SECURITY,
        security.security_page,
        summary="Security page: two-step sign-in, passkeys, password, signed-in sessions",
        responses={"200": HTML, "303": REDIRECT},
    )
    security_forms = (
        ("/totp", security.start_totp, "Set up an authenticator app (TOTP)"),
        ("/totp/confirm", security.confirm_totp, "Turn the authenticator app on with a code from it"),
        ("/totp/off", security.totp_off, "Turn the authenticator app off (password or code)"),
        ("/recovery-codes", security.new_recovery_codes, "Make new recovery codes"),
        ("/passkeys", security.add_passkey, "Add a passkey"),
        ("/passkeys/remove", security.remove_passkey, "Remove a passkey"),
        ("/password", security.change_password, "Change the password (ends the other sessions)"),
        ("/sessions/end", security.end_session, "End a signed-in session, or all the others"),
    )
    for path, handler, summary in security_forms:
        routes.post(f"{paths.SECURITY}{path}", handler, summary=summary, **answer)
    routes.get(
        security.TOTP_SETUP,
        security.totp_setup_page,
        summary="The authenticator app being set up: its QR code and key",
        responses={"200": HTML, "303": REDIRECT},
    )
    routes.post(
        f"{paths.SECURITY}/passkeys/options",
        security.passkey_options,
        summary="WebAuthn options to add a passkey",
        **options,
    )


def _add_account_routes(routes: openapi.Routes) -> None:
    """Sign-up, email verification and password reset (issue 18): pages for people (404 while
    TESSERA_SIGNUP is off, for sign-up; while no TESSERA_SMTP_URL is set, for the rest)."""
    token = [{"name": "token", "in": "query", "required": False, "schema": {"type": "string"}}]
    back = [{"name": "return_to", "in": "query", "required": False, "schema": {"type": "string"}}]
    form = {"content": FORM}
    page = {"200": HTML, "404": HTML}
    answer = {"303": REDIRECT, "400": HTML, "404": HTML, "413": HTML, "429": HTML, "503": HTML}
    routes.get(paths.SIGNUP, signup.signup_page, summary="Sign-up form", parameters=back, responses=page)
    routes.post(paths.SIGNUP, signup.signup, summary="Create an account", requestBody=form, responses=answer)
    routes.get(
        paths.SIGNUP_SENT, signup.sent_page, summary='"Check your email", after sign-up', responses=page
    )
    routes.get(
        paths.VERIFY_EMAIL,
        signup.verify_page,
        summary="Where an email verification link leads: a button confirms the address",
        parameters=token,
        responses={**page, "400": HTML},
    )
    routes.post(
        paths.VERIFY_EMAIL,
        signup.verify,
        summary="Confirm an email address (spends the link's token)",
        requestBody=form,
        responses={**page, "400": HTML, "409": HTML},
    )
    routes.get(
        paths.VERIFY_RESEND, signup.resend_page, summary="Ask for a new verification link", responses=page
    )
    routes.post(
        paths.VERIFY_RESEND,
        signup.resend,
        summary="Send a new verification link (the same answer whether or not an account matches)",
        requestBody=form,
        responses=answer,
    )
    routes.get(
        paths.PASSWORD_RESET, password_reset.request_page, summary="Forgot your password?", responses=page
    )
    routes.post(
        paths.PASSWORD_RESET,
        password_reset.request_reset,
        summary="Send a password-reset link (the same answer whether or not an account matches)",
        requestBody=form,
        responses=answer,
    )
    routes.get(
        paths.PASSWORD_RESET_SENT,
        password_reset.sent_page,
        summary='"Check your email", after asking for a reset link',
        responses=page,
    )
    routes.get(
        paths.PASSWORD_RESET_NEW,
        password_reset.new_password_page,
        summary="Where a password-reset link leads: the new-password form",
        parameters=token,
        responses={**page, "400": HTML},
    )
    routes.post(
        paths.PASSWORD_RESET_NEW,
        password_reset.set_new_password,
        summary="Set the new password (spends the link's token; signs the user out everywhere)",
        requestBody=form,
        responses={**page, "400": HTML, "413": HTML, "503": HTML},
    )


def _add_device_routes(routes: openapi.Routes) -> None:
    """The device authorization grant (RFC 8628): its endpoint, and the page where users enter codes."""
    routes.post(
        paths.DEVICE_AUTHORIZATION,
        device_authorization,
        summary="RFC 8628 §3.1 device authorization endpoint",
        **_FORM_POST,
        responses={
            "200": json_body(_DEVICE_AUTHORIZATION, "device authorization response"),
            **errors(400, 401, 413, 429, 503),
        },
    )
    routes.get(
        paths.DEVICE,
        device_page,
        summary="RFC 8628 §3.3 verification page: enter (or confirm) the code a device shows",
        parameters=[{"name": "user_code", "in": "query", "required": False, "schema": {"type": "string"}}],
        responses={"200": HTML, "303": REDIRECT},
    )
    routes.post(
        paths.DEVICE,
        enter_code,
        summary="Enter a device's user code: the consent page for its request",
        requestBody={"content": FORM},
        responses={"200": HTML, "303": REDIRECT, "400": HTML, "429": HTML},
    )
    routes.post(
        paths.DEVICE_CONSENT,
        decide,
        summary="Answer the consent page shown for a device",
        requestBody={"content": FORM},
        responses={"200": HTML, "400": HTML},
    )


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
