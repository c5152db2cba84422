"""Key lifecycle operations: the first key, rotation, and each replica's periodic reload."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from auth_server import signing
from auth_server.registry import Registry
from auth_server.stores.keys import KeyRecord

log = logging.getLogger("tessera.keys")


async def ensure_key(registry: Registry) -> None:
    """Create a signing key if none is active yet (many replicas may race here; one wins)."""
    record = signing.generate(registry.settings.signing_alg, registry.kek, datetime.now(UTC))
    if await registry.keys.add_if_none_active(record):
        log.info("created the first signing key kid=%s alg=%s", record.kid, record.alg)
        await registry.audit.record("key.created", kid=record.kid, alg=record.alg)


async def rotate(
    registry: Registry, *, prepublication: int | None = None, alg: str | None = None
) -> KeyRecord:
    """Add a key that activates after the pre-publication period (default from settings)."""
    delay = registry.settings.key_prepublication if prepublication is None else prepublication
    record = signing.generate(
        alg or registry.settings.signing_alg, registry.kek, datetime.now(UTC) + timedelta(seconds=delay)
    )
    await registry.keys.add(record)
    await registry.audit.record(
        "key.rotated", kid=record.kid, alg=record.alg, activates_at=record.activates_at.isoformat()
    )
    log.info("rotated signing keys: kid=%s activates at %s", record.kid, record.activates_at.isoformat())
    return record


async def reload(registry: Registry) -> None:
    registry.keyring.load(await registry.keys.all())


async def refresh_forever(registry: Registry, interval: float) -> None:
    """Reload keys periodically so a rotation made anywhere reaches this replica; survive outages."""
    while True:
        await asyncio.sleep(interval)
        try:
            await reload(registry)
        except Exception:
            log.warning("could not reload signing keys; keeping the ones in memory", exc_info=True)
