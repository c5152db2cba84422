"""The UserInfo endpoint (OpenID Connect Core §5.3): the signed-in user's claims, for an access token.

``GET`` or ``POST``, the token in the ``Authorization`` header (RFC 6750 §2.1), or for ``POST`` in
the form body (§2.2, which Core §5.3.1 allows); never in the URL. Only a live access token of this
server that carries ``openid`` is answered; a revoked one is refused like an expired one. It
answers the claims of the token's scopes and those the request asked userinfo for by name (§5.5),
with the ``sub`` the client sees (pairwise where registered, the same as in its ID tokens), as JSON,
or as a JWT signed for the client when it registered ``userinfo_signed_response_alg`` (§5.3.2).
Errors are RFC 6750 §3 challenges. A DPoP-bound token (RFC 9449) is answered only when sent as
``Authorization: DPoP`` with a proof of its key, never as a bearer token (``dpop.py``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from auth_server import paths
from auth_server.appkeys import REGISTRY
from auth_server.oidc import signer
from auth_server.oidc.claims import ClaimsRequest, released, values
from auth_server.registry import Registry
from shared.errors import NO_STORE, InsufficientScope, InvalidRequest, InvalidToken, NoToken
from shared.http import read_form
from shared.jwt_validation import authorization


async def userinfo(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    scheme, token = await _token(request)
    claims = await registry.access_tokens.verify(token, audience=registry.settings.access_token_audience)
    if claims is None or await registry.revoked_tokens.is_revoked(claims["jti"], claims.get("grant_id")):
        raise InvalidToken("The access token is invalid, expired or revoked.")
    await registry.dpop.presented(
        request, scheme, token, claims, url=registry.settings.endpoint(paths.USERINFO)
    )
    scope = tuple(str(claims.get("scope", "")).split())
    if "openid" not in scope:
        raise InsufficientScope("The access token was not issued for OpenID Connect.", scope="openid")
    body = await _claims(registry, claims, scope)
    client = await registry.clients.get(str(claims.get("client_id", "")))
    if client is None or not client.active:
        raise InvalidToken("The client this token was issued to is no longer registered or approved.")
    body["sub"] = await registry.subjects.for_client(client, str(claims["sub"]))
    if client.userinfo_signed_response_alg is None:
        return web.json_response(body, headers=NO_STORE)
    signed = {"iss": registry.settings.issuer, "aud": client.client_id, "iat": int(time.time()), **body}
    jws = signer.sign(registry.keyring, signed, alg=client.userinfo_signed_response_alg)
    return web.Response(text=jws, content_type="application/jwt", headers=NO_STORE)


async def _token(request: web.Request) -> tuple[str, str]:
    """The access token and how it was sent (``Bearer`` or ``DPoP``), from the header, or from a
    POSTed form as a bearer token (not both, RFC 6750 §2)."""
    presented = authorization(request)
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        form = await read_form(request)
        in_body = form.get("access_token")
        if in_body is not None:
            if presented is not None:
                raise InvalidRequest("Send the access token once: in the header or in the body.")
            presented = ("Bearer", in_body)
    if presented is None:
        raise NoToken("An access token is required.")
    return presented


async def _claims(registry: Registry, claims: dict[str, Any], scope: tuple[str, ...]) -> dict[str, Any]:
    """The user's claims that the token's scopes and its claims request release."""
    asked = ClaimsRequest(userinfo={name: None for name in claims.get("userinfo_claims", ())}, id_token={})
    names = released(scope, asked, "userinfo", scope_claims_here=True)
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError:
        raise InvalidToken("The access token does not name a user.") from None
    profile = await registry.users.profile(user_id)
    if profile is None:
        raise InvalidToken("The user of this token no longer exists.")
    return values(profile, names)
