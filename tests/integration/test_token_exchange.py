"""RFC 8693 token exchange: an API acting for a user calls another API with a token of its own."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp.test_utils import TestClient

from auth_server.grants.token_exchange import ACCESS_TOKEN_TYPE, GRANT_TYPE
from auth_server.issued import IssuedAccess
from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.support.flow import basic
from tests.support.servers import ClientFactory

ACCESS = ACCESS_TOKEN_TYPE


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


class Platform:
    """An agent-facing API (the gateway) whose service calls a photo API for the user."""

    def __init__(self, http: TestClient, registry: Registry, new_client: ClientFactory) -> None:
        self.http, self.registry, self.new_client = http, registry, new_client

    async def setup(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.service, self.service_secret = await self.new_client(
            grant_types=[GRANT_TYPE], scope="photos:read photos:write", name="Gateway"
        )
        self.gateway = f"https://gateway-{tag}.example/mcp"
        self.photos = f"https://photos-{tag}.example/api"
        await self.registry.resources.create(
            self.gateway, "Gateway", ("photos:read",), service_client_id=self.service.client_id
        )
        await self.registry.resources.create(self.photos, "Photos", ("photos:read", "photos:write"))
        self.agent, self.agent_secret = await self.new_client(
            grant_types=["client_credentials"], scope="photos:read", name="Agent"
        )

    def user_token(
        self, user: User, *, audience: str | None = None, scope: str = "photos:read", **extra: Any
    ) -> str:
        """An access token the agent got for the user (as the code flow would give it)."""
        issuer = self.registry.access_tokens
        return issuer.sign(
            issuer.prepare(),
            subject=user.subject,
            client_id=self.agent.client_id,
            scope=tuple(scope.split()),
            audience=audience or self.gateway,
            **extra,
        )

    async def exchange(
        self, subject_token: str, *, client: tuple[str, str] | None = None, **extra: str
    ) -> tuple[int, dict[str, Any]]:
        client_id, secret = client or (self.service.client_id, self.service_secret or "")
        data = {
            "grant_type": GRANT_TYPE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS,
            "resource": self.photos,
            **extra,
        }
        response = await self.http.post("/oauth2/token", data=data, headers=basic(client_id, secret))
        return response.status, await response.json()


async def _platform(http: TestClient, registry: Registry, new_client: ClientFactory) -> Platform:
    platform = Platform(http, registry, new_client)
    await platform.setup()
    return platform


async def test_the_service_gets_a_token_for_the_downstream_api_naming_who_acts(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    platform = await _platform(http, registry, new_client)
    subject = platform.user_token(user)
    status, body = await platform.exchange(subject)
    assert status == 200, body
    assert body["issued_token_type"] == ACCESS
    assert body["token_type"] == "Bearer"
    claims = _claims(body["access_token"])
    assert claims["aud"] == platform.photos
    assert claims["sub"] == user.subject  # still the user's
    assert claims["act"] == {"sub": platform.service.client_id}  # and who acts for her
    assert claims["client_id"] == platform.service.client_id
    assert claims["scope"] == body["scope"] == "photos:read"  # never more than the subject token's
    assert claims["exp"] <= _claims(subject)["exp"]


async def test_chains_nest_act_and_lifetime_never_outlasts_the_subject_token(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    platform = await _platform(http, registry, new_client)
    issuer = registry.access_tokens
    soon = int(time.time()) + 20
    subject = issuer.sign(
        issuer.prepare(not_after=soon),
        subject=user.subject,
        client_id=platform.agent.client_id,
        scope=("photos:read",),
        audience=platform.gateway,
        act={"sub": "upstream-service"},
    )
    status, body = await platform.exchange(subject)
    assert status == 200, body
    claims = _claims(body["access_token"])
    assert claims["act"] == {"sub": platform.service.client_id, "act": {"sub": "upstream-service"}}
    assert claims["exp"] <= soon and body["expires_in"] <= 20


async def test_an_exchange_toward_a_forbidden_audience_is_refused(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    platform = await _platform(http, registry, new_client)
    admin_api = f"https://admin-{uuid.uuid4().hex[:8]}.example"
    await registry.resources.create(admin_api, "Admin", ("admin:clients",))
    subject = platform.user_token(user)
    for target, error in (
        (admin_api, "invalid_target"),  # the service has no scope of it
        ("https://unregistered.example/api", "invalid_target"),
        (registry.settings.access_token_audience, "invalid_target"),  # only registered APIs
    ):
        status, body = await platform.exchange(subject, resource=target)
        assert (status, body["error"]) == (400, error), target


async def test_only_the_api_the_subject_token_was_issued_to_may_exchange_it(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    platform = await _platform(http, registry, new_client)
    # a token for the photo API itself (not the gateway): the gateway's service did not receive it
    stolen = platform.user_token(user, audience=platform.photos)
    status, body = await platform.exchange(stolen)
    assert (status, body["error"]) == (400, "invalid_request")
    assert "not issued to an API this client operates" in body["error_description"]
    # another client registered for token exchange cannot exchange the gateway's token either
    other, other_secret = await new_client(grant_types=[GRANT_TYPE], scope="photos:read")
    status, body = await platform.exchange(
        platform.user_token(user), client=(other.client_id, other_secret or "")
    )
    assert (status, body["error"]) == (400, "invalid_request")
    # nor may a client not registered for the grant use it
    status, body = await platform.exchange(
        platform.user_token(user), client=(platform.agent.client_id, platform.agent_secret or "")
    )
    assert (status, body["error"]) == (400, "unauthorized_client")


async def test_bad_subject_tokens_and_scopes_are_refused(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    platform = await _platform(http, registry, new_client)
    subject = platform.user_token(user)
    status, body = await platform.exchange("not-a-token")
    assert (status, body["error"]) == (400, "invalid_request")
    status, body = await platform.exchange(
        subject, subject_token_type="urn:ietf:params:oauth:token-type:id_token"
    )
    assert (status, body["error"]) == (400, "invalid_request")
    status, body = await platform.exchange(
        subject, scope="photos:read photos:write"
    )  # wider than the subject's
    assert (status, body["error"]) == (400, "invalid_scope")
    status, body = await platform.exchange(
        subject, requested_token_type="urn:ietf:params:oauth:token-type:refresh_token"
    )
    assert (status, body["error"]) == (400, "invalid_request")
    # a revoked subject token is worth nothing
    claims = _claims(subject)
    await registry.revoked_tokens.revoke(claims["jti"], datetime.fromtimestamp(claims["exp"], UTC))
    status, body = await platform.exchange(subject)
    assert (status, body["error"]) == (400, "invalid_request")


async def test_revoking_the_users_grant_revokes_what_was_exchanged_from_it(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    platform = await _platform(http, registry, new_client)
    grant_id = str(uuid.uuid4())
    status, body = await platform.exchange(platform.user_token(user, grant_id=grant_id))
    assert status == 200, body
    exchanged = _claims(body["access_token"])
    assert exchanged["grant_id"] == grant_id
    assert not await registry.revoked_tokens.is_revoked(exchanged["jti"], grant_id)
    # the family's live access tokens, as the refresh-token store reports them on revocation
    live = IssuedAccess(exchanged["jti"], datetime.fromtimestamp(exchanged["exp"], UTC))
    await registry.revoked_tokens.revoke_grant(uuid.UUID(grant_id), (live,))
    assert await registry.revoked_tokens.is_revoked(exchanged["jti"], grant_id)


async def test_the_metadata_lists_the_grant(http: TestClient) -> None:
    metadata = await (await http.get("/.well-known/oauth-authorization-server")).json()
    assert GRANT_TYPE in metadata["grant_types_supported"]


async def test_a_clients_own_token_is_not_exchanged_as_if_it_were_a_users(
    http: TestClient, registry: Registry, new_client: ClientFactory
) -> None:
    """A client-credentials token (sub = client_id) addressed to the gateway: exchanging it would
    give the photo API a token it takes for a user's (the review's finding)."""
    platform = await _platform(http, registry, new_client)
    issuer = registry.access_tokens
    own = issuer.sign(
        issuer.prepare(),
        subject=platform.agent.client_id,
        client_id=platform.agent.client_id,
        scope=("photos:read",),
        audience=platform.gateway,
    )
    status, body = await platform.exchange(own)
    assert (status, body["error"]) == (400, "invalid_request")
    assert "not for a user" in body["error_description"]


async def test_an_actor_token_cannot_forge_who_acts(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    """A token the service holds for another user is no actor token: act always names the service."""
    platform = await _platform(http, registry, new_client)
    other = await registry.users.create(f"other-{uuid.uuid4().hex[:8]}", "x")
    status, exchanged = await platform.exchange(platform.user_token(other))
    assert status == 200
    status, body = await platform.exchange(
        platform.user_token(user), actor_token=exchanged["access_token"], actor_token_type=ACCESS
    )
    assert (status, body["error"]) == (400, "invalid_request")
    # the service's own client-credentials token is an actor token: act names the service
    issuer = registry.access_tokens
    own = issuer.sign(
        issuer.prepare(),
        subject=platform.service.client_id,
        client_id=platform.service.client_id,
        scope=("photos:read",),
    )
    status, body = await platform.exchange(
        platform.user_token(user), actor_token=own, actor_token_type=ACCESS
    )
    assert status == 200, body
    assert _claims(body["access_token"])["act"] == {"sub": platform.service.client_id}
