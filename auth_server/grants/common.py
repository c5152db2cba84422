"""What every grant shares: the request it receives, and how tokens are issued and answered."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auth_server.clients import Client
from auth_server.registry import Registry
from auth_server.tokens import AccessToken, token_response


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A token endpoint request after client authentication: its parameters and where it came from."""

    params: Mapping[str, str]
    client_ip: str

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
) -> IssuedTokens:
    """Sign an access token and, when asked and the client may refresh, start a refresh-token family
    (ending at ``ends_at`` if the user chose an end sooner than the family's lifetime)."""
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
        )
    jwt = registry.access_tokens.sign(
        access,
        subject=subject,
        client_id=client.client_id,
        scope=scope,
        auth_time=auth_time,
        grant_id=None if family_id is None else str(family_id),
        userinfo_claims=userinfo_claims,
    )
    return IssuedTokens(
        token_response(jwt, registry.access_tokens.ttl, scope, refresh_token), access, family_id
    )
