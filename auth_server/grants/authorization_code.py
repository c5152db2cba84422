"""Authorization code grant (RFC 6749 §4.1; RFC 7636; RFC 9700 §2.1.1).

At the authorization endpoint, an approved request gets a code bound to everything the token
endpoint must check (RFC 6749 §4.1.2). At the token endpoint (§4.1.3-4.1.4, RFC 7636 §4.5-4.6), the
client, redirect URI and verifier are checked against the code's grant and the code consumed only if
they match, in one atomic step (:meth:`CodeStore.redeem`): a mistaken request is refused and leaves
the code usable, so a typo is not a replay. Another client's request learns nothing of the code: it
gets the answer an unknown code gets. Exactly one redemption succeeds; any later one is refused and
revokes everything issued from the code (RFC 6749 §4.1.2, §10.5), whether it came before or after
the winner had finished.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from auth_server import pkce, profiles, resources
from auth_server.authorization.request import AuthorizationRequest, ResourceOwner
from auth_server.clients import Client
from auth_server.grants.base import Grant
from auth_server.grants.common import TokenRequest, issue_tokens
from auth_server.oidc import id_tokens
from auth_server.oidc.claims import userinfo_claims
from auth_server.oidc.id_tokens import Authentication
from auth_server.registry import Registry
from auth_server.stores.codes import CodeGrant, Issued, Mismatch, Presented, Replayed
from shared.errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget


async def issue_code(
    registry: Registry, request: AuthorizationRequest, owner: ResourceOwner
) -> dict[str, str]:
    """The answer to an approved authorization request (RFC 6749 §4.1.2)."""
    # the client's security profile may shorten the code's life (FAPI 2.0 §5.3.2.1: 60 s at most)
    client = await registry.clients.get(request.client_id)
    code = await registry.codes.issue(
        CodeGrant(
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            scope=request.scope,
            subject=owner.subject,
            auth_time=owner.auth_time,
            code_challenge=request.code_challenge,
            redirect_uri_given=request.redirect_uri_given,
            nonce=request.nonce,
            claims=request.claims,
            sid=owner.sid,
            amr=owner.amr,
            grant_ends_at=request.grant_ends_at,
            resources=request.resources,
            dpop_jkt=request.dpop_jkt,
        ),
        ttl=profiles.code_lifetime(client, registry.settings.code_ttl),
    )
    return {"code": code}


async def exchange(registry: Registry, client: Client, request: TokenRequest) -> dict[str, Any]:
    code = request.get("code")
    if code is None:
        raise InvalidRequest("The code parameter is required.")
    verifier = request.get("code_verifier")
    resource = request.get("resource")
    if resource is not None:
        # a resource that is not one this client may ask for is a mistake: refused before the code
        # is consumed, like the mismatches below; whether the grant covers it is checked after
        await resources.resolve(registry, client, resources.identifiers([resource]))
    presented = Presented(
        client_id=client.client_id,
        redirect_uri=request.get("redirect_uri"),
        verifier_sent=verifier is not None,
        verifier_challenge=None if verifier is None else pkce.challenge_of(verifier),
        dpop_jkt=request.dpop_jkt,  # RFC 9449 §10: a code bound to a key needs a proof with it
        resource=resource,  # RFC 8707 §2.2: one the grant covers (checked before it is consumed)
        default_audience=registry.settings.access_token_audience,
    )
    redeemed = await registry.codes.redeem(code, presented)
    if redeemed is None:
        raise InvalidGrant(_UNKNOWN)
    if isinstance(redeemed, Mismatch):
        if redeemed.reason in _TARGET_MISMATCH:
            raise InvalidTarget(_TARGET_MISMATCH[redeemed.reason])
        raise InvalidGrant(_MISMATCH[redeemed.reason])
    if isinstance(redeemed, Replayed):
        await _revoke(registry, redeemed.issued)
        await registry.audit.record(
            "authorization_code.replayed", client_id=client.client_id, ip=request.client_ip
        )
        raise InvalidGrant("The authorization code was already used; tokens issued with it are revoked.")
    grant = redeemed
    # the client's registration may have narrowed since the user approved
    scope = tuple(s for s in grant.scope if s in client.scope)
    if not scope:
        raise InvalidScope("The client is no longer allowed any of the approved scopes.")
    # RFC 8707 §2.2: a token for the resource the user approved that the request names (which the
    # redemption checked before consuming the code), or the grant's only one
    target = await resources.target(registry, client, resource, grant.resources)

    openid = "openid" in scope
    if openid and grant.sid is not None and await registry.sessions.ended(grant.sid):
        # its ID token would name a session that has ended, and its client would never hear of it
        raise InvalidGrant("The user signed out after this authorization code was issued.")
    issued = await issue_tokens(
        registry,
        client,
        subject=grant.subject,
        scope=scope,
        auth_time=grant.auth_time,
        # OpenID Connect Core §11: an authentication request gets a refresh token only for offline_access
        refresh=GRANT.issues_refresh_tokens and (not openid or "offline_access" in scope),
        userinfo_claims=userinfo_claims(grant.claims),
        # the duration the user chose on the consent page bounds the family (issue 15)
        ends_at=None if grant.grant_ends_at is None else datetime.fromtimestamp(grant.grant_ends_at, UTC),
        target=target,
        resources=grant.resources,
        proof=request.dpop,
    )
    if openid:
        authentication = Authentication(
            subject=grant.subject,
            auth_time=grant.auth_time,
            scope=scope,
            nonce=grant.nonce,
            sid=grant.sid,
            amr=grant.amr,
            claims=grant.claims,
        )
        issued.body["id_token"] = await id_tokens.issue(
            registry, client, authentication, access_token=issued.body["access_token"]
        )
    record = Issued(issued.family_id, issued.access.jti, issued.access.record.expires_at)
    if await registry.codes.record_issued(code, record):
        # A replay arrived while these tokens were being made. Revoke them, exactly as a replay
        # arriving a moment later would: the outcome must not depend on timing.
        await _revoke(registry, record)
    return issued.body


_UNKNOWN = "The authorization code is invalid or has expired."

# Why a live code was refused (and left unconsumed). Another client's code is answered as unknown.
_MISMATCH = {
    "client": _UNKNOWN,
    # RFC 6749 §4.1.3: required, and identical, when the authorization request included it
    "redirect_uri": "redirect_uri must be identical to the one in the authorization request.",
    "verifier_missing": "code_verifier is required: the authorization request used PKCE.",
    # RFC 9700 §2.1.1: a verifier without a challenge signals an injected code (PKCE downgrade)
    "verifier_unexpected": "code_verifier sent, but the authorization request had no code_challenge.",
    "verifier": "code_verifier does not match the code_challenge.",
    # RFC 9449 §10: the authorization request named the key (dpop_jkt) the code is for
    "dpop_jkt": "The authorization code is bound to a DPoP key (dpop_jkt): send a DPoP proof made with it.",
}
# RFC 8707 §2.2: the resource of the token (auth_server.resources.chosen's refusals), invalid_target
_TARGET_MISMATCH = {
    "resource": "The resource was not part of the authorization grant.",
    "resource_unnamed": "The grant covers several resources: name one with the resource parameter.",
}


async def _revoke(registry: Registry, issued: Issued) -> None:
    if issued.jti is not None and issued.expires_at is not None:
        await registry.revoked_tokens.revoke(issued.jti, issued.expires_at)
    if issued.family_id is not None:
        live = await registry.refresh_tokens.revoke_family(issued.family_id, "authorization code replayed")
        await registry.revoked_tokens.revoke_grant(issued.family_id, live)


GRANT = Grant(
    "authorization_code",
    token_endpoint=exchange,
    authorization_endpoint=issue_code,
    response_types=("code", "code id_token"),
    parameters=("code", "redirect_uri", "code_verifier", "resource"),
    issues_refresh_tokens=True,
)
