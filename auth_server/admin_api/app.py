"""The admin API's app, and how it runs beside the public one: its own ``AppRunner`` and
``TCPSite`` on ``TESSERA_ADMIN_HOST:TESSERA_ADMIN_PORT`` (:func:`shared.serving.serve_beside`, as
``/metrics`` is served too), started once the public app's resources are open (it shares their
registry) and stopped before they close. The public app's signal handling and graceful shutdown
(:func:`shared.serving.run_one`) stay as they are.
"""

from __future__ import annotations

from aiohttp import web

from auth_server.admin_api import auth, routes
from auth_server.appkeys import REGISTRY
from auth_server.registry import UNAVAILABLE_ERRORS, Registry
from auth_server.settings import Settings, admin_origin
from shared import serving
from shared.error_middleware import error_middleware
from shared.http import BODY_TIMEOUT
from shared.jwt_validation import PUBLIC_ORIGIN


def create_admin_app(registry: Registry) -> web.Application:
    """The admin API over ``registry`` (JSON errors only, no HTML pages)."""
    settings = registry.settings
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[BODY_TIMEOUT] = float(settings.body_timeout)
    app[REGISTRY] = registry
    app[auth.ADMIN_VALIDATOR] = auth.validator(registry)
    origin = admin_origin(settings)
    if origin is not None:  # what DPoP proofs must name (RFC 9449 htu); none: DPoP is refused
        app[PUBLIC_ORIGIN] = origin
    app.middlewares.append(error_middleware(unavailable=UNAVAILABLE_ERRORS))
    routes.add_routes(app)
    return app


def serve_beside(app: web.Application, settings: Settings, *, reuse_port: bool = False) -> None:
    """Serve the admin API on its own port for as long as ``app`` runs; appended to the public
    app's ``cleanup_ctx`` after its resources, so it starts once the registry is open and stops
    before it closes. ``reuse_port``: several worker processes bind the port (``--workers``)."""
    serving.serve_beside(
        app,
        lambda app: create_admin_app(app[REGISTRY]),
        settings.admin_host,
        settings.admin_port,
        reuse_port=reuse_port,
    )
