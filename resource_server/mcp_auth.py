"""Who may call the MCP server: the holder of a Tessera access token for it, sent as a bearer token
(RFC 6750) or, for a token bound to a key, as ``Authorization: DPoP`` with a proof of that key
(RFC 9449 §7), checked by :class:`shared.jwt_validation.TokenValidator` as the warehouse checks its
own (:meth:`~shared.jwt_validation.TokenValidator.validate_presented`).

The SDK's own authentication (``BearerAuthBackend``) reads ``Bearer`` tokens only, and answers every
refusal with the same words, so :func:`install` puts :class:`TokenBackend` in its place in the app
the SDK builds. For the MCP endpoint's path it

* takes the token (and the request's one ``DPoP`` header, for the URL the agent called: this
  server's public URL, never the ``Host`` header) and requires the server's scopes;
* refuses with the RFC 6750 §3 / RFC 9449 §7.1 challenge the warehouse gives: ``Bearer`` or
  ``DPoP`` as the request used, the error and why, ``resource_metadata`` (RFC 9728 §5.1) and, on a
  401, the scope needed and the DPoP algorithms accepted; a proof whose ``jti`` store (Redis) is
  down is a 503.

Other paths (the metadata document, health) need no token and are not looked at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url, cors_middleware
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.dpop import HEADER
from shared.errors import (
    BearerError,
    InsufficientScope,
    InvalidToken,
    NoToken,
    OAuthError,
    TemporarilyUnavailable,
)
from shared.jwt_validation import TokenValidator, dpop_challenge, parse_authorization, scopes_of

log = logging.getLogger("tessera.mcp")


class TesseraTokenVerifier:
    """The SDK's ``TokenVerifier``: Tessera's access tokens as bearer tokens, validated locally by
    ``validator`` (whose audience is this server's identifier, so a token for another API is
    refused). The SDK needs one to turn its authentication on; :class:`TokenBackend` uses
    :meth:`access` for what it accepts, DPoP-bound tokens included."""

    def __init__(self, validator: TokenValidator, resource: str) -> None:
        self.validator = validator
        self.resource = resource

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = await self.validator.validate(token)
        except InvalidToken as refused:
            log.info("refused a bearer token: %s", refused.description)  # why, never the token
            return None
        return self.access(token, claims)

    def access(self, token: str, claims: dict[str, Any]) -> AccessToken:
        return AccessToken(
            token=token,
            client_id=claims["client_id"],
            scopes=sorted(scopes_of(claims)),
            expires_at=int(claims["exp"]),
            resource=self.resource,  # the validator required aud to be exactly this
            subject=claims["sub"],
            claims=claims,
        )


class Refused(AuthenticationError):
    """A refusal, with the OAuth error to answer it with."""

    def __init__(self, error: OAuthError) -> None:
        super().__init__(error.description)
        self.error = error


class TokenBackend(AuthenticationBackend):
    """Starlette authentication of the MCP endpoint's requests (see the module). ``required``: the
    scopes every request needs; ``unavailable``: the errors that mean the proofs' replay store
    cannot be reached (answered 503)."""

    def __init__(
        self,
        verifier: TesseraTokenVerifier,
        required: tuple[str, ...],
        *,
        unavailable: tuple[type[BaseException], ...] = (),
        observe: Callable[[str], None] | None = None,
    ) -> None:
        self.verifier = verifier
        self.required = required
        self.unavailable = unavailable
        self.observe = observe  # told each OAuth error code answered (the metrics)
        parts = urlsplit(verifier.resource)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path or "/"
        self.metadata_url = str(build_resource_metadata_url(AnyHttpUrl(verifier.resource)))

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, AuthenticatedUser] | None:
        if conn.url.path != self.path:
            return None
        scheme: str | None = None
        try:
            presented = parse_authorization(conn.headers.get("authorization"))
            if presented is None:
                raise NoToken("An access token is required.")
            scheme, token = presented
            raw = conn.scope.get("raw_path")
            path = raw.decode("latin-1") if isinstance(raw, bytes) else conn.url.path
            claims = await self.verifier.validator.validate_presented(
                scheme,
                token,
                proofs=conn.headers.getlist(HEADER),
                method=conn.scope["method"],
                url=self.origin + path,
            )
            if not set(self.required) <= scopes_of(claims):
                raise InsufficientScope(
                    f"This request needs the scope {' '.join(self.required)}.", scope=" ".join(self.required)
                )
        except BearerError as error:
            log.info("refused a %s token: %s", scheme or "missing", error.description)  # never the token
            raise Refused(self._challenge(error, scheme)) from None
        except OAuthError as error:  # the proofs' replay store, full (503 with Retry-After)
            raise Refused(error) from None
        except self.unavailable:
            log.warning("the DPoP proof replay store cannot be reached")
            raise Refused(
                TemporarilyUnavailable("DPoP proofs cannot be checked right now; try again.", retry_after=5)
            ) from None
        access = self.verifier.access(token, claims)
        return AuthCredentials(access.scopes), AuthenticatedUser(access)

    def _challenge(self, error: BearerError, scheme: str | None) -> BearerError:
        if self.observe is not None:
            self.observe(error.error)
        error.add_params(resource_metadata=self.metadata_url)
        if error.status == 401:
            error.add_params(scope=" ".join(self.required))
        dpop_challenge(error, scheme, self.verifier.validator.proofs.algorithms)
        return error

    @staticmethod
    def refusal(conn: HTTPConnection, refused: AuthenticationError) -> Response:
        """The answer to a :class:`Refused` request: its error as JSON, with its challenge."""
        error = refused.error if isinstance(refused, Refused) else InvalidToken(str(refused))
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers())


def install(app: Starlette, backend: TokenBackend) -> None:
    """Put ``backend`` in place of the SDK's authentication backend in ``app`` (before it serves)."""
    for index, entry in enumerate(app.user_middleware):
        if entry.cls is AuthenticationMiddleware:  # type: ignore[comparison-overlap]
            app.user_middleware[index] = Middleware(
                AuthenticationMiddleware, backend=backend, on_error=backend.refusal
            )
            return
    raise RuntimeError("the mcp SDK's app has no authentication middleware to replace")


def advertise(
    app: Starlette, *, resource: str, issuer: str, scopes: tuple[str, ...], algorithms: tuple[str, ...]
) -> None:
    """Serve the SDK's RFC 9728 metadata document with the DPoP proof algorithms accepted
    (``dpop_signing_alg_values_supported``, which the SDK leaves out), in place of its own, CORS
    and all."""
    metadata = ProtectedResourceMetadata.model_validate(  # the URLs as written (no '/' added)
        {
            "resource": resource,
            "authorization_servers": [issuer],
            "scopes_supported": list(scopes),
            "dpop_signing_alg_values_supported": list(algorithms),
        }
    )
    path = urlsplit(str(build_resource_metadata_url(AnyHttpUrl(resource)))).path
    routes = app.router.routes
    for index, route in enumerate(routes):
        if isinstance(route, Route) and route.path == path:
            handler = ProtectedResourceMetadataHandler(metadata)
            routes[index] = Route(
                path, endpoint=cors_middleware(handler.handle, ["GET", "OPTIONS"]), methods=["GET", "OPTIONS"]
            )
            return
    raise RuntimeError("the mcp SDK's app serves no protected resource metadata to replace")
