"""The ``clients`` table, with an in-process cache kept true on every replica.

Client records are read on every token request, so each replica keeps them in memory. A change
made anywhere (CLI, admin, another replica) is published on a Redis channel; every replica's
listener evicts that client. If the subscription drops, the whole cache is cleared when it comes
back, and entries also expire after ``ttl`` seconds as a last resort. Unknown ids are cached too
(briefly), so a flood of made-up client ids does not reach Postgres; ids that cannot be valid are
refused before any lookup, and the cache is bounded (least recently used out first), so no flood
of requests can make it grow.

Clients that their client ID metadata document describes (:mod:`auth_server.client_documents`) are
kept apart until a user allows one: in :attr:`ClientStore.documents`, a bounded cache of this
replica, for as long as the document's HTTP caching allows; only then are they stored
(:meth:`ClientStore.save_described`), and a later fetch that finds the document changed updates the
row (:meth:`ClientStore.refresh_described`). Their ids are URLs, looked up only while the feature is
on (``url_ids``).
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

from auth_server.clients import SECRET_METHODS, VIA_METADATA_DOCUMENT, Client, plausible_client_id
from auth_server.crypto import digest, new_token
from auth_server.stores.audit import AuditLog
from shared.lru import ExpiringLRU

log = logging.getLogger("tessera.clients")

_COLUMNS = (
    "client_id, client_name, secret_hash, redirect_uris, grant_types, scope, token_endpoint_auth_method,"
    " allow_introspection, jwks::text AS jwks, jwks_uri, require_pkce, first_party, response_types,"
    " post_logout_redirect_uris, subject_type, sector_identifier_uri, sector_identifier,"
    " id_token_signed_response_alg, userinfo_signed_response_alg, backchannel_logout_uri,"
    " backchannel_logout_session_required, default_max_age, default_acr_values, require_auth_time,"
    " logo_uri, client_uri,"
    " policy_uri, tos_uri, status, owner_id, registered_via, description, contact_name, contact_email,"
    " scope_justification, review_note, reviewed_at, pending_changes::text AS pending_changes,"
    " previous_secret_hash, previous_secret_expires_at, secret_issued_at,"
    " require_pushed_authorization_requests, dpop_bound_access_tokens, tessera_profile"
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
    "default_acr_values",
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
# OAuth extensions' client metadata, stored and read under their Client field names (RFC 9126 §6)
EXTENSION_FIELDS = (
    "require_pushed_authorization_requests",
    "dpop_bound_access_tokens",  # RFC 9449 §5.2
    "tessera_profile",  # the client's security profile (auth_server/profiles.py)
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
# what a client ID metadata document says, by Client field name: what a fresh fetch brings up to date
DESCRIBED = (
    "client_name",
    "redirect_uris",
    "grant_types",
    "scope",
    "token_endpoint_auth_method",
    "jwks",
    "jwks_uri",
    "require_pkce",
    "registered_response_types",
    *OIDC_FIELDS,
)
# what a document may ask of itself beyond that: only ever stricter, so a later fetch turns them on,
# never off (an operator may: tessera client update); a security profile it may not ask for
DOCUMENT_FLAGS = ("require_pushed_authorization_requests", "dpop_bound_access_tokens")
# what putting a client under a security profile sets besides the profile (auth_server/profiles.py)
PROFILE_IMPLIED = (
    "require_pushed_authorization_requests",
    "dpop_bound_access_tokens",
    "registered_response_types",
    "id_token_signed_response_alg",
)
_COLUMN_OF = {"registered_response_types": "response_types"}  # the Client field names that differ
_ARRAY_FIELDS = ("post_logout_redirect_uris", "default_acr_values")  # text[] columns, tuples in Client
_JSON_FIELDS = ("jwks",)
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
        **{name: row[name] for name in OIDC_FIELDS if name not in _ARRAY_FIELDS},
        post_logout_redirect_uris=tuple(row["post_logout_redirect_uris"]),
        default_acr_values=None if row["default_acr_values"] is None else tuple(row["default_acr_values"]),
        **{name: row[name] for name in _PLATFORM_COLUMNS},
        **{name: row[name] for name in EXTENSION_FIELDS},
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
        url_ids: bool = False,
        max_documents: int = 1_000,
    ) -> None:
        self._pool = pool
        self._audit = audit
        self._redis = redis
        self.channel = channel
        self._ttl = ttl
        # a one-tuple, so that a cached "no such client" differs from "not cached"
        self.cache: ExpiringLRU[str, tuple[Client | None]] = ExpiringLRU(max_cached)
        # whether URLs are client ids (client ID metadata documents are on)
        self.url_ids = url_ids
        # the clients their metadata documents describe, by URL, each until its document's cache
        # lifetime ends (on time.monotonic's scale): never stored before a user allows one
        self.documents: ExpiringLRU[str, Client] = ExpiringLRU(max_documents)

    def plausible(self, client_id: str) -> bool:
        """Whether ``client_id`` could name a client here (:func:`plausible_client_id`)."""
        return plausible_client_id(client_id, urls=self.url_ids)

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
        client_id: str | None = None,
    ) -> tuple[Client, str | None]:
        """Insert a client; return it with its newly generated secret (``None`` unless a secret method).

        ``openid``: OpenID metadata by :data:`OIDC_FIELDS` name, the open platform's by
        :data:`PLATFORM_FIELDS` name and OAuth extensions' by :data:`EXTENSION_FIELDS` name (absent
        ones take their defaults). ``client_id``: the id, when
        it is not Tessera's to choose (a client ID metadata document's URL); else a new random one.
        """
        secret = new_token() if auth_method in SECRET_METHODS else None
        extra = {name: value for name, value in (openid or {}).items() if value is not None}
        unknown = set(extra) - set(OIDC_FIELDS) - set(PLATFORM_FIELDS) - set(EXTENSION_FIELDS)
        if unknown:  # the names become SQL column names below: only the known ones, ever
            raise ValueError(f"not OpenID client metadata: {', '.join(sorted(unknown))}")
        for field in _ARRAY_FIELDS:
            if field in extra:
                extra[field] = list(extra[field])
        columns = ", ".join(extra)
        placeholders = ", ".join(f"${n}" for n in range(14, 14 + len(extra)))
        row = await self._pool.fetchrow(
            "INSERT INTO clients (client_id, client_name, secret_hash, redirect_uris, grant_types, scope,"
            " token_endpoint_auth_method, allow_introspection, jwks, jwks_uri, require_pkce, first_party,"
            f" response_types{', ' + columns if extra else ''})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13"
            f"{', ' + placeholders if extra else ''}) RETURNING {_COLUMNS}",
            _new_client_id() if client_id is None else client_id,
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
        if not self.plausible(client_id):
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
        if not self.plausible(client_id):
            return None
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM clients WHERE client_id = $1", client_id)
        return None if row is None else _client(row)

    async def save_described(self, described: Client) -> Client | None:
        """Store a client its metadata document describes (a user has just allowed it), or bring
        its row up to date; the row, ``None`` if the id belongs to a client registered otherwise.

        The client is approved (nobody reviews it: the user who allowed it read who it is); a row
        that exists keeps its status, so an operator's suspension holds whatever the document says.
        """
        if await self.load(described.client_id) is None:
            try:
                client, _ = await self.create(
                    client_id=described.client_id,
                    name=described.client_name,
                    redirect_uris=list(described.redirect_uris),
                    grant_types=list(described.grant_types),
                    scope=list(described.scope),
                    auth_method=described.token_endpoint_auth_method,
                    jwks=described.jwks,
                    jwks_uri=described.jwks_uri,
                    require_pkce=described.require_pkce,
                    response_types=None
                    if described.registered_response_types is None
                    else list(described.registered_response_types),
                    openid={
                        **{name: getattr(described, name) for name in OIDC_FIELDS},
                        **{name: getattr(described, name) for name in DOCUMENT_FLAGS},
                        "status": "approved",
                        "registered_via": VIA_METADATA_DOCUMENT,
                    },
                )
                return client
            except asyncpg.UniqueViolationError:
                pass  # another request stored it first: bring that row up to date instead
        return await self.refresh_described(described)

    async def refresh_described(self, described: Client) -> Client | None:
        """Bring the row of a client its metadata document describes up to date with what a fresh
        fetch of the document says (:data:`DESCRIBED`); the row as it is now, ``None`` if there is
        none or it belongs to a client registered otherwise. Nothing is written if nothing changed."""
        current = await self.load(described.client_id)
        if current is None or not current.from_metadata_document:
            return None
        changed = [name for name in DESCRIBED if getattr(current, name) != getattr(described, name)]
        # turned on by the document, never off
        changed += [name for name in DOCUMENT_FLAGS if getattr(described, name) > getattr(current, name)]
        if not changed:
            return current
        values = [_column_value(name, getattr(described, name)) for name in changed]
        assignments = ", ".join(
            f"{_COLUMN_OF.get(name, name)} = ${n}{'::jsonb' if name in _JSON_FIELDS else ''}"
            for n, name in enumerate(changed, start=2)
        )
        row = await self._pool.fetchrow(
            f"UPDATE clients SET {assignments}, updated_at = now()"
            f" WHERE client_id = $1 AND registered_via = '{VIA_METADATA_DOCUMENT}' RETURNING {_COLUMNS}",
            described.client_id,
            *values,
        )
        await self._changed(described.client_id)
        if row is None:
            return None
        await self._audit.record(
            "client.changed",
            client_id=described.client_id,
            fields=sorted(_COLUMN_OF.get(name, name) for name in changed),
            via=VIA_METADATA_DOCUMENT,
        )
        return _client(row)

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
        self,
        client_id: str,
        *,
        require_pkce: bool | None = None,
        first_party: bool | None = None,
        require_pushed_authorization_requests: bool | None = None,
        dpop_bound_access_tokens: bool | None = None,
    ) -> Client | None:
        """Change an operator's settings of a client (``None`` leaves one as it is)."""
        row = await self._pool.fetchrow(
            "UPDATE clients SET require_pkce = coalesce($2, require_pkce),"
            " first_party = coalesce($3, first_party),"
            " require_pushed_authorization_requests = coalesce($4, require_pushed_authorization_requests),"
            " dpop_bound_access_tokens = coalesce($5, dpop_bound_access_tokens),"
            " updated_at = now()"
            # a public client never goes without PKCE
            " WHERE client_id = $1 AND (coalesce($2, true) OR token_endpoint_auth_method <> 'none')"
            f" RETURNING {_COLUMNS}",
            client_id,
            require_pkce,
            first_party,
            require_pushed_authorization_requests,
            dpop_bound_access_tokens,
        )
        if row is None:
            return None
        changes: dict[str, Any] = {
            "require_pkce": require_pkce,
            "first_party": first_party,
            "require_pushed_authorization_requests": require_pushed_authorization_requests,
            "dpop_bound_access_tokens": dpop_bound_access_tokens,
        }
        await self._audit.record(
            "client.updated", client_id=client_id, **{k: v for k, v in changes.items() if v is not None}
        )
        await self._changed(client_id)
        return _client(row)

    async def set_profile(
        self, client_id: str, profile: str | None, implied: Mapping[str, Any] | None = None
    ) -> Client | None:
        """Put a client under a security profile (``None``: take it out), with the settings the
        profile implies (by :data:`PROFILE_IMPLIED` name), already validated by the caller
        (``auth_server/profiles.py``). Taking a client out changes nothing else: what it implied
        stays set until an operator turns it off."""
        settings = dict(implied or {})
        unknown = set(settings) - set(PROFILE_IMPLIED)
        if unknown:  # the names become SQL column names below: only the known ones, ever
            raise ValueError(f"not settings a profile implies: {', '.join(sorted(unknown))}")
        assignments = "".join(
            f", {_COLUMN_OF.get(name, name)} = ${n}" for n, name in enumerate(settings, start=3)
        )
        row = await self._pool.fetchrow(
            f"UPDATE clients SET tessera_profile = $2{assignments}, updated_at = now()"
            f" WHERE client_id = $1 RETURNING {_COLUMNS}",
            client_id,
            profile,
            *(_column_value(name, value) for name, value in settings.items()),
        )
        if row is None:
            return None
        await self._audit.record(
            "client.updated", client_id=client_id, tessera_profile=profile, implied=sorted(settings)
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


def _column_value(field: str, value: Any) -> Any:
    """A :class:`Client` field's value as its column takes it."""
    if field in _JSON_FIELDS:
        return None if value is None else json.dumps(value)
    return list(value) if isinstance(value, tuple) else value


def _new_client_id() -> str:
    """22 URL-safe random characters (132 bits) that never begin with "-": a command line would
    take such an id for an option (``tessera client delete -abc``)."""
    while (candidate := new_token()[:22]).startswith("-"):
        pass
    return candidate
