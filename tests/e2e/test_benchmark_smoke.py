"""The benchmark suite, run for a second per scenario so its code never rots (no thresholds here:
numbers are only meaningful from ``python -m tests.load`` on a quiet machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import Services

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.benchmark
@pytest.mark.timeout(900)
def test_benchmark_runs_every_scenario_quickly(backing: Services, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TESSERA_TEST_DATABASE_URL": backing.admin_database_url,
        "TESSERA_TEST_REDIS_URL": backing.redis_url,
    }
    results = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.load", "--quick", "--output", str(results)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=800,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-4000:]
    measured = json.loads(results.read_text())
    scenarios = measured["scenarios"]
    for scenario in (
        "bare-form-sign",
        "client_credentials",
        "oidc-provider",
        "refresh_rotation",
        "sso_flow",
        "oidc_flow_rs256",
        "oidc_flow_es256",
        "userinfo",
        "introspection",
        "introspection_distinct",
        "password_argon2id",
        "bare-hello",
        "resource_cached",
        "resource_uncached",
        "cc_8_connections",
        "cc_during_login_storm",
        "client_credentials_2_workers",
    ):
        runs = scenarios[scenario]["median"]
        assert runs["units_per_s"] > 0 and scenarios[scenario]["unexpected_responses"] == 0, scenario
    assert measured["extra"]["locust_mixed"]["requests"] > 0
    assert measured["extra"]["locust_mixed"]["failures"] == 0
    assert measured["extra"]["memory"]["rss_mib"] > 0
    assert measured["unexpected_responses"] == 0
