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
        "client_credentials_access_log_off",
        "oidc-provider",
        "bare-form-proof-sign",
        "client_credentials_dpop",
        "oidc-provider:client_credentials_dpop",
        "refresh_rotation",
        "token_exchange",
        "introspection",
        "introspection_distinct",
        "bare-flow",
        "sso_flow",
        "bare-flow-rs256",
        "oidc_flow_rs256",
        "oidc-provider:oidc_flow_rs256",
        "bare-flow-es256",
        "oidc_flow_es256",
        "oidc-provider:oidc_flow_es256",
        "bare-par-flow",
        "par_flow",
        "oidc-provider:par_flow",
        "bare-hello",
        "device_pending",
        "oidc-provider:device_pending",
        "userinfo",
        "oidc-provider:userinfo",
        "bare-json-insert",
        "registration",
        "oidc-provider:registration",
        "password_argon2id",
        "resource_cached",
        "bare-verify",
        "resource_uncached",
        "bare-dpop-verify",
        "resource_dpop",
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
    # each ratio is taken within a round: a scenario beside its limit and the peer, measured in turn
    assert measured["ratios"]["client_credentials / bare-form-sign"]["per_round"]
    assert measured["ratios"]["device_pending / bare-hello"]["per_round"]
    # the chart beside the results: Tessera, its limits, the peer, and published figures
    assert results.with_suffix(".png").stat().st_size > 0
    assert results.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
