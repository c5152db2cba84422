"""Authorization server metadata (RFC 8414 §2-3), built from the issuer and what is implemented."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from auth_server import paths
from auth_server.appkeys import REGISTRY
from auth_server.clients import AUTH_METHODS, GRANT_TYPES, RESPONSE_TYPE_GRANTS
from auth_server.settings import Settings


def document(settings: Settings) -> dict[str, Any]:
    return {
        "issuer": settings.issuer,
        "authorization_endpoint": settings.endpoint(paths.AUTHORIZE),
        "token_endpoint": settings.endpoint(paths.TOKEN),
        "jwks_uri": settings.endpoint(paths.JWKS),
        "scopes_supported": sorted(settings.scopes),
        "response_types_supported": list(RESPONSE_TYPE_GRANTS),
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
    }


async def metadata(request: web.Request) -> web.Response:
    return web.json_response(
        document(request.app[REGISTRY].settings), headers={"Cache-Control": "public, max-age=3600"}
    )
