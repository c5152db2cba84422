"""The ``clients`` table, with an in-process cache kept true on every replica.

Client records are read on every token request, so each replica keeps them in memory. A change
made anywhere (CLI, admin, another replica) is published on a Redis channel; every replica's
listener evicts that client. If the subscription drops, the whole cache is cleared when it comes
back, and entries also expire after ``ttl`` seconds as a last resort. Unknown ids are cached too
(briefly), so a flood of made-up client ids does not reach Postgres; ids that cannot be valid are
refused before any lookup, and the cache is bounded (least recently used out first), so no flood
of requests can make it grow.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
from redis.asyncio import Redis

from auth_server.clients import SECRET_METHODS, Client, plausible_client_id
from auth_server.crypto import digest, new_token
from auth_server.stores.audit import AuditLog
from shared.lru import ExpiringLRU

log = logging.getLogger("tessera.clients")

_COLUMNS = (
    "client_id, client_name, secret_hash, redirect_uris, grant_types, scope, token_endpoint_auth_method,"
    " allow_introspection, jwks::text AS jwks, jwks_uri, require_pkce, first_party, response_types,"
    " post_logout_redirect_uris, subject_type, sector_identifier_uri, sector_identifier,"
    " id_token_signed_response_alg, userinfo_signed_response_alg, backchannel_logout_uri,"
    " backchannel_logout_session_required, default_max_age, require_auth_time, logo_uri, client_uri,"
    " policy_uri, tos_uri, status, owner_id, registered_via, description, contact_name, contact_email,"
    " scope_justification, review_note, reviewed_at, pending_changes::text AS pending_changes,"
    " previous_secret_hash, previous_secret_expires_at, secret_issued_at"
)
# the OpenID metadata columns, stored and read under their Client field names
OIDC_FIELDS = (
    "post_logout_redirect_uris",
    "subject_type",
    "sector_identifier_uri",
    "sector_identifier",
    "id_token_signed_response_alg",
    "userinfo_signed_response_alg",
    "backchannel_logout_uri",
    "backchannel_logout_session_required",
    "default_max_age",
    "require_auth_time",
    "logo_uri",
    "client_uri",
    "policy_uri",
    "tos_uri",
)
# the open platform's columns a registration may set (issue 15)
PLATFORM_FIELDS = (
    "status",
    "owner_id",
    "registered_via",
    "description",
    "contact_name",
    "contact_email",
    "scope_justification",
)
# what a developer (or an admin) may change after registration, through the same checks
CHANGEABLE = (
    "client_name",
    "redirect_uris",
    "scope",
    "post_logout_redirect_uris",
    "backchannel_logout_uri",
    "logo_uri",
    "client_uri",
    "policy_uri",
    "tos_uri",
    "description",
    "contact_name",
    "contact_email",
    "scope_justification",
)
_PLATFORM_COLUMNS = (
    *PLATFORM_FIELDS,
    "review_note",
    "reviewed_at",
    "previous_secret_hash",
    "previous_secret_expires_at",
    "secret_issued_at",
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
        allow_introspection=row["allow_introspection"],
        jwks=None if row["jwks"] is None else json.loads(row["jwks"]),
        jwks_uri=row["jwks_uri"],
        require_pkce=row["require_pkce"],
        first_party=row["first_party"],
        registered_response_types=None if row["response_types"] is None else tuple(row["response_types"]),
        **{name: row[name] for name in OIDC_FIELDS if name != "post_logout_redirect_uris"},
        post_logout_redirect_uris=tuple(row["post_logout_redirect_uris"]),
        **{name: row[name] for name in _PLATFORM_COLUMNS},
        pending_changes=None if row["pending_changes"] is None else json.loads(row["pending_changes"]),
    )


class ClientStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        channel: str,
        audit: AuditLog,
        *,
        ttl: float = 300.0,
        max_cached: int = 10_000,
    ) -> None:
        self._pool = pool
        self._audit = audit
        self._redis = redis
        self.channel = channel
        self._ttl = ttl
        # a one-tuple, so that a cached "no such client" differs from "not cached"
        self.cache: ExpiringLRU[str, tuple[Client | None]] = ExpiringLRU(max_cached)

    async def create(
        self,
        *,
        name: str,
        redirect_uris: list[str],
        grant_types: list[str],
        scope: list[str],
        auth_method: str,
        allow_introspection: bool = False,
        jwks: dict[str, Any] | None = None,
        jwks_uri: str | None = None,
        require_pkce: bool = True,
        first_party: bool = False,
        response_types: list[str] | None = None,
        openid: Mapping[str, Any] | None = None,
    ) -> tuple[Client, str | None]:
        """Insert a client; return it with its newly generated secret (``None`` unless a secret method).

        ``openid``: OpenID metadata by :data:`OIDC_FIELDS` name, and the open platform's by
        :data:`PLATFORM_FIELDS` name (absent ones take their defaults).
        """
        secret = new_token() if auth_method in SECRET_METHODS else None
        extra = {name: value for name, value in (openid or {}).items() if value is not None}
        unknown = set(extra) - set(OIDC_FIELDS) - set(PLATFORM_FIELDS)
        if unknown:  # the names become SQL column names below: only the known ones, ever
            raise ValueError(f"not OpenID client metadata: {', '.join(sorted(unknown))}")
        if "post_logout_redirect_uris" in extra:
            extra["post_logout_redirect_uris"] = list(extra["post_logout_redirect_uris"])
        columns = ", ".join(extra)
        placeholders = ", ".join(f"${n}" for n in range(14, 14 + len(extra)))
        row = await self._pool.fetchrow(
            "INSERT INTO clients (client_id, client_name, secret_hash, redirect_uris, grant_types, scope,"
            " token_endpoint_auth_method, allow_introspection, jwks, jwks_uri, require_pkce, first_party,"
            f" response_types{', ' + columns if extra else ''})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13"
            f"{', ' + placeholders if extra else ''}) RETURNING {_COLUMNS}",
            _new_client_id(),
            name,
            None if secret is None else digest(secret),
            redirect_uris,
            grant_types,
            scope,
            auth_method,
            allow_introspection,
            None if jwks is None else json.dumps(jwks),
            jwks_uri,
            require_pkce,
            first_party,
            response_types,
            *extra.values(),
        )
        assert row is not None
        client = _client(row)
        await self._audit.record(
            "client.created",
            client_id=client.client_id,
            grant_types=list(grant_types),
            auth_method=auth_method,
            scope=list(scope),
            require_pkce=require_pkce,
            first_party=first_party,
        )
        await self._changed(client.client_id)
        return client, secret

    async def get(self, client_id: str) -> Client | None:
        """The client, from this replica's cache when fresh."""
        if not plausible_client_id(client_id):
            return None  # never looked up, never cached: a made-up id costs nothing to keep
        cached = self.cache.get(client_id)
        if cached is not None:
            return cached[0]
        client = await self.load(client_id)
        ttl = self._ttl if client is not None else min(self._ttl, 5.0)
        self.cache.put(client_id, (client,), until=time.monotonic() + ttl)
        return client

    async def load(self, client_id: str) -> Client | None:
        """The client, straight from Postgres."""
        if not plausible_client_id(client_id):
            return None
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM clients WHERE client_id = $1", client_id)
        return None if row is None else _client(row)

    async def list(self) -> list[Client]:
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM clients ORDER BY created_at, client_id")
        return [_client(r) for r in rows]

    async def delete(self, client_id: str) -> bool:
        result = await self._pool.execute("DELETE FROM clients WHERE client_id = $1", client_id)
        deleted = bool(result.endswith(" 1"))
        if deleted:
            await self._audit.record("client.deleted", client_id=client_id)
        await self._changed(client_id)
        return deleted

    async def rotate_secret(self, client_id: str, *, overlap: int = 0) -> str | None:
        """Replace a client's secret, on every replica. The old one keeps working for ``overlap``
        seconds (so that a deployment can change over), then never again; 0: it stops at once."""
        secret = new_token()
        result = await self._pool.execute(
            "UPDATE clients SET previous_secret_hash = CASE WHEN $4 > 0 THEN secret_hash END,"
            " previous_secret_expires_at = CASE WHEN $4 > 0 THEN now() + make_interval(secs => $4) END,"
            " secret_hash = $2, updated_at = now()"
            " WHERE client_id = $1 AND token_endpoint_auth_method = ANY($3::text[])",
            client_id,
            digest(secret),
            list(SECRET_METHODS),
            overlap,
        )
        rotated = result.endswith(" 1")
        if rotated:
            await self._audit.record("client.secret_rotated", client_id=client_id, overlap=overlap)
        await self._changed(client_id)
        return secret if rotated else None

    async def issue_first_secret(self, client_id: str) -> str | None:
        """Replace the secret of an approved client whose secret was never handed out, once: of two
        requests at the same moment, one gets the secret and the other ``None``."""
        secret = new_token()
        row = await self._pool.fetchval(
            "UPDATE clients SET secret_hash = $2, secret_issued_at = now(), previous_secret_hash = NULL,"
            " previous_secret_expires_at = NULL, updated_at = now()"
            " WHERE client_id = $1 AND status = 'approved' AND secret_issued_at IS NULL"
            " AND token_endpoint_auth_method = ANY($3::text[]) RETURNING true",
            client_id,
            digest(secret),
            list(SECRET_METHODS),
        )
        await self._changed(client_id)
        return secret if row else None

    async def review(self, client_id: str, status: str, *, note: str | None = None) -> Client | None:
        """Record a review decision: the client's new status and what the developer is told."""
        row = await self._pool.fetchrow(
            "UPDATE clients SET status = $2, review_note = $3, reviewed_at = now(), updated_at = now()"
            f" WHERE client_id = $1 RETURNING {_COLUMNS}",
            client_id,
            status,
            note,
        )
        await self._changed(client_id)
        return None if row is None else _client(row)

    async def set_pending_changes(self, client_id: str, changes: dict[str, Any] | None) -> Client | None:
        """Keep a change that waits for review (``None``: none waits)."""
        row = await self._pool.fetchrow(
            "UPDATE clients SET pending_changes = $2::jsonb, updated_at = now()"
            f" WHERE client_id = $1 RETURNING {_COLUMNS}",
            client_id,
            None if changes is None else json.dumps(changes),
        )
        await self._changed(client_id)
        return None if row is None else _client(row)

    async def change(self, client_id: str, changes: dict[str, Any]) -> Client | None:
        """Set some of a client's registered details (by :data:`CHANGEABLE` name), already
        validated by the caller (``registration.py``); the audit trail records which changed."""
        unknown = set(changes) - set(CHANGEABLE)
        if unknown:  # the names become SQL column names below: only the known ones, ever
            raise ValueError(f"not changeable client details: {', '.join(sorted(unknown))}")
        values = [list(v) if isinstance(v, tuple) else v for v in changes.values()]
        assignments = ", ".join(f"{name} = ${n}" for n, name in enumerate(changes, start=2))
        row = await self._pool.fetchrow(
            f"UPDATE clients SET {assignments + ', ' if changes else ''}updated_at = now()"
            f" WHERE client_id = $1 RETURNING {_COLUMNS}",
            client_id,
            *values,
        )
        if row is not None and changes:
            await self._audit.record("client.changed", client_id=client_id, fields=sorted(changes))
        await self._changed(client_id)
        return None if row is None else _client(row)

    async def owned_by(self, owner_id: uuid.UUID) -> builtins.list[Client]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM clients WHERE owner_id = $1 ORDER BY created_at, client_id", owner_id
        )
        return [_client(r) for r in rows]

    async def update(
        self, client_id: str, *, require_pkce: bool | None = None, first_party: bool | None = None
    ) -> Client | None:
        """Change an operator's settings of a client (``None`` leaves one as it is)."""
        row = await self._pool.fetchrow(
            "UPDATE clients SET require_pkce = coalesce($2, require_pkce),"
            " first_party = coalesce($3, first_party), updated_at = now()"
            # a public client never goes without PKCE
            " WHERE client_id = $1 AND (coalesce($2, true) OR token_endpoint_auth_method <> 'none')"
            f" RETURNING {_COLUMNS}",
            client_id,
            require_pkce,
            first_party,
        )
        if row is None:
            return None
        changes: dict[str, Any] = {"require_pkce": require_pkce, "first_party": first_party}
        await self._audit.record(
            "client.updated", client_id=client_id, **{k: v for k, v in changes.items() if v is not None}
        )
        await self._changed(client_id)
        return _client(row)

    async def _changed(self, client_id: str) -> None:
        self.cache.pop(client_id)
        await self._redis.publish(self.channel, client_id.encode())

    def evict(self, client_id: str | None = None) -> None:
        if client_id is None:
            self.cache.clear()
        else:
            self.cache.pop(client_id)

    async def follow_changes(self, stop: asyncio.Event) -> None:
        """Evict clients changed anywhere until ``stop`` is set; reconnect after outages.

        Polls with a timeout rather than relying on cancellation alone: redis-py can swallow a
        cancellation that lands while it is connecting, and then this loop must still end.
        """
        while not stop.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.evict()  # anything may have changed while we were not listening
                while not stop.is_set():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.evict(message["data"].decode())
            except Exception as exc:
                if stop.is_set():
                    return
                log.warning("client-change subscription lost (%r); retrying", exc)
                self.evict()
                await asyncio.sleep(1)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def _new_client_id() -> str:
    """22 URL-safe random characters (132 bits) that never begin with "-": a command line would
    take such an id for an option (``tessera client delete -abc``)."""
    while (candidate := new_token()[:22]).startswith("-"):
        pass
    return candidate
