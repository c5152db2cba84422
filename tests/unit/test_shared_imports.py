"""The part of ``shared`` resource teams import loads neither asyncpg nor redis, and changes no
global state on import (the log-record factory stays Python's own until an app installs its own)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RESOURCE_TEAM_MODULES = (
    "shared.jwt_validation",
    "shared.dpop",
    "shared.fetch",
    "shared.token_cache",
    "shared.errors",
    "shared.error_middleware",
    "shared.jwks",
    "shared.lru",
    "shared.protected_resource",
)

PROBE = """
import json, logging, sys
factory = logging.getLogRecordFactory()
for name in sys.argv[1:]:
    __import__(name)
print(json.dumps({
    "backends": sorted(m for m in ("asyncpg", "redis") if m in sys.modules),
    "factory_unchanged": logging.getLogRecordFactory() is factory,
    "factory_is_default": logging.getLogRecordFactory() is logging.LogRecord,
}))
"""


def _import_fresh(*modules: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, object] = json.loads(result.stdout)
    return found


def test_the_resource_team_part_of_shared_imports_neither_asyncpg_nor_redis() -> None:
    found = _import_fresh(*RESOURCE_TEAM_MODULES)
    assert found["backends"] == []
    assert found["factory_unchanged"] is True
    assert found["factory_is_default"] is True


def test_the_probe_sees_a_backend_when_one_is_imported() -> None:
    """The check above can fail: importing the backends' own modules is seen."""
    assert _import_fresh("shared.db", "shared.redis")["backends"] == ["asyncpg", "redis"]


def test_observability_changes_the_log_record_factory_only_when_installed() -> None:
    assert _import_fresh("shared.observability")["factory_unchanged"] is True
