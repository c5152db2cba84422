"""Authorization server metadata (RFC 8414 §2-3) and OpenID Provider metadata (OpenID Connect
Discovery 1.0 §3-4): one document, served at both well-known paths, built from the issuer and what
is implemented — the grants, response types and response modes come from the grant declarations
(``grants/``), the claims from ``oidc/claims.py``. Only what works is listed."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from auth_server import i18n, paths
from auth_server.appkeys import REGISTRY
from auth_server.authorization.checks import DISPLAYS, PROMPTS
from auth_server.client_auth import ASSERTION_ALGS
from auth_server.clients import AUTH_METHODS, SUBJECT_TYPES
from auth_server.grants import GRANTS, Grants
from auth_server.grants.device_code import DEVICE_CODE
from auth_server.oidc.acr import ACR_VALUES
from auth_server.oidc.claims import CLAIMS_SUPPORTED
from auth_server.scopes import ADMIN_SCOPES
from auth_server.settings import Settings
from auth_server.signing import ID_TOKEN_ALGORITHMS
from shared import dpop


def document(settings: Settings, grants: Grants = GRANTS) -> dict[str, Any]:
    doc = _document(settings, grants)
    if settings.registration != "off":  # RFC 8414 §2, RFC 7591 §3
        doc["registration_endpoint"] = settings.endpoint(paths.REGISTRATION)
    if DEVICE_CODE in grants:  # RFC 8628 §4
        doc["device_authorization_endpoint"] = settings.endpoint(paths.DEVICE_AUTHORIZATION)
    if settings.client_id_metadata_documents:  # draft-ietf-oauth-client-id-metadata-document §5
        doc["client_id_metadata_document_supported"] = True
    return doc


def _document(settings: Settings, grants: Grants) -> dict[str, Any]:
    return {
        "issuer": settings.issuer,
        "authorization_endpoint": settings.endpoint(paths.AUTHORIZE),
        "token_endpoint": settings.endpoint(paths.TOKEN),
        "jwks_uri": settings.endpoint(paths.JWKS),
        # the admin API's scopes are not advertised: they are for operators' clients alone
        "scopes_supported": sorted(s for s in settings.scopes if s not in ADMIN_SCOPES),
        "revocation_endpoint": settings.endpoint(paths.REVOKE),
        "introspection_endpoint": settings.endpoint(paths.INTROSPECT),
        "tessera_revocation_list_uri": settings.endpoint(paths.REVOCATION_LIST),  # not an RFC name
        "response_types_supported": list(grants.response_types),
        "response_modes_supported": list(grants.response_modes),
        "grant_types_supported": list(grants),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        # a public client cannot introspect: only authenticated, permitted clients may
        "introspection_endpoint_auth_methods_supported": [m for m in AUTH_METHODS if m != "none"],
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "code_challenge_methods_supported": ["S256"],
        # RFC 9126 §5: its request_uri is good at /authorize whatever request_uri_parameter_supported says
        "pushed_authorization_request_endpoint": settings.endpoint(paths.PUSHED_AUTHORIZATION_REQUEST),
        "require_pushed_authorization_requests": settings.require_par,
        "authorization_response_iss_parameter_supported": True,
        "dpop_signing_alg_values_supported": list(dpop.ALGORITHMS),  # RFC 9449 §5.1
        # OpenID Connect Discovery 1.0 §3
        "userinfo_endpoint": settings.endpoint(paths.USERINFO),
        "end_session_endpoint": settings.endpoint(paths.END_SESSION),
        "subject_types_supported": list(SUBJECT_TYPES),
        "id_token_signing_alg_values_supported": list(ID_TOKEN_ALGORITHMS),
        "userinfo_signing_alg_values_supported": list(ID_TOKEN_ALGORITHMS),
        "claims_supported": list(CLAIMS_SUPPORTED),
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "prompt_values_supported": list(PROMPTS),
        "display_values_supported": list(DISPLAYS),
        "acr_values_supported": list(ACR_VALUES),
        "ui_locales_supported": list(i18n.SUPPORTED_TAGS),  # the pages' languages (auth_server/i18n.py)
        "claims_locales_supported": ["en"],
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }


async def metadata(request: web.Request) -> web.Response:
    return web.json_response(
        document(request.app[REGISTRY].settings), headers={"Cache-Control": "public, max-age=3600"}
    )
