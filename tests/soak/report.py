"""The summary printed at the end: traffic inside and outside the windows, recovery, the checks."""

from __future__ import annotations

from collections import Counter

from tests.soak.checks import Check, inside
from tests.soak.driver import Driver, Outcome, Sample
from tests.soak.load import Outage

# the step whose first success after a restart says a replica uses the service again
PROBES = {"redis": "token", "postgres": "refresh"}


def summary(
    driver: Driver, samples: list[Sample], windows: list[Outage], margin: float, checks: list[Check]
) -> str:
    elapsed = max((s.ended for s in samples), default=driver.started) - driver.started
    lines = [f"requests: {len(samples)} in {elapsed:.0f} s ({len(samples) / max(elapsed, 1):.0f}/s)"]
    lines += _traffic(samples, windows, margin)
    lines += _steps(samples)
    lines.append(f"outage windows (recovery margin {margin:g} s):")
    ends = [w.stopped for w in windows[1:]] + [float("inf")]
    lines += [_window(driver, samples, w, until) for w, until in zip(windows, ends, strict=True)]
    lines.append("checks:")
    lines += [
        f"  {'PASS' if c.passed else 'FAIL'}  {c.name}" + (f": {c.detail}" if c.detail else "")
        for c in checks
    ]
    lines.append(f"result: {'PASS' if all(c.passed for c in checks) else 'FAIL'}")
    return "\n".join(lines)


def _traffic(samples: list[Sample], windows: list[Outage], margin: float) -> list[str]:
    lines = []
    for where, chosen in (
        ("outside windows", [s for s in samples if not inside(s, windows, margin)]),
        ("inside windows ", [s for s in samples if inside(s, windows, margin)]),
    ):
        by_outcome = Counter(s.outcome for s in chosen)
        statuses = Counter(s.detail for s in chosen if s.outcome is not Outcome.OK)
        failed = ", ".join(f"{detail} x{n}" for detail, n in statuses.most_common())
        lines.append(
            f"  {where}: {len(chosen)} requests, ok {by_outcome[Outcome.OK]},"
            f" unavailable {by_outcome[Outcome.UNAVAILABLE]}, errors {by_outcome[Outcome.ERROR]}"
            + (f"  [{failed}]" if failed else "")
        )
    return lines


def _steps(samples: list[Sample]) -> list[str]:
    """ok/all per step, one line per flow."""
    counts = Counter((s.flow, s.step) for s in samples)
    ok = Counter((s.flow, s.step) for s in samples if s.outcome is Outcome.OK)
    lines = ["  ok/all by flow and step:"]
    for flow in sorted({flow for flow, _ in counts}):
        steps = [f"{step} {ok[(f, step)]}/{n}" for (f, step), n in sorted(counts.items()) if f == flow]
        lines.append(f"    {flow}: {', '.join(steps)}")
    return lines


def _window(driver: Driver, samples: list[Sample], window: Outage, until: float) -> str:
    """When the window began and ended, and how long after it each replica was back in service.

    ``until``: where the next window begins, so its failures are not counted against this one.
    """
    probe = PROBES.get(window.service)
    firsts = []
    for replica in sorted(driver.replicas):
        ok = [
            s.ended - window.back
            for s in samples
            if s.replica == replica
            and s.step == probe
            and s.started >= window.back
            and s.outcome is Outcome.OK
        ]
        firsts.append(f"{replica} +{min(ok):.2f} s" if ok else f"{replica} never")
    failures = [s.ended for s in samples if s.outcome is not Outcome.OK and window.stopped <= s.ended < until]
    late = [t - window.back for t in failures if t > window.back]
    last = f"+{max(late):.2f} s" if late else "none"
    return (
        f"  {window.service:<8} stopped at {driver.since_start(window.stopped):.1f} s, answering again at"
        f" {driver.since_start(window.back):.1f} s (down {window.back - window.stopped:.1f} s);"
        f" first {probe} ok after restart: {', '.join(firsts)}; last failure {last} after restart"
    )
