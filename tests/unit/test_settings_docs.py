"""The settings are declared once: README.md's table, the module docstrings and every TESSERA_*
name the code and the deployment files use all come from, or match, the declarations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from auth_server import settings as auth_settings
from resource_server import settings as resource_settings
from shared import logging as tessera_logging
from shared import settings_docs
from shared.config import declarations

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = "README.md"
MODULES = ("auth_server.settings", "resource_server.settings", "shared.logging")
CLASSES = (
    auth_settings.Settings,
    resource_settings.ResourceSettings,
    resource_settings.McpSettings,
    tessera_logging.LoggingSettings,
)
VARIABLE = re.compile(r"\bTESSERA_[A-Z0-9_]*[A-Z0-9]\b")


def _declared() -> set[str]:
    return {declared.variable for cls in CLASSES for _, declared in declarations(cls)}


def test_the_readme_table_is_generated_from_the_declarations() -> None:
    current = settings_docs.current_block((ROOT / DOCUMENT).read_text())
    wanted = settings_docs.block(DOCUMENT, MODULES)
    assert current == wanted, (
        f"{DOCUMENT}'s settings table differs from the declarations: run"
        f" `{settings_docs.command(DOCUMENT, MODULES)}`"
    )


def test_the_table_has_a_row_for_every_setting_naming_who_reads_it() -> None:
    table = settings_docs.markdown_table(CLASSES)
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    assert {row[0].strip("| `") for row in rows} == _declared()
    both = next(row for row in rows if row[0] == "| `TESSERA_SHUTDOWN_GRACE`")
    assert both[1:3] == ["auth server, resource server, MCP server", "30"]
    (auth_body, resource_body) = (row for row in rows if row[0] == "| `TESSERA_BODY_TIMEOUT`")
    assert (auth_body[1], auth_body[2], resource_body[1], resource_body[2]) == (
        "auth server",
        "10",
        "resource server",
        "30",
    )
    (ttl,) = (row for row in rows if row[0] == "| `TESSERA_ACCESS_TOKEN_TTL`")
    assert ttl[2:4] == ["600 (10 min)", "seconds, 30 to 86400"]


@pytest.mark.parametrize("module", [auth_settings, resource_settings, tessera_logging])
def test_each_module_docstring_lists_its_settings_with_their_defaults(module: object) -> None:
    doc = module.__doc__ or ""
    classes = [c for c in CLASSES if c.__module__ == getattr(module, "__name__", "")]
    assert classes
    for cls in classes:
        for name, declared in declarations(cls):
            assert f"{name}: {declared.variable} = {declared.shown_default()}" in doc


def test_every_tessera_variable_in_code_and_deployment_files_is_declared() -> None:
    """A name read outside the declarations, or misspelt in a manifest, is not configuration."""
    gateway = {
        match.removeprefix("${").removesuffix("}")
        for template in (ROOT / "deploy" / "nginx").glob("*.template")
        for match in re.findall(r"\$\{TESSERA_[A-Z0-9_]+\}", template.read_text())
    }
    packages = ("auth_server", "resource_server", "shared")
    files = [
        *(path for package in packages for path in (ROOT / package).rglob("*.py")),
        ROOT / "README.md",
        *(ROOT / "deploy").rglob("*.md"),
        *(ROOT / "deploy").rglob("*.yaml"),
        ROOT / "deploy" / "Dockerfile",
    ]
    unknown = {
        (path.relative_to(ROOT).as_posix(), name)
        for path in files
        for name in VARIABLE.findall(path.read_text())
        if name not in _declared()
        and name not in gateway
        # the test suite's and the benchmark's own variables, documented where they are read
        and not name.startswith(("TESSERA_TEST_", "TESSERA_BENCH_"))
    }
    assert not unknown, f"TESSERA_* names with no setting declared: {sorted(unknown)}"


def test_only_the_settings_read_the_environment() -> None:
    reads = re.compile(r"\b(?:os\.getenv|environ\.get|environ\[|getenv)\(?")
    readers = {
        path.relative_to(ROOT).as_posix()
        for package in ("auth_server", "resource_server", "shared")
        for path in (ROOT / package).rglob("*.py")
        if reads.search(path.read_text())
    }
    assert readers <= {"shared/config.py"}, readers
