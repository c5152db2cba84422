"""What every grant shares: the request it receives, and how tokens are issued and answered.

A request that came with a DPoP proof (RFC 9449) carries it checked (:attr:`TokenRequest.dpop`);
a grant hands it to :func:`issue_tokens` (or to :meth:`AccessTokenIssuer.sign`), which binds the
tokens to its key as :mod:`auth_server.dpop` says.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auth_server import dpop
from auth_server.clients import Client
from auth_server.registry import Registry
from auth_server.resources import Target
from auth_server.tokens import AccessToken, token_response
from shared.dpop import Proof


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A token endpoint request after client authentication: its parameters and where it came from."""

    params: Mapping[str, str]
    client_ip: str
    # the request's DPoP proof, checked by the token endpoint (RFC 9449 §5); None: none was sent
    dpop: Proof | None = None

    @property
    def dpop_jkt(self) -> str | None:
        """The thumbprint of the DPoP proof's key: what the tokens issued are bound to."""
        return dpop.jkt_of(self.dpop)

    def get(self, name: str) -> str | None:
        return self.params.get(name)


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    body: dict[str, Any]
    access: AccessToken
    family_id: uuid.UUID | None


async def issue_tokens(
    registry: Registry,
    client: Client,
    *,
    subject: str,
    scope: tuple[str, ...],
    auth_time: int | None,
    refresh: bool,
    userinfo_claims: tuple[str, ...] | None = None,
    ends_at: datetime | None = None,
    target: Target | None = None,
    resources: tuple[str, ...] = (),
    proof: Proof | None = None,
) -> IssuedTokens:
    """Sign an access token for ``target`` (None: the default audience) with the part of ``scope``
    that belongs to it and, when asked and the client may refresh, start a refresh-token family for
    ``scope`` and ``resources`` (ending at ``ends_at`` if the user chose an end sooner than the
    family's lifetime). With a DPoP ``proof`` the access token is bound to its key, and so is a
    public client's refresh-token family (RFC 9449 §5)."""
    jkt = dpop.jkt_of(proof)
    token_scope = scope if target is None else target.scope(scope)
    access = registry.access_tokens.prepare()
    refresh_token = family_id = None
    if refresh and client.allows_grant("refresh_token"):
        refresh_token, family_id = await registry.refresh_tokens.issue(
            client_id=client.client_id,
            subject=subject,
            scope=scope,
            auth_time=None if auth_time is None else datetime.fromtimestamp(auth_time, UTC),
            access=access.record,
            ends_at=ends_at,
            resources=resources,
            dpop_jkt=dpop.family_binding(client, proof),
        )
    jwt = registry.access_tokens.sign(
        access,
        subject=subject,
        client_id=client.client_id,
        scope=token_scope,
        auth_time=auth_time,
        grant_id=None if family_id is None else str(family_id),
        userinfo_claims=userinfo_claims,
        audience=None if target is None else target.audience,
        jkt=jkt,
    )
    body = token_response(
        jwt, registry.access_tokens.ttl, token_scope, refresh_token, token_type=dpop.token_type(jkt)
    )
    return IssuedTokens(body, access, family_id)
