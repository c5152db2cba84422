"""The audit trail in Postgres: security events are recorded, and never with a secret."""

from __future__ import annotations

import json

from aiohttp.test_utils import TestClient

from auth_server import keys
from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.support.flow import authorize_params, basic, obtain_code
from tests.support.servers import PASSWORD, ClientFactory


async def test_client_lifecycle_is_audited(registry: Registry, new_client: ClientFactory) -> None:
    client, secret = await new_client(grant_types=["client_credentials"], scope="warehouse:stats")
    assert secret
    await registry.clients.rotate_secret(client.client_id)
    await registry.clients.delete(client.client_id)
    events = [e for e in await registry.audit.recent(limit=500) if e.client_id == client.client_id]
    assert [e.event for e in reversed(events)] == [
        "client.created",
        "client.secret_rotated",
        "client.deleted",
    ]
    assert events[-1].details["grant_types"] == ["client_credentials"]
    assert secret not in json.dumps([e.details for e in events])


async def test_consent_reuse_lockout_and_key_rotation_are_audited(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    client, secret = await new_client()
    assert secret
    await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD)
    (consent,) = [
        e for e in await registry.audit.recent("consent.granted") if e.client_id == client.client_id
    ]
    assert consent.subject == user.subject and consent.details["scope"] == ["photos:read"] and consent.ip

    password_client, password_secret = await new_client(grant_types=["password", "refresh_token"])
    assert password_secret
    auth = basic(password_client.client_id, password_secret)
    tokens = await (
        await http.post(
            "/oauth2/token",
            data={"grant_type": "password", "username": user.username, "password": PASSWORD},
            headers=auth,
        )
    ).json()
    for _ in range(2):
        await http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers=auth,
        )
    reuse = [
        e
        for e in await registry.audit.recent("refresh_token.reuse_detected")
        if e.client_id == password_client.client_id
    ]
    assert len(reuse) == 1

    for _ in range(registry.settings.login_max_failures):
        await http.post(
            "/oauth2/token",
            data={"grant_type": "password", "username": user.username, "password": "wrong-password"},
            headers=auth,
        )
    locked = [
        e
        for e in await registry.audit.recent("login.locked_out")
        if e.details.get("username") == user.username
    ]
    assert len(locked) == 1

    rotated = await keys.rotate(registry, prepublication=3600)
    (event,) = [e for e in await registry.audit.recent("key.rotated") if e.details["kid"] == rotated.kid]
    assert event.details["alg"] == "ES256"
    everything = json.dumps([e.details for e in await registry.audit.recent(limit=1000)])
    for secret_value in (PASSWORD, secret, password_secret, tokens["refresh_token"], tokens["access_token"]):
        assert secret_value not in everything
