"""Migrations and the clients and users the soak's load acts as, created through the stores.

The stores are the same code ``tessera client create`` and ``tessera user create`` call; using
them directly spares a process start per record and hands back the secrets as values.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from auth_server.commands import open_registry
from auth_server.crypto import hash_password
from auth_server.registry import Registry
from auth_server.schema import MIGRATIONS, SCHEMA
from auth_server.settings import Settings
from shared import db
from tests.support.flow import REDIRECT_URI, basic

PASSWORD = "soak test password, long enough"


@dataclass(frozen=True)
class Credentials:
    client_id: str
    secret: str

    @property
    def basic(self) -> dict[str, str]:
        return basic(self.client_id, self.secret)


@dataclass(frozen=True)
class Seed:
    partner: Credentials  # client_credentials (B2B)
    introspector: Credentials  # a resource server allowed to introspect
    first_party: Credentials  # password + refresh_token
    printer: Credentials  # authorization_code (PKCE) + refresh_token, a confidential web client
    usernames: tuple[str, ...]


async def migrate_and_seed(settings: Settings, users: int) -> Seed:
    assert settings.database_url is not None
    await db.migrate(settings.database_url, SCHEMA, MIGRATIONS)
    async with open_registry(settings) as registry:
        return Seed(
            partner=await _client(registry, "Soak partner", ["client_credentials"], ["warehouse:stats"]),
            introspector=await _client(
                registry, "Soak resource server", ["client_credentials"], ["photos:read"], introspect=True
            ),
            first_party=await _client(
                registry, "Soak first-party app", ["password", "refresh_token"], ["photos:read"]
            ),
            printer=await _client(
                registry,
                "Soak photo printer",
                ["authorization_code", "refresh_token"],
                ["photos:read", "photos:write"],
                redirect_uris=[REDIRECT_URI],
            ),
            usernames=await _users(registry, users),
        )


async def _client(
    registry: Registry,
    name: str,
    grant_types: list[str],
    scope: list[str],
    *,
    introspect: bool = False,
    redirect_uris: list[str] | None = None,
) -> Credentials:
    client, secret = await registry.clients.create(
        name=name,
        redirect_uris=redirect_uris or [],
        grant_types=grant_types,
        scope=scope,
        auth_method="client_secret_basic",
        allow_introspection=introspect,
    )
    assert secret is not None
    return Credentials(client.client_id, secret)


async def _users(registry: Registry, count: int) -> tuple[str, ...]:
    password_hash = await asyncio.to_thread(hash_password, PASSWORD)  # one hash: argon2id is slow on purpose
    names = []
    for n in range(count):
        user = await registry.users.create(f"soak-user-{n}", password_hash)
        names.append(user.username)
    return tuple(names)
