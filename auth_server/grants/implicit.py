"""Implicit grant (RFC 6749 §4.2): the access token straight from the authorization endpoint.

Deprecated by RFC 9700 §2.1.2 and off unless a client is registered for it: the token travels in
the redirect URI's fragment (§4.2.2; ``authorization/response_modes.py``), where the browser, its
history and any script on the page can read it, and no refresh token is ever issued. It exists
for single-page apps that cannot yet run the code flow with PKCE. There is no token-endpoint half.
"""

from __future__ import annotations

from auth_server.authorization.request import AuthorizationRequest, ResourceOwner
from auth_server.grants.base import Grant
from auth_server.registry import Registry


async def issue_token(
    registry: Registry, request: AuthorizationRequest, owner: ResourceOwner
) -> dict[str, str]:
    """The answer to an approved authorization request (RFC 6749 §4.2.2)."""
    issuer = registry.access_tokens
    access = issuer.prepare()
    token = issuer.sign(
        access,
        subject=owner.subject,
        client_id=request.client_id,
        scope=request.scope,
        auth_time=owner.auth_time,
    )
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": str(issuer.ttl),
        "scope": " ".join(request.scope),
    }


GRANT = Grant(
    "implicit",
    authorization_endpoint=issue_token,
    response_types=("token",),
    response_mode="fragment",
    deprecated=True,
)
