"""Token exchange (RFC 8693): a service acting for a user calls another API with a token of its own.

An API that received a user's access token (the *subject token*) and needs to call another API for
her exchanges it here, authenticating as its own client, for a token addressed to that other API
(``resource`` or ``audience``, RFC 8693 §2.1). The new token names both parties: ``sub`` is still
the user, and ``act`` (§4.1) the service acting for her (nested when a chain of services acts, the
closest first), so the downstream API sees who acts for whom. The rules:

* only confidential clients registered for this grant, and only the *service client* of the API
  the subject token is addressed to (``tessera resource create --service-client``): a token may be
  exchanged by the API it was issued for, never by whoever else holds a copy;
* only toward a registered resource the service client may ask for (:mod:`auth_server.resources`);
* the new scope is at most the subject token's (and the requested one, if named), within what the
  target API and the service client have; its lifetime at most what is left of the subject token;
* no refresh token (§2.2.1); the new token carries the subject token's ``grant_id``, so revoking
  the user's grant revokes what was exchanged from it too.

Every refusal of the tokens themselves is ``invalid_request`` (§2.2.2); a target that may not be
used is ``invalid_target``.
"""

from __future__ import annotations

from typing import Any

from auth_server import dpop, resources, scopes
from auth_server.clients import Client
from auth_server.grants.base import Grant
from auth_server.grants.common import TokenRequest
from auth_server.registry import Registry
from shared.errors import InvalidRequest, InvalidScope, InvalidTarget

GRANT_TYPE = resources.TOKEN_EXCHANGE
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a type name


async def exchange(registry: Registry, client: Client, request: TokenRequest) -> dict[str, Any]:
    subject = await _token(registry, request, "subject_token", required=True)
    assert subject is not None
    actor = await _token(registry, request, "actor_token", required=False)
    requested_type = request.get("requested_token_type")
    if requested_type not in (None, ACCESS_TOKEN_TYPE):
        raise InvalidRequest("Only access tokens are issued (requested_token_type).")

    addressed_to = await registry.resources.get(str(subject["aud"]))
    if addressed_to is None or addressed_to.service_client_id != client.client_id:
        raise InvalidRequest("The subject_token was not issued to an API this client operates.")
    if subject["sub"] == subject["client_id"]:
        # a client's token for itself (client credentials): no user to act for, and an API that
        # tells users from clients by sub != client_id would take the exchanged token for a user's
        raise InvalidRequest("The subject_token was issued to a client for itself, not for a user.")
    if actor is not None and not (actor["sub"] == actor["client_id"] == client.client_id):
        # the service's own token (client credentials), never one it holds for someone else
        raise InvalidRequest("The actor_token must be this client's own token (client credentials).")

    target = await resources.target(registry, client, _target_name(request), None)
    if target.resource is None:
        raise InvalidTarget("Name a registered resource to exchange the token for.")
    subject_scope = tuple(str(subject.get("scope", "")).split())
    requested = scopes.parse(request.get("scope"))
    if requested is not None and not set(requested) <= set(subject_scope):
        raise InvalidScope("The requested scope exceeds the subject token's.")
    scope = target.scope(tuple(s for s in (requested or subject_scope) if s in client.scope))

    # who acts: the authenticated client (whose own token the actor token is, if one was sent); an
    # earlier actor in the chain nests inside (RFC 8693 §4.1)
    act: dict[str, Any] = {"sub": client.client_id}
    if isinstance(subject.get("act"), dict):
        act["act"] = subject["act"]
    issuer = registry.access_tokens
    access = issuer.prepare(not_after=int(subject["exp"]))
    token = issuer.sign(
        access,
        subject=str(subject["sub"]),
        client_id=client.client_id,
        scope=scope,
        auth_time=subject.get("auth_time"),
        grant_id=subject.get("grant_id"),
        audience=target.audience,
        act=act,
        jkt=request.dpop_jkt,  # a service that sent a DPoP proof gets a token bound to its key
    )
    return {
        "access_token": token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": dpop.token_type(request.dpop_jkt),
        "expires_in": max(0, access.expires_at - access.issued_at),
        "scope": " ".join(scope),
    }


async def _token(
    registry: Registry, request: TokenRequest, name: str, *, required: bool
) -> dict[str, Any] | None:
    """The claims of the live, unrevoked access token sent as ``name`` (with its ``_type``)."""
    token = request.get(name)
    kind = request.get(f"{name}_type")
    if token is None:
        if kind is not None or required:
            raise InvalidRequest(f"{name} is required" + (f" with {name}_type." if kind else "."))
        return None
    if kind != ACCESS_TOKEN_TYPE:
        raise InvalidRequest(
            f"{name}_type must be {ACCESS_TOKEN_TYPE}: only this server's access tokens are exchanged."
        )
    claims = await registry.access_tokens.verify(token, audience=None)
    if claims is None or await registry.revoked_tokens.is_revoked(claims["jti"], claims.get("grant_id")):
        raise InvalidRequest(f"The {name} is invalid, expired or revoked.")
    return claims


def _target_name(request: TokenRequest) -> str:
    """The one API the new token is for: ``resource`` (RFC 8707) or ``audience`` (RFC 8693 §2.1;
    Tessera's audiences are its resources' identifiers), not two different ones."""
    resource, audience = request.get("resource"), request.get("audience")
    if resource is not None and audience is not None and resource != audience:
        raise InvalidTarget("Name one target: resource and audience differ.")
    name = resource or audience
    if name is None:
        raise InvalidRequest("Name the API the token is for with resource or audience.")
    return name


GRANT = Grant(
    GRANT_TYPE,
    token_endpoint=exchange,
    parameters=(
        "subject_token",
        "subject_token_type",
        "actor_token",
        "actor_token_type",
        "requested_token_type",
        "resource",
        "audience",
        "scope",
    ),
    issues_refresh_tokens=False,  # RFC 8693 §2.2.1: a refresh token is optional; none here
    confidential_only=True,
)
