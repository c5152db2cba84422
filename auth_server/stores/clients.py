"""The ``clients`` table."""

from __future__ import annotations

import asyncpg

from auth_server.clients import Client
from auth_server.crypto import digest, new_token

_COLUMNS = (
    "client_id, client_name, secret_hash, redirect_uris, grant_types, scope, token_endpoint_auth_method"
)


def _client(row: asyncpg.Record) -> Client:
    return Client(
        client_id=row["client_id"],
        client_name=row["client_name"],
        secret_hash=row["secret_hash"],
        redirect_uris=tuple(row["redirect_uris"]),
        grant_types=tuple(row["grant_types"]),
        scope=tuple(row["scope"]),
        token_endpoint_auth_method=row["token_endpoint_auth_method"],
    )


class ClientStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self,
        *,
        name: str,
        redirect_uris: list[str],
        grant_types: list[str],
        scope: list[str],
        auth_method: str,
    ) -> tuple[Client, str | None]:
        """Insert a client; return it with its newly generated secret (``None`` for public clients)."""
        secret = None if auth_method == "none" else new_token()
        row = await self._pool.fetchrow(
            f"INSERT INTO clients ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}",
            new_token()[:22],
            name,
            None if secret is None else digest(secret),
            redirect_uris,
            grant_types,
            scope,
            auth_method,
        )
        assert row is not None
        return _client(row), secret

    async def get(self, client_id: str) -> Client | None:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM clients WHERE client_id = $1", client_id)
        return None if row is None else _client(row)

    async def list(self) -> list[Client]:
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM clients ORDER BY created_at, client_id")
        return [_client(r) for r in rows]

    async def delete(self, client_id: str) -> bool:
        result = await self._pool.execute("DELETE FROM clients WHERE client_id = $1", client_id)
        return bool(result.endswith(" 1"))

    async def rotate_secret(self, client_id: str) -> str | None:
        """Replace a confidential client's secret; the old one stops working at once."""
        secret = new_token()
        result = await self._pool.execute(
            "UPDATE clients SET secret_hash = $2, updated_at = now()"
            " WHERE client_id = $1 AND token_endpoint_auth_method <> 'none'",
            client_id,
            digest(secret),
        )
        return secret if result.endswith(" 1") else None
