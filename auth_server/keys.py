"""Key lifecycle operations: the first key, rotation, each replica's periodic reload, and moving
every private key to the current key-encryption key (``tessera keys rewrap``)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from auth_server import signing
from auth_server.crypto import UnwrapError
from auth_server.registry import Registry
from auth_server.stores.keys import KeyRecord

log = logging.getLogger("tessera.keys")


async def ensure_key(registry: Registry) -> None:
    """Create a signing key for each algorithm the server signs with that has none active yet:
    access tokens' (``TESSERA_SIGNING_ALG``) and ID tokens' (RS256, and ES256). Many replicas may
    race here; one wins for each algorithm."""
    for alg in dict.fromkeys((registry.settings.signing_alg, *signing.ID_TOKEN_ALGORITHMS)):
        record = signing.generate(alg, registry.kek, datetime.now(UTC))
        if await registry.keys.add_if_none_active(record):
            log.info("created the first %s signing key kid=%s", record.alg, record.kid)
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


@dataclass(frozen=True, slots=True)
class RewrapReport:
    kek_id: str  # the current key-encryption key, which now wraps every signing key
    rewrapped: tuple[str, ...]  # kids re-encrypted by this run
    unchanged: tuple[str, ...]  # kids already recorded under the current KEK
    rewrapped_from: dict[str, int]  # the KEK id that opened each rewrapped key -> how many
    totp_seeds_rewrapped: int = 0  # authenticator-app seeds (two-step sign-in) moved to the current KEK


async def rewrap(registry: Registry) -> RewrapReport:
    """Re-encrypt every private signing key under the current key-encryption key, in one transaction.

    Each key is opened with whichever configured KEK wraps it (its recorded ``kek_id``, or any for
    keys from before ids were recorded), re-encrypted under the current KEK and recorded with its
    id. Keys already recorded under the current KEK are checked to open, and left alone, so a rerun
    changes nothing. If any key cannot be decrypted, :class:`signing.SigningKeyUnavailable` names it
    and nothing is changed.
    """
    kek = registry.kek
    opened_by: dict[str, str] = {}

    def rewrap_one(record: KeyRecord) -> KeyRecord | None:
        der, opener = signing.unwrap(kek, record)
        if record.kek_id == kek.current_id:
            return None
        opened_by[record.kid] = opener
        wrapped = kek.encrypt(der, record.kid)
        return dataclasses.replace(record, private_key_encrypted=wrapped.blob, kek_id=wrapped.kek_id)

    try:  # the seeds of users' authenticator apps are under the same KEK (issue 18); first, so
        # that a seed no KEK opens changes nothing (a rerun finds the signing keys as they were)
        seeds, _ = await registry.two_step.rewrap_all()
    except UnwrapError as error:
        raise signing.SigningKeyUnavailable(
            f"an authenticator-app seed cannot be decrypted: {error.reason}. Configure the"
            " key-encryption key it was wrapped under in TESSERA_KEY_ENCRYPTION_KEYS_PREVIOUS"
        ) from None
    results = await registry.keys.rewrap_all(rewrap_one)
    report = RewrapReport(
        kek_id=kek.current_id,
        rewrapped=tuple(old.kid for old, new in results if new is not None),
        unchanged=tuple(old.kid for old, new in results if new is None),
        rewrapped_from=dict(Counter(opened_by.values())),
        totp_seeds_rewrapped=seeds,
    )
    if report.rewrapped:
        await registry.audit.record(
            "keys.rewrapped",
            kek_id=report.kek_id,
            count=len(report.rewrapped),
            kids=list(report.rewrapped),
            rewrapped_from=report.rewrapped_from,
        )
    log.info(
        "rewrapped %d signing key(s) under key-encryption key %s (%d already under it)",
        len(report.rewrapped),
        report.kek_id,
        len(report.unchanged),
    )
    return report


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
