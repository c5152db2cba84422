"""The ``refresh_token_families`` and ``refresh_tokens`` tables: rotation and reuse detection.

RFC 9700 §4.14.2: every use of a refresh token returns a new one and retires the old; presenting a
retired token again revokes the whole family — every token descended from the same grant. What a
presented token gets is decided by :class:`auth_server.refresh_rotation.RotationPolicy` (the
registry hands it over); this store carries the decision out. Rotation is one transaction that
locks the presented row, so of two concurrent uses exactly one wins and the other is seen as a
reuse.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import asyncpg

from auth_server.crypto import digest, new_token
from auth_server.issued import IssuedAccess
from auth_server.refresh_rotation import (
    AudienceRule,
    Narrowing,
    Presented,
    Refuse,
    Rejection,
    Rotate,
    RotationPolicy,
)
from shared import db
from shared.errors import InvalidScope, InvalidTarget


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """What a refresh token stands for: one family's client, subject and granted scope."""

    family_id: uuid.UUID
    client_id: str
    subject: str
    scope: tuple[str, ...]
    auth_time: datetime | None
    # the resources the grant covers (RFC 8707); none: its tokens have the default audience
    resources: tuple[str, ...] = ()
    # the DPoP key its refresh tokens are bound to (RFC 9449 §5, a public client's); None: none
    dpop_jkt: str | None = None


@dataclass(frozen=True, slots=True)
class RefreshTokenInfo:
    grant: RefreshGrant
    issued_at: datetime
    expires_at: datetime
    active: bool


@dataclass(frozen=True, slots=True)
class Rotated:
    grant: RefreshGrant
    refresh_token: str
    # the access token's scope: requested (or granted) within the client's current scope
    scope: tuple[str, ...]
    # the access token's audience (RFC 8707)
    audience: str
    # access tokens issued with tokens this rotation retired without their holder seeing them (grace)
    retired_access: tuple[IssuedAccess, ...] = ()


@dataclass(frozen=True, slots=True)
class Refused:
    reason: Rejection
    # the family revoked by this refusal, and its access tokens still live, for the caller to deny-list
    family_id: uuid.UUID | None = None
    revoked_access: tuple[IssuedAccess, ...] = ()


# When a family ends: its own bound, or (families from before it was recorded) its start plus the
# configured lifetime, passed as the query's $2.
_FAMILY_ENDS = "coalesce(f.expires_at, f.created_at + $2::interval)"


class RefreshTokenStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl: int,
        policy: RotationPolicy,
        family_lifetime: int = 30 * 24 * 3600,
    ) -> None:
        self._pool = pool
        self._ttl = timedelta(seconds=ttl)
        self._policy = policy
        # however often a family is used, it ends this long after its grant (then: sign in again)
        self._lifetime = timedelta(seconds=family_lifetime)

    async def issue(
        self,
        *,
        client_id: str,
        subject: str,
        scope: tuple[str, ...],
        auth_time: datetime | None,
        access: IssuedAccess,
        ends_at: datetime | None = None,
        resources: tuple[str, ...] = (),
        dpop_jkt: str | None = None,
    ) -> tuple[str, uuid.UUID]:
        """Start a new family for a fresh grant; return its first refresh token and the family id.

        The family ends after the configured lifetime, or at ``ends_at`` if that is sooner (the
        grant's end the user chose, issue 15): never later than the lifetime allows. ``dpop_jkt``:
        the DPoP key its tokens are bound to (RFC 9449 §5)."""
        token, family_id = new_token(), uuid.uuid4()
        # one statement, so one round trip and atomic: the family and its first token
        await self._pool.execute(
            "WITH family AS ("
            " INSERT INTO refresh_token_families"
            " (family_id, client_id, subject, scope, auth_time, expires_at, resources, dpop_jkt)"
            " VALUES ($1, $2, $3, $4, $5, least(now() + $10::interval, $11::timestamptz), $12, $13))"
            " INSERT INTO refresh_tokens (token_hash, family_id, expires_at, access_jti, access_expires_at)"
            " VALUES ($6, $1, least(now() + $7::interval, now() + $10::interval, $11::timestamptz), $8, $9)",
            family_id,
            client_id,
            subject,
            list(scope),
            auth_time,
            digest(token),
            self._ttl,
            access.jti,
            access.expires_at,
            self._lifetime,
            ends_at,
            list(resources),
            dpop_jkt,
        )
        return token, family_id

    async def rotate(
        self,
        token: str,
        *,
        client_id: str,
        access: IssuedAccess,
        requested_scope: tuple[str, ...] | None,
        client_scope: tuple[str, ...],
        audience: AudienceRule,
        narrow: Narrowing | None = None,
        dpop_jkt: str | None = None,
        rotate: bool = True,
    ) -> Rotated | Refused:
        """Exchange ``token`` for a successor in one transaction, or say why not.

        The policy decides on the locked row (see :mod:`auth_server.refresh_rotation`); ``access``
        is the access token to be issued with the successor; ``dpop_jkt``: the key of the DPoP
        proof the request came with (None: none). ``rotate``: False for a client whose refresh
        tokens stay the same (FAPI 2.0): the token is kept, the new access token recorded on it.
        ``narrow`` takes the decided scope down to what
        the decided audience's API takes, before the row changes: a refusal leaves the token as it was.
        """
        async with db.connection(self._pool) as conn:
            async with conn.transaction():
                row = await conn.fetchrow(
                    "SELECT t.family_id, t.expires_at, t.rotated_at, t.successor, f.client_id, f.subject,"
                    " f.scope, f.resources, f.auth_time, f.revoked_at, f.dpop_jkt, clock_timestamp() AS now,"
                    f" {_FAMILY_ENDS} AS family_expires_at"
                    " FROM refresh_tokens t JOIN refresh_token_families f USING (family_id)"
                    # The share lock on the family makes a concurrent revoke_family wait for this
                    # rotation, so the access token issued here is on the list it deny-lists.
                    " WHERE t.token_hash = $1 FOR UPDATE OF t FOR SHARE OF f",
                    digest(token),
                    self._lifetime,
                )
                if row is None:
                    return Refused(Rejection.UNKNOWN)
                presented = Presented(
                    client_id=row["client_id"],
                    scope=tuple(row["scope"]),
                    resources=tuple(row["resources"]),
                    revoked=row["revoked_at"] is not None,
                    rotated_at=row["rotated_at"],
                    expires_at=min(row["expires_at"], row["family_expires_at"]),
                    now=row["now"],
                    dpop_jkt=row["dpop_jkt"],
                )
                decision = self._policy.decide(
                    presented,
                    client_id=client_id,
                    requested_scope=requested_scope,
                    client_scope=client_scope,
                    audience=audience,
                    dpop_jkt=dpop_jkt,
                )
                if isinstance(decision, Rotate) and narrow is not None:
                    try:
                        decision = replace(decision, scope=await narrow(decision.audience, decision.scope))
                    except InvalidTarget:
                        return Refused(Rejection.TARGET)
                    except InvalidScope:
                        return Refused(Rejection.SCOPE_EXCEEDED)
                if isinstance(decision, Rotate) and not rotate:
                    return await self._keep_row(conn, token, row, access, decision)
                if isinstance(decision, Rotate):
                    rotated = await self._rotate_row(conn, token, row, access, decision)
                    if rotated is not None:
                        return rotated
                    decision = self._policy.successor_used()
                if isinstance(decision, Refuse):
                    return Refused(decision.reason)
            # A reuse: revoke the family, committed although the request fails.
            revoked = await self.revoke_family(row["family_id"], "refresh token reused", conn=conn)
            return Refused(Rejection.REUSED, row["family_id"], revoked)

    async def _keep_row(
        self,
        conn: asyncpg.Connection,
        token: str,
        row: asyncpg.Record,
        access: IssuedAccess,
        decision: Rotate,
    ) -> Rotated:
        """Use a locked row without rotating it: its token stays; the new access token is recorded on
        it (the family's revocation deny-lists it, and the grant's entry covers the earlier ones)."""
        await conn.execute(
            # its lifetime slides as a successor's would start anew, within the family's
            "UPDATE refresh_tokens SET access_jti = $2, access_expires_at = $3,"
            " expires_at = least(now() + $4::interval, $5) WHERE token_hash = $1",
            digest(token),
            access.jti,
            access.expires_at,
            self._ttl,
            row["family_expires_at"],
        )
        return Rotated(_grant(row), token, decision.scope, decision.audience)

    async def _rotate_row(
        self,
        conn: asyncpg.Connection,
        token: str,
        row: asyncpg.Record,
        access: IssuedAccess,
        decision: Rotate,
    ) -> Rotated | None:
        """Rotate a locked row; ``None`` when a retry's successor turns out to have been used."""
        retired: tuple[IssuedAccess, ...] = ()
        if decision.retry:
            # retire the successor the client never saw, unless it has been used
            unseen = await conn.fetchrow(
                "UPDATE refresh_tokens SET rotated_at = clock_timestamp()"
                " WHERE token_hash = $1 AND rotated_at IS NULL RETURNING access_jti, access_expires_at",
                row["successor"],
            )
            if unseen is None:
                return None
            retired = _accesses([unseen])
        successor = new_token()
        # the successor and the link to it in one statement: one round trip fewer per rotation
        await conn.execute(
            "WITH successor AS ("
            " INSERT INTO refresh_tokens (token_hash, family_id, expires_at, access_jti, access_expires_at)"
            " VALUES ($2, $3, least(now() + $4::interval, $7), $5, $6))"
            " UPDATE refresh_tokens SET successor = $2,"
            " rotated_at = coalesce(rotated_at, clock_timestamp()) WHERE token_hash = $1",
            digest(token),
            digest(successor),
            row["family_id"],
            self._ttl,
            access.jti,
            access.expires_at,
            row["family_expires_at"],
        )
        return Rotated(_grant(row), successor, decision.scope, decision.audience, retired)

    async def purge_expired(self, batch: int = 10_000) -> int:
        """Delete the families none of whose tokens can be used any more; return how many.

        A family goes whole (its tokens by ``ON DELETE CASCADE``) and only once its every token has
        expired, so reuse detection stays intact while any token of it, the attacker's included,
        still works: a spent token is never deleted from a family that is still alive. Families
        are walked in creation order, ``batch`` at a time, each batch its own short statement.
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        deleted, after = 0, (datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0))
        while True:
            row = await self._pool.fetchrow(
                "WITH page AS ("
                "  SELECT family_id, created_at FROM refresh_token_families"
                "  WHERE (created_at, family_id) > ($1, $2) ORDER BY created_at, family_id LIMIT $3),"
                " dead AS ("
                "  SELECT p.family_id FROM page p WHERE NOT EXISTS ("
                "   SELECT 1 FROM refresh_tokens t"
                "   WHERE t.family_id = p.family_id AND t.expires_at > now())),"
                " gone AS (DELETE FROM refresh_token_families f USING dead d"
                "  WHERE f.family_id = d.family_id RETURNING 1)"
                " SELECT (SELECT count(*) FROM page) AS seen, (SELECT count(*) FROM gone) AS gone,"
                " (SELECT created_at FROM page ORDER BY created_at DESC, family_id DESC LIMIT 1) AS last_at,"
                " (SELECT family_id FROM page ORDER BY created_at DESC, family_id DESC LIMIT 1) AS last_id",
                *after,
                batch,
            )
            deleted += int(row["gone"])
            if row["seen"] < batch:
                return deleted
            after = (row["last_at"], row["last_id"])

    async def revoke_family(
        self, family_id: uuid.UUID, reason: str, *, conn: asyncpg.Connection | None = None
    ) -> tuple[IssuedAccess, ...]:
        """Revoke every token of a family; return its access tokens that are still live."""
        if conn is None:
            async with db.connection(self._pool) as fresh:
                return await self.revoke_family(family_id, reason, conn=fresh)
        async with conn.transaction():
            await conn.execute(
                "UPDATE refresh_token_families SET revoked_at = now(), revoked_reason = $2"
                " WHERE family_id = $1 AND revoked_at IS NULL",
                family_id,
                reason,
            )
            rows = await conn.fetch(
                "SELECT access_jti, access_expires_at FROM refresh_tokens"
                " WHERE family_id = $1 AND access_expires_at > now()",
                family_id,
            )
        return _accesses(rows)

    async def revoke_client(self, client_id: str, reason: str) -> dict[uuid.UUID, tuple[IssuedAccess, ...]]:
        """Revoke every live family of a client (suspended, or deleted): each family revoked, with
        its access tokens still live, for the caller to deny-list."""
        async with db.connection(self._pool) as conn, conn.transaction():
            families = await conn.fetch(
                "UPDATE refresh_token_families SET revoked_at = now(), revoked_reason = $2"
                " WHERE client_id = $1 AND revoked_at IS NULL RETURNING family_id",
                client_id,
                reason,
            )
            return await _live_accesses(conn, [row["family_id"] for row in families])

    async def revoke_subject(
        self, subject: str, reason: str, *, client_id: str | None = None
    ) -> dict[uuid.UUID, tuple[IssuedAccess, ...]]:
        """Revoke every live family of a user (of one client, if given): each family revoked, with
        its access tokens still live, for the caller to deny-list."""
        async with db.connection(self._pool) as conn, conn.transaction():
            families = await conn.fetch(
                "UPDATE refresh_token_families SET revoked_at = now(), revoked_reason = $3"
                " WHERE subject = $1 AND ($2::text IS NULL OR client_id = $2) AND revoked_at IS NULL"
                " RETURNING family_id",
                subject,
                client_id,
                reason,
            )
            return await _live_accesses(conn, [row["family_id"] for row in families])

    async def describe(self, token: str) -> RefreshTokenInfo | None:
        """What a refresh token is, and whether it can still be used (for introspection, revocation)."""
        row = await self._pool.fetchrow(
            "SELECT t.family_id, t.created_at, least(t.expires_at, " + _FAMILY_ENDS + ") AS expires_at,"
            " t.rotated_at, f.client_id, f.subject, f.scope, f.resources, f.auth_time, f.revoked_at,"
            " f.dpop_jkt, clock_timestamp() AS now"
            " FROM refresh_tokens t JOIN refresh_token_families f USING (family_id) WHERE t.token_hash = $1",
            digest(token),
            self._lifetime,
        )
        if row is None:
            return None
        grant = RefreshGrant(
            family_id=row["family_id"],
            client_id=row["client_id"],
            subject=row["subject"],
            scope=tuple(row["scope"]),
            auth_time=row["auth_time"],
            resources=tuple(row["resources"]),
            dpop_jkt=row["dpop_jkt"],
        )
        active = row["rotated_at"] is None and row["revoked_at"] is None and row["expires_at"] > row["now"]
        return RefreshTokenInfo(grant, row["created_at"], row["expires_at"], active)


def _grant(row: asyncpg.Record) -> RefreshGrant:
    """The grant of a locked refresh-token row (its family's facts)."""
    return RefreshGrant(
        family_id=row["family_id"],
        client_id=row["client_id"],
        subject=row["subject"],
        scope=tuple(row["scope"]),
        auth_time=row["auth_time"],
        resources=tuple(row["resources"]),
        dpop_jkt=row["dpop_jkt"],
    )


def _accesses(rows: list[asyncpg.Record]) -> tuple[IssuedAccess, ...]:
    return tuple(
        IssuedAccess(r["access_jti"], r["access_expires_at"]) for r in rows if r["access_jti"] is not None
    )


async def _live_accesses(
    conn: asyncpg.Connection, ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[IssuedAccess, ...]]:
    """The access tokens still live of each family in ``ids``."""
    rows = await conn.fetch(
        "SELECT family_id, access_jti, access_expires_at FROM refresh_tokens"
        " WHERE family_id = ANY($1::uuid[]) AND access_expires_at > now()",
        ids,
    )
    revoked: dict[uuid.UUID, list[asyncpg.Record]] = {family_id: [] for family_id in ids}
    for row in rows:
        revoked[row["family_id"]].append(row)
    return {family_id: _accesses(found) for family_id, found in revoked.items()}
