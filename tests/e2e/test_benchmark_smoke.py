"""The benchmark suite, run for a second per scenario so its code never rots (no thresholds here:
numbers are only meaningful from ``python -m tests.load`` on a quiet machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import Services

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_benchmark_runs_every_scenario_quickly(backing: Services) -> None:
    env = {
        **os.environ,
        "TESSERA_TEST_DATABASE_URL": backing.admin_database_url,
        "TESSERA_TEST_REDIS_URL": backing.redis_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.load", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=800,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-4000:]
    for scenario in (
        "bare-form-sign",
        "client_credentials",
        "oidc-provider",
        "refresh_rotation",
        "sso_flow",
        "introspection",
        "password_argon2id",
        "bare-hello",
        "resource_cached",
        "resource_uncached",
        "cc_during_login_storm",
        "client_credentials_2_workers",
        "locust_mixed",
    ):
        assert scenario in report, f"{scenario} missing from the report:\n{report[-4000:]}"
    assert "target (issue 6)" in report
