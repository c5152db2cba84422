"""The answer to an approved authorization request (RFC 6749 §4.1.2, §4.2.2).

The grant serving the request's response type issues what goes back (``grants/authorization_code.py``:
a code; ``grants/implicit.py``: an access token), in the response mode that grant declares. Used
by ``/authorize`` when a remembered consent answers, and by ``/consent`` when the user allows.
"""

from __future__ import annotations

from auth_server.authorization.request import AuthorizationRequest, ResourceOwner
from auth_server.authorization.response_modes import Redirection
from auth_server.grants import GRANTS
from auth_server.registry import Registry
from shared.observability import Metrics


def redirection_for(request: AuthorizationRequest, issuer: str) -> Redirection:
    """Where and how the answer to a checked request goes back."""
    return Redirection(
        request.redirect_uri, request.state, issuer, GRANTS.response_mode(request.response_type)
    )


async def answer(
    registry: Registry, metrics: Metrics, request: AuthorizationRequest, owner: ResourceOwner
) -> dict[str, str]:
    """The parameters of the successful response, issued for ``owner``."""
    grant = GRANTS.serving(request.response_type)
    assert grant is not None and grant.authorization_endpoint is not None, "checked at /authorize"
    params = await grant.authorization_endpoint(registry, request, owner)
    if "access_token" in params:  # issued here, not at the token endpoint (the implicit grant)
        metrics.tokens.labels(grant.grant_type).inc()
    return params
