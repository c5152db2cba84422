"""The suite's own layout: helpers live in :mod:`tests.support`, and a ``conftest.py`` only defines
fixtures (and pytest hooks), so no module ever imports from one."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), filename=str(path))) for path in sorted(TESTS.rglob("*.py"))]


def _where(path: Path, node: ast.stmt) -> str:
    return f"{path.relative_to(TESTS.parent)}:{node.lineno}"


def _names_a_conftest(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):  # also `from . import conftest`
        names = [node.module or "", *(alias.name for alias in node.names)]
    else:
        return False
    return any("conftest" in name.split(".") for name in names)


def test_no_module_imports_from_a_conftest() -> None:
    offenders = [
        _where(path, node)
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.stmt) and _names_a_conftest(node)
    ]
    assert offenders == [], f"import these from tests.support instead: {offenders}"


def _is_fixture(decorator: ast.expr) -> bool:
    """``@pytest.fixture``, ``@pytest.fixture(...)`` or a bare ``@fixture``."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Attribute):
        return target.attr == "fixture"
    return isinstance(target, ast.Name) and target.id == "fixture"


def _allowed_in_a_conftest(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import | ast.ImportFrom):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # the docstring
        return True
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return node.name.startswith("pytest_") or any(_is_fixture(d) for d in node.decorator_list)
    return isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["pytest_plugins"]


def test_conftest_files_define_only_fixtures() -> None:
    conftests = [(path, tree) for path, tree in _modules() if path.name == "conftest.py"]
    assert conftests, "no conftest.py found under tests/"
    offenders = [
        _where(path, node)
        for path, tree in conftests
        for node in tree.body
        if not _allowed_in_a_conftest(node)
    ]
    assert offenders == [], f"move these helpers to tests.support: {offenders}"
