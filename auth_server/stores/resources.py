"""The ``resources`` table: the APIs this server issues access tokens for (RFC 8707, RFC 8693).

An operator registers each API once (``tessera resource create``): its identifier (an absolute URI,
the ``aud`` of its tokens), a name, the scopes that belong to it, and optionally its service client
(the API's own client, which may exchange tokens addressed to the API for tokens to other APIs).
The rules that use them are in :mod:`auth_server.resources`.

Resources are read whenever a request names one, so each replica remembers them briefly
(``ttl`` seconds, bounded): a change made elsewhere takes effect on every replica within ``ttl``.
"""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.lru import ExpiringLRU


@dataclass(frozen=True, slots=True)
class Resource:
    identifier: str
    name: str
    scopes: tuple[str, ...]
    # the API's own client: it may exchange tokens addressed to this API (RFC 8693)
    service_client_id: str | None = None
    created_at: datetime | None = None


def _resource(row: asyncpg.Record) -> Resource:
    return Resource(
        identifier=row["identifier"],
        name=row["name"],
        scopes=tuple(row["scopes"]),
        service_client_id=row["service_client_id"],
        created_at=row["created_at"],
    )


_COLUMNS = "identifier, name, scopes, service_client_id, created_at"


class ResourceExists(Exception):
    """A resource with this identifier is registered already."""


class UnknownServiceClient(Exception):
    """The service client named is not registered."""


class ResourceStore:
    def __init__(self, pool: asyncpg.Pool, *, ttl: float = 30.0, max_entries: int = 1_000) -> None:
        self._pool = pool
        self._ttl = ttl
        # misses are remembered too, as (None,): callers look up only well-formed identifiers
        self._cache: ExpiringLRU[str, tuple[Resource | None]] = ExpiringLRU(max_entries)

    async def get(self, identifier: str) -> Resource | None:
        cached = self._cache.get(identifier)
        if cached is not None:
            return cached[0]
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM resources WHERE identifier = $1", identifier)
        found = None if row is None else _resource(row)
        self._cache.put(identifier, (found,), until=time.monotonic() + self._ttl)
        return found

    async def create(
        self,
        identifier: str,
        name: str,
        scopes: tuple[str, ...],
        service_client_id: str | None = None,
    ) -> Resource:
        try:
            row = await self._pool.fetchrow(
                f"INSERT INTO resources (identifier, name, scopes, service_client_id)"
                f" VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}",
                identifier,
                name,
                list(dict.fromkeys(scopes)),
                service_client_id,
            )
        except asyncpg.UniqueViolationError:
            raise ResourceExists(identifier) from None
        except asyncpg.ForeignKeyViolationError:
            raise UnknownServiceClient(service_client_id) from None
        assert row is not None
        self._cache.pop(identifier)
        return _resource(row)

    async def list(self) -> builtins.list[Resource]:
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM resources ORDER BY identifier")
        return [_resource(row) for row in rows]

    async def delete(self, identifier: str) -> bool:
        deleted = await self._pool.fetchval(
            "DELETE FROM resources WHERE identifier = $1 RETURNING true", identifier
        )
        self._cache.pop(identifier)
        return deleted is True
