"""The ``consents`` table: which scopes a user has granted a client, and until when.

A consent is remembered with the scope the user actually granted (what she ticked on the consent
page, never more than the request asked) and how long she chose it to last (``expires_at``; NULL:
until she revokes it). An expired consent is as good as none: it answers no request silently and
:meth:`ConsentStore.granted` ignores it (issue 15). The account page lists what can act for a user
(:meth:`ConsentStore.apps`): her live consents, and the clients holding live refresh-token families
of hers; "last used" is computed there, from the newest refresh token of those families, so the
token endpoint's hot path writes nothing for it.
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import asyncpg

# a consent counts while it has no end or its end is still ahead
_LIVE = "(expires_at IS NULL OR expires_at > now())"


@dataclass(frozen=True, slots=True)
class Consent:
    user_id: uuid.UUID
    username: str
    client_id: str
    scope: tuple[str, ...]
    granted_at: datetime
    expires_at: datetime | None = None  # None: until revoked


@dataclass(frozen=True, slots=True)
class Remembered:
    """A live consent: the scope it grants, and when it ends (None: until revoked)."""

    scope: frozenset[str]
    expires_at: datetime | None
    # the scopes she allowed per audience (RFC 8707: an API's identifier, or the default audience);
    # empty for a consent from before resource indicators (all of it for the default audience)
    audiences: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def allows(self, audiences: Iterable[str], scope: Iterable[str], default: str) -> bool:
        """Whether she allowed every one of ``scope`` for every one of ``audiences``."""
        granted = self.audiences or {default: self.scope}
        wanted = set(scope)
        return all(wanted <= granted.get(audience, frozenset()) for audience in audiences)


@dataclass(frozen=True, slots=True)
class AppAccess:
    """A client that can act for a user (the account page's row): by her consent, by live refresh
    tokens, or both."""

    client_id: str
    scope: tuple[str, ...]
    since: datetime
    last_used_at: datetime | None
    # when its access ends: the consent's end (None: until revoked); without a consent, when its
    # last refresh-token family ends
    expires_at: datetime | None
    consented: bool
    # the APIs (RFC 8707 resource identifiers) it may get tokens for, besides the general audience
    apis: tuple[str, ...] = ()


class ConsentStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def granted(self, user_id: uuid.UUID, client_id: str) -> frozenset[str]:
        """The scope of the user's live consent to the client (empty: none, or expired)."""
        remembered = await self.remembered(user_id, client_id)
        return frozenset() if remembered is None else remembered.scope

    async def remembered(self, user_id: uuid.UUID, client_id: str) -> Remembered | None:
        """The user's live consent to the client; None if she gave none or it has expired."""
        row = await self._pool.fetchrow(
            "SELECT scope, expires_at, audiences::text AS audiences FROM consents"
            f" WHERE user_id = $1 AND client_id = $2 AND {_LIVE}",
            user_id,
            client_id,
        )
        if row is None:
            return None
        audiences = {name: frozenset(s) for name, s in json.loads(row["audiences"]).items()}
        return Remembered(frozenset(row["scope"]), row["expires_at"], audiences)

    async def grant(
        self,
        user_id: uuid.UUID,
        client_id: str,
        scope: tuple[str, ...],
        *,
        asked: tuple[str, ...] = (),
        lasts: timedelta | None = None,
        audiences: tuple[str, ...] = (),
        default: str = "",
    ) -> datetime | None:
        """Record consent to ``scope`` for ``audiences`` (none: the scope alone, as before resource
        indicators) for ``lasts`` (None: until revoked); return when it ends.

        What the user answered replaces what she answered before for the scopes ``asked`` (a scope
        she unticked now is no longer granted), for the audiences she answered for; what a live
        earlier consent allowed otherwise stays allowed. The whole consent then lasts as chosen now."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT audiences::text AS audiences, scope, {_LIVE} AS live FROM consents"
                " WHERE user_id = $1 AND client_id = $2 FOR UPDATE",
                user_id,
                client_id,
            )
            kept: dict[str, list[str]] = {}
            if row is not None and row["live"]:
                kept = json.loads(row["audiences"])
                if not kept and audiences:
                    # a consent from before resource indicators: all of it for the default audience
                    kept = {default: list(row["scope"])}
            for audience in audiences:
                earlier = set(kept.get(audience, ())) - set(asked)
                kept[audience] = sorted(earlier | set(scope))
            ends: datetime | None = await conn.fetchval(
                "INSERT INTO consents AS c (user_id, client_id, scope, expires_at, audiences)"
                " VALUES ($1, $2, $3, now() + $5::interval, $6::jsonb)"
                " ON CONFLICT (user_id, client_id) DO UPDATE SET"
                " scope = ARRAY(SELECT s FROM unnest(CASE WHEN c.expires_at IS NULL OR c.expires_at > now()"
                " THEN c.scope ELSE '{}'::text[] END) AS kept(s) WHERE s <> ALL($4::text[])"
                " UNION SELECT unnest(EXCLUDED.scope) ORDER BY 1),"
                " audiences = EXCLUDED.audiences, granted_at = now(), expires_at = EXCLUDED.expires_at"
                " RETURNING expires_at",
                user_id,
                client_id,
                sorted(scope),
                list(asked),
                lasts,
                json.dumps(kept, sort_keys=True),
            )
        return ends

    async def list(self, *, user_id: uuid.UUID | None = None, client_id: str | None = None) -> list[Consent]:
        """Every remembered consent (expired ones too), or those of one user and/or one client."""
        rows = await self._pool.fetch(
            "SELECT c.user_id, u.username, c.client_id, c.scope, c.granted_at, c.expires_at"
            " FROM consents c JOIN users u USING (user_id)"
            " WHERE ($1::uuid IS NULL OR c.user_id = $1) AND ($2::text IS NULL OR c.client_id = $2)"
            " ORDER BY u.username, c.client_id",
            user_id,
            client_id,
        )
        return [Consent(**{**dict(row), "scope": tuple(row["scope"])}) for row in rows]

    async def revoke(self, user_id: uuid.UUID, client_id: str) -> bool:
        """Forget a consent: the next authorization request asks the user again."""
        deleted = await self._pool.fetchval(
            "DELETE FROM consents WHERE user_id = $1 AND client_id = $2 RETURNING true", user_id, client_id
        )
        return deleted is True

    async def apps(self, user_id: uuid.UUID, *, family_lifetime: timedelta) -> builtins.list[AppAccess]:
        """Every client that can act for the user: a live consent, or a live (unrevoked, unexpired)
        refresh-token family of hers; ``family_lifetime`` bounds families recorded without an end."""
        async with self._pool.acquire() as conn:
            consents = await conn.fetch(
                "SELECT client_id, scope, granted_at, expires_at, audiences::text AS audiences FROM consents"
                f" WHERE user_id = $1 AND {_LIVE}",
                user_id,
            )
            families = await conn.fetch(
                "SELECT f.client_id, min(f.created_at) AS since,"
                " max(coalesce(f.expires_at, f.created_at + $2::interval)) AS ends_at,"
                " array_agg(DISTINCT s) AS scope"
                " FROM refresh_token_families f CROSS JOIN LATERAL unnest(f.scope) AS s"
                " WHERE f.subject = $1 AND f.revoked_at IS NULL"
                " AND coalesce(f.expires_at, f.created_at + $2::interval) > now()"
                " GROUP BY f.client_id",
                str(user_id),
                family_lifetime,
            )
            # last used: when the newest refresh token of any of her families with it was issued
            used = await conn.fetch(
                "SELECT f.client_id, max(t.created_at) AS last_used_at FROM refresh_token_families f"
                " JOIN refresh_tokens t USING (family_id) WHERE f.subject = $1 GROUP BY f.client_id",
                str(user_id),
            )
            # the APIs its live families were granted tokens for (RFC 8707)
            family_apis = await conn.fetch(
                "SELECT f.client_id, array_agg(DISTINCT r ORDER BY r) AS apis"
                " FROM refresh_token_families f CROSS JOIN LATERAL unnest(f.resources) AS r"
                " WHERE f.subject = $1 AND f.revoked_at IS NULL GROUP BY f.client_id",
                str(user_id),
            )
        apis = {row["client_id"]: set(row["apis"]) for row in family_apis}
        for row in consents:
            apis.setdefault(row["client_id"], set()).update(json.loads(row["audiences"]))
        merged = _merge(consents, families, {row["client_id"]: row["last_used_at"] for row in used})
        return [replace(app, apis=tuple(sorted(apis.get(app.client_id, ())))) for app in merged]


def _merge(
    consents: list[asyncpg.Record], families: list[asyncpg.Record], last_used: dict[str, datetime]
) -> list[AppAccess]:
    """One row per client: its consent's terms when it has one, else its families'."""
    found: dict[str, AppAccess] = {}
    for row in families:
        found[row["client_id"]] = AppAccess(
            client_id=row["client_id"],
            scope=tuple(sorted(row["scope"])),
            since=row["since"],
            last_used_at=last_used.get(row["client_id"]),
            expires_at=row["ends_at"],
            consented=False,
        )
    for row in consents:
        found[row["client_id"]] = AppAccess(
            client_id=row["client_id"],
            scope=tuple(row["scope"]),
            since=row["granted_at"],
            last_used_at=last_used.get(row["client_id"]),
            expires_at=row["expires_at"],
            consented=True,
        )
    return sorted(found.values(), key=lambda app: app.since, reverse=True)
