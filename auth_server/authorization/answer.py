"""The answer to an approved authorization request (RFC 6749 §4.1.2, §4.2.2; OpenID Connect Core
§3.1.2.5, §3.2.2.5, §3.3.2.5).

The grant serving the request's response type issues what goes back (``grants/authorization_code.py``:
a code; ``grants/implicit.py``: an access token); when the response type asks for an ID token, it
is added here, bound to the code (``c_hash``) and access token (``at_hash``) beside it. The answer
goes back in the response mode the request named, else the response type's default. Used by
``/authorize`` when a remembered consent answers, and by ``/consent`` when the user allows.
"""

from __future__ import annotations

from auth_server.authorization.request import AuthorizationRequest, ResourceOwner
from auth_server.authorization.response_modes import Redirection, asked_mode, default_mode
from auth_server.grants import GRANTS
from auth_server.oidc import id_tokens
from auth_server.oidc.id_tokens import Authentication
from auth_server.registry import Registry
from shared.errors import InvalidRequest
from shared.observability import Metrics


def redirection_for(request: AuthorizationRequest, issuer: str) -> Redirection:
    """Where and how the answer to a checked request goes back."""
    mode = (
        default_mode(request.response_type)
        if request.response_mode is None
        else asked_mode(request.response_type, request.response_mode)
    )
    return Redirection(request.redirect_uri, request.state, issuer, mode)


async def answer(
    registry: Registry, metrics: Metrics, request: AuthorizationRequest, owner: ResourceOwner
) -> dict[str, str]:
    """The parameters of the successful response, issued for ``owner``."""
    grant = GRANTS.serving(request.response_type)
    assert grant is not None and grant.authorization_endpoint is not None, "checked at /authorize"
    params = await grant.authorization_endpoint(registry, request, owner)
    if "access_token" in params:  # issued here, not at the token endpoint (the implicit grant)
        metrics.count_token(grant.grant_type)
    if "id_token" in request.response_values:
        client = await registry.clients.get(request.client_id)
        if client is None:
            raise InvalidRequest("The client is no longer registered.")
        authentication = Authentication(
            subject=owner.subject,
            auth_time=owner.auth_time,
            scope=request.scope,
            nonce=request.nonce,
            sid=owner.sid,
            amr=owner.amr,
            claims=request.claims,
        )
        params["id_token"] = await id_tokens.issue(
            registry,
            client,
            authentication,
            code=params.get("code"),
            access_token=params.get("access_token"),
        )
    return params
