"""The ``audit_events`` table: an append-only trail of security events.

Events: ``client.created``, ``client.updated``, ``client.deleted``, ``client.secret_rotated``,
``consent.granted``, ``consent.revoked``, ``user.updated``, ``user.deleted``,
``refresh_token.reuse_detected``, ``authorization_code.replayed``,
``login.succeeded``, ``login.failed``, ``login.locked_out``, ``key.created``, ``key.rotated``,
``keys.rewrapped``, ``session.ended``, ``logout.delivery_failed``. Details never hold a secret,
code, token or password.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

log = logging.getLogger("tessera.audit")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    at: datetime
    event: str
    client_id: str | None
    subject: str | None
    ip: str | None
    details: dict[str, Any]


class AuditLog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(
        self,
        event: str,
        *,
        client_id: str | None = None,
        subject: str | None = None,
        ip: str | None = None,
        **details: Any,
    ) -> None:
        await self._pool.execute(
            "INSERT INTO audit_events (event, client_id, subject, ip, details)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)",
            event,
            client_id,
            subject,
            ip,
            json.dumps(details, default=str),
        )
        log.info("audit %s", event, extra={"event": event, "client_id": client_id, "subject": subject})

    async def recent(self, event: str | None = None, limit: int = 100) -> list[AuditEvent]:
        rows = await self._pool.fetch(
            "SELECT at, event, client_id, subject, ip, details::text AS details FROM audit_events"
            " WHERE $1::text IS NULL OR event = $1 ORDER BY event_id DESC LIMIT $2",
            event,
            limit,
        )
        return [
            AuditEvent(r["at"], r["event"], r["client_id"], r["subject"], r["ip"], json.loads(r["details"]))
            for r in rows
        ]

    async def for_client(
        self, client_id: str, limit: int = 100, *, event: str | None = None
    ) -> list[AuditEvent]:
        """The latest events about one client (of one kind, if ``event``), newest first: the admin
        console's audit trail."""
        rows = await self._pool.fetch(
            "SELECT at, event, client_id, subject, ip, details::text AS details FROM audit_events"
            " WHERE client_id = $1 AND ($3::text IS NULL OR event = $3) ORDER BY event_id DESC LIMIT $2",
            client_id,
            limit,
            event,
        )
        return [
            AuditEvent(r["at"], r["event"], r["client_id"], r["subject"], r["ip"], json.loads(r["details"]))
            for r in rows
        ]
