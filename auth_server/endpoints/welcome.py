"""The welcome page at ``/``: what this server is, for a person who opens its address; where they
manage their account and where developers apply for an app; and where its machine-readable
documents are (RFC 8414 metadata, OpenID Connect Discovery, the RFC 7517 key set, the OpenAPI
document)."""

from __future__ import annotations

from aiohttp import web

from auth_server import paths
from auth_server.appkeys import REGISTRY
from auth_server.i18n import _
from auth_server.pages import render


async def welcome(request: web.Request) -> web.Response:
    settings = request.app[REGISTRY].settings
    return render(
        "welcome.html",
        site_name=settings.site_name,
        issuer=settings.issuer,
        login=paths.LOGIN,
        account=paths.ACCOUNT,
        developers=paths.DEVELOPERS,
        links=[
            (
                paths.METADATA,
                _("Authorization server metadata (RFC 8414): every endpoint and what it supports"),
            ),
            (paths.OPENID_CONFIGURATION, _("OpenID Connect Discovery: the same, for OpenID Connect clients")),
            (paths.JWKS, _("Public signing keys (JWKS, RFC 7517): to check the tokens this server signs")),
            ("/openapi.json", _("OpenAPI description of every endpoint")),
        ],
    )
