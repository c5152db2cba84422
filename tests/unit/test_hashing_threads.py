"""argon2id threads: one per core the process may really use, a container's CPU quota counted.

The cores the process may use are given to :func:`usable_cores` here (its CPU affinity, as
``os.sched_getaffinity`` would report it, and a cgroup ``cpu.max`` file), so each rule is checked
on any machine, one with a single CPU included.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from auth_server.crypto import usable_cores


@pytest.fixture
def eight_cores(monkeypatch: pytest.MonkeyPatch) -> int:
    """The process may run on 8 cores, whatever this machine has."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    return 8


def test_a_cpu_quota_bounds_the_cores(tmp_path: Path, eight_cores: int) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("50000 100000\n")  # half a CPU: still one thread
    assert usable_cores(cpu_max) == 1
    cpu_max.write_text("100000 100000\n")
    assert usable_cores(cpu_max) == 1
    cpu_max.write_text("250000 100000\n")  # two and a half CPUs: three threads
    assert usable_cores(cpu_max) == 3
    cpu_max.write_text("2400000 100000\n")  # more quota than cores: the cores decide
    assert usable_cores(cpu_max) == eight_cores


def test_no_quota_or_no_cgroup_means_the_affinity(tmp_path: Path, eight_cores: int) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert usable_cores(cpu_max) == eight_cores
    assert usable_cores(tmp_path / "absent") == eight_cores
    cpu_max.write_text("garbage\n")
    assert usable_cores(cpu_max) == eight_cores


def test_the_affinity_bounds_the_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process pinned to 2 of the machine's cores (taskset, a CPU manager) gets 2 threads."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5}, raising=False)
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert usable_cores(cpu_max) == 2
    cpu_max.write_text("400000 100000\n")
    assert usable_cores(cpu_max) == 2
