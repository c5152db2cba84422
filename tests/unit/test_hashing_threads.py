"""argon2id threads: one per core the process may really use, a container's CPU quota counted."""

from __future__ import annotations

import os
from pathlib import Path

from auth_server.crypto import usable_cores

AFFINITY = len(os.sched_getaffinity(0))


def test_a_cpu_quota_bounds_the_cores(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("50000 100000\n")  # half a CPU: still one thread
    assert usable_cores(cpu_max) == 1
    cpu_max.write_text("100000 100000\n")
    assert usable_cores(cpu_max) == 1
    cpu_max.write_text(f"{AFFINITY * 300000} 100000\n")  # more quota than cores: the cores decide
    assert usable_cores(cpu_max) == AFFINITY


def test_no_quota_or_no_cgroup_means_the_affinity(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert usable_cores(cpu_max) == AFFINITY
    assert usable_cores(tmp_path / "absent") == AFFINITY
