"""The benchmark's results as a picture: requests per second per core for each scenario.

For each scenario, in one run: Tessera, its limit (the bare handler doing only the work the
scenario cannot avoid) and oidc-provider, each pinned to one core; beside them, where they exist,
figures Keycloak and Ory Hydra published for the same kind of request (:data:`PUBLISHED`), marked as
published and not measured here. A scenario without a credible published figure has none: none is
made up. Written as PNG and SVG beside the results file (``latest.json`` -> ``latest.png``,
``latest.svg``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

PEER = "oidc-provider"


@dataclass(frozen=True)
class Published:
    system: str
    scenario: str
    requests_per_s_per_core: float
    how: str  # what was measured, and how it becomes a figure per core
    source: str
    dated: str


KEYCLOAK_SIZING = "https://www.keycloak.org/high-availability/single-cluster/concepts-memory-and-cpu-sizing"
HYDRA_BENCHMARKS = "https://github.com/ory/hydra/blob/147d23102262525fde9c5e8345e6c41252d3cb48/BENCHMARKS.md"
KEYCLOAK_DATED = "Keycloak 26 high-availability guide, read 2026-11-30"
HYDRA_DATED = "Hydra 1.0 beta era (the file states no date), read 2026-11-30"

# Published figures, per core. Not measured here: other machines, other loads, other settings.
PUBLISHED = (
    Published(
        "Keycloak",
        "client_credentials",
        120,
        "sizing guide: 1 vCPU per 120 client credential grants/s (each on a new TLS connection)",
        KEYCLOAK_SIZING,
        KEYCLOAK_DATED,
    ),
    Published(
        "Keycloak",
        "refresh_rotation",
        120,
        "sizing guide: 1 vCPU per 120 refresh token requests/s",
        KEYCLOAK_SIZING,
        KEYCLOAK_DATED,
    ),
    Published(
        "Keycloak",
        "password_argon2id",
        15,
        "sizing guide: 1 vCPU per 15 password-based logins/s (its own password hashing)",
        KEYCLOAK_SIZING,
        KEYCLOAK_DATED,
    ),
    Published(
        "Ory Hydra",
        "client_credentials",
        411.5 / 2,
        "BENCHMARKS.md: 411.5 req/s on 2 CI cores shared with the load generator, in-memory storage,"
        " BCrypt cost 8 on the client secret; halved",
        HYDRA_BENCHMARKS,
        HYDRA_DATED,
    ),
    Published(
        "Ory Hydra",
        "introspection",
        7934.4 / 2,
        "BENCHMARKS.md: 7,934 req/s on 2 CI cores shared with the load generator, in-memory storage; halved",
        HYDRA_BENCHMARKS,
        HYDRA_DATED,
    ),
)

# what the chart shows, in order: (scenario, its limit, a label)
SCENARIOS = (
    ("client_credentials", "bare-form-sign", "client_credentials"),
    ("client_credentials_dpop", "bare-form-proof-sign", "client_credentials + DPoP proof"),
    ("refresh_rotation", "bare-form-sign", "refresh token rotation"),
    ("token_exchange", "bare-form-sign", "token exchange (RFC 8693)"),
    ("introspection", "bare-form-sign", "introspection (cached)"),
    ("introspection_distinct", "bare-form-sign", "introspection (every token new)"),
    ("password_argon2id", None, "password grant (argon2id)"),
    ("sso_flow", "bare-flow", "code flow, signed in (2 requests)"),
    ("oidc_flow_rs256", "bare-flow-rs256", "OIDC code flow, RS256 ID token (2 requests)"),
    ("oidc_flow_es256", "bare-flow-es256", "OIDC code flow, ES256 ID token (2 requests)"),
    ("par_flow", "bare-par-flow", "PAR push + /authorize (2 requests)"),
    ("userinfo", "bare-hello", "userinfo"),
    ("device_pending", "bare-hello", "device polling, pending"),
    ("registration", "bare-json-insert", "dynamic registration"),
    ("resource_cached", "bare-hello", "resource GET (token cache)"),
    ("resource_uncached", "bare-verify", "resource GET (every token new)"),
    ("resource_dpop", "bare-dpop-verify", "resource GET, DPoP-bound token"),
)

SERIES = (
    ("Tessera", "#2b6cb0"),
    ("bare limit", "#a0aec0"),
    ("oidc-provider (measured here)", "#dd6b20"),
    ("Keycloak (published, not measured here)", "#68d391"),
    ("Ory Hydra (published, not measured here)", "#9f7aea"),
)


def _rate(report: dict[str, Any], name: str | None) -> float | None:
    """The requests per second of a scenario's median run (its server has one core)."""
    if name is None or name not in report["scenarios"]:
        return None
    rate = report["scenarios"][name]["median"].get("requests_per_s")
    return float(rate) if rate else None


def rows(report: dict[str, Any]) -> list[tuple[str, list[float | None]]]:
    """Each charted scenario's label and its values, in :data:`SERIES` order."""
    out = []
    for name, limit, label in SCENARIOS:
        tessera = _rate(report, name)
        if tessera is None:
            continue
        peer = _rate(report, PEER if name == "client_credentials" else f"{PEER}:{name}")
        published = {p.system: p.requests_per_s_per_core for p in PUBLISHED if p.scenario == name}
        out.append(
            (
                label,
                [tessera, _rate(report, limit), peer, published.get("Keycloak"), published.get("Ory Hydra")],
            )
        )
    return out


def footnote(report: dict[str, Any]) -> str:
    machine = report["machine"]
    options = report["options"]
    lines = [
        f"Measured {report['date']} on {machine['cpu']} ({machine['cpus']} CPUs), Python {machine['python']};"
        f" each server pinned to one core, wrk ({options['connections']} connections) on another;"
        f" median of {options['runs']} run(s) of {options['seconds']:g} s. Tessera with its defaults"
        " (access log on). python -m tests.load",
        "Published, not measured here (other machines and settings; divided into figures per core):",
    ]
    for p in PUBLISHED:
        lines.append(f"  {p.system}, {p.scenario}: {p.how}. {p.source} ({p.dated})")
    return "\n".join(lines)


def write(report: dict[str, Any], results: Path) -> list[Path]:
    """The chart as PNG and SVG beside ``results``; none if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[dev]'): no chart")
        return []
    data = rows(report)
    if not data:
        return []
    height = 0.16
    figure, axes = plt.subplots(figsize=(12, 1.0 + 0.62 * len(data) + 1.6))
    for index, (series, colour) in enumerate(SERIES):
        ys, widths = [], []
        for position, (_, values) in enumerate(data):
            value = values[index]
            if value is not None:
                ys.append(position + (index - 2) * height)
                widths.append(value)
        hatch = "//" if "published" in series else None
        axes.barh(ys, widths, height=height, color=colour, label=series, hatch=hatch, edgecolor="white")
    axes.set_yticks(range(len(data)), [label for label, _ in data])
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("requests per second per core (log scale)")
    axes.grid(axis="x", which="both", alpha=0.3)
    axes.set_title("Tessera beside its limits, oidc-provider, and published Keycloak and Ory Hydra figures")
    axes.legend(loc="lower right", fontsize=8)
    figure.text(0.01, 0.005, footnote(report), fontsize=6, va="bottom", ha="left", wrap=True)
    figure.subplots_adjust(left=0.3, right=0.98, top=0.95, bottom=0.1 + 0.012 * (len(PUBLISHED) + 2))
    written = []
    for suffix in (".png", ".svg"):
        path = results.with_suffix(suffix)
        figure.savefig(path, dpi=120)
        written.append(path)
    plt.close(figure)
    return written
