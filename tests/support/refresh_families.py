"""What the database says about refresh-token families, for the fault tests and the soak: are
any half-rotated, and where do the tokens the clients hold stand."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from auth_server.crypto import digest
from auth_server.schema import SCHEMA


async def family_shapes(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Per family: its revocation reason, how many tokens are unused, and how many used ones point
    at no successor in the family (a whole family has exactly one unused and none dangling)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT f.family_id, f.revoked_reason,"
        f" count(t.token_hash) FILTER (WHERE t.rotated_at IS NULL) AS unused,"
        f" count(t.token_hash) FILTER (WHERE t.rotated_at IS NOT NULL AND NOT EXISTS ("
        f"   SELECT 1 FROM {SCHEMA}.refresh_tokens s"
        f"   WHERE s.token_hash = t.successor AND s.family_id = t.family_id)) AS dangling"
        f" FROM {SCHEMA}.refresh_token_families f"
        f" LEFT JOIN {SCHEMA}.refresh_tokens t USING (family_id) GROUP BY f.family_id, f.revoked_reason"
    )
    return rows


async def held_tokens(conn: asyncpg.Connection, tokens: Iterable[str]) -> dict[bytes, asyncpg.Record]:
    """By token digest: whether each token was rotated, and its family's revocation reason."""
    rows = await conn.fetch(
        f"SELECT t.token_hash, t.rotated_at, f.revoked_reason FROM {SCHEMA}.refresh_tokens t"
        f" JOIN {SCHEMA}.refresh_token_families f USING (family_id) WHERE t.token_hash = ANY($1::bytea[])",
        [digest(token) for token in tokens],
    )
    return {row["token_hash"]: row for row in rows}
