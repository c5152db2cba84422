"""Implicit grant (RFC 6749 §4.2; OpenID Connect Core §3.2): tokens straight from the authorization endpoint.

Deprecated by RFC 9700 §2.1.2 and off unless a client is registered for it: the token travels in
the redirect URI's fragment (§4.2.2; ``authorization/response_modes.py``), where the browser, its
history and any script on the page can read it, and no refresh token is ever issued. It exists
for single-page apps that cannot yet run the code flow with PKCE. There is no token-endpoint half.
OpenID Connect's implicit flow (``id_token``, ``id_token token``) is this grant too: the ID token
is added to the answer by ``authorization/answer.py``, as for every response type that asks for one.
"""

from __future__ import annotations

from auth_server import resources
from auth_server.authorization.request import AuthorizationRequest, ResourceOwner
from auth_server.grants.base import Grant
from auth_server.registry import Registry
from shared.errors import InvalidRequest


async def issue_token(
    registry: Registry, request: AuthorizationRequest, owner: ResourceOwner
) -> dict[str, str]:
    """The answer to an approved authorization request (RFC 6749 §4.2.2): an access token if the
    response type asks for one (``id_token`` alone asks for none, OpenID Connect Core §3.2.2.1)."""
    if "token" not in request.response_values:
        return {}
    client = await registry.clients.get(request.client_id)
    if client is None:
        raise InvalidRequest("Unknown client_id.")
    # the one resource the request named (check_resource allows no more), or the default audience
    target = await resources.target(registry, client, None, request.resources)
    scope = target.scope(request.scope)
    issuer = registry.access_tokens
    access = issuer.prepare()
    token = issuer.sign(
        access,
        subject=owner.subject,
        client_id=request.client_id,
        scope=scope,
        auth_time=owner.auth_time,
        audience=target.audience,
    )
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": str(issuer.ttl),
        "scope": " ".join(scope),
    }


GRANT = Grant(
    "implicit",
    authorization_endpoint=issue_token,
    response_types=("token", "id_token", "id_token token"),
    deprecated=True,
)
