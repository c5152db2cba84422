"""Who may call the admin API: the holder of one of Tessera's own access tokens (RFC 9068) with an
admin scope, validated locally with :mod:`shared.jwt_validation` — the signature against the key ring
(:class:`auth_server.tokens.KeyRingKeys`, no JWKS fetch), ``typ=at+jwt``, this issuer and audience,
expiry — and not revoked (the issuer's deny-list, checked on every request). A token bound to a DPoP
key (RFC 9449) is taken only as ``Authorization: DPoP`` with a proof of that key for the admin API's
URL (``TESSERA_ADMIN_URL``), never as a bearer token.

The scopes (:data:`auth_server.scopes.ADMIN_SCOPES`) are registrable only by an operator
(``registration.check_operator_scopes``). On top of the scope, the token's subject must *still* be
entitled when it is used: a user who is an admin now (``users.is_admin``), or, for a
``client_credentials`` token (``sub`` = the client), an approved client an operator registered. So a
token issued to a user who has since lost the admin flag stops working at once, and no non-admin
user's token works even if a consent handed it an admin scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from auth_server import signing
from auth_server.appkeys import REGISTRY
from auth_server.registry import Registry
from auth_server.tokens import KeyRingKeys
from shared.errors import BearerError, InsufficientScope, InvalidToken, NoToken
from shared.jwt_validation import (
    CLAIMS_KEY,
    TokenValidator,
    authorization,
    dpop_challenge,
    public_url,
    scopes_of,
)

READ = "admin:read"
WRITE = "admin:write"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN_VALIDATOR = web.AppKey("tessera_admin_validator", TokenValidator)


def validator(registry: Registry) -> TokenValidator:
    """Tessera's access tokens, checked against its own key ring (no leeway: its clock signed them)."""
    settings = registry.settings
    return TokenValidator(
        issuer=settings.issuer,
        audience=settings.access_token_audience,
        keys=KeyRingKeys(registry.keyring),
        algorithms=signing.ALGORITHMS,
        leeway=0,
    )


async def _entitled(registry: Registry, claims: dict[str, Any]) -> bool:
    """An approved client an operator registered, acting for itself or for a user who is an admin."""
    subject, client_id = str(claims["sub"]), str(claims["client_id"])
    client = await registry.clients.get(client_id)
    if client is None or not client.active:
        return False
    if subject == client_id:  # client_credentials: the client acts for itself
        return client.registered_via == "operator"
    try:
        user_id = uuid.UUID(subject)
    except ValueError:
        return False
    return await registry.users.is_admin(user_id)


def require(scope: str) -> Callable[[Handler], Handler]:
    """A handler for bearers of ``scope`` (``admin:write`` also reads): a bearer token, or a
    DPoP-bound one with a proof of its key (RFC 9449 §7), checked as the authorization server checks
    every proof (:meth:`auth_server.dpop.DPoP.presented`: its replay store, its nonces) for the URL
    the caller called (:func:`auth_server.settings.admin_origin`)."""
    accepted = {scope} if scope == WRITE else {READ, WRITE}

    def decorate(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            registry = request.app[REGISTRY]
            scheme: str | None = None
            try:
                presented = authorization(request)
                if presented is None:
                    raise NoToken("An access token of this server with an admin scope is required.")
                scheme, token = presented
                claims = await request.app[ADMIN_VALIDATOR].verified_claims(token)
                if await registry.revoked_tokens.is_revoked(claims["jti"], claims.get("grant_id")):
                    raise InvalidToken("The access token has been revoked.")
                await registry.dpop.presented(request, scheme, token, claims, url=public_url(request))
                if not accepted & scopes_of(claims):
                    raise InsufficientScope(f"This request needs the scope {scope}.", scope=scope)
                if not await _entitled(registry, claims):
                    raise InsufficientScope("The token's subject is not an administrator.", scope=scope)
            except BearerError as error:
                dpop_challenge(error, scheme, registry.dpop.verifier.algorithms)
                raise
            request[CLAIMS_KEY] = claims
            return await handler(request)

        guarded.__name__ = getattr(handler, "__name__", "guarded")
        guarded.__doc__ = handler.__doc__
        return guarded

    return decorate


def actor(request: web.Request) -> str:
    """Who made a decision, for the audit trail: the token's subject."""
    return str(request[CLAIMS_KEY]["sub"])
