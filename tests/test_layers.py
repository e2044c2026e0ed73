"""DESIGN.md's layers: store <- ingest <- sender <- analysis <- dashboard <- postwatch.
A module imports only from its own layer and the ones below it."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["store", "ingest", "sender", "analysis", "dashboard", "postwatch"]


def imported_packages(path: Path) -> set[tuple[str, int]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {(a.name.split(".")[0], node.lineno) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add((node.module.split(".")[0], node.lineno))
    return found


def test_no_module_imports_a_higher_layer():
    wrong = []
    for i, layer in enumerate(ORDER):
        higher = set(ORDER[i + 1:])
        for path in sorted((ROOT / layer).rglob("*.py")):
            wrong += [f"{path.relative_to(ROOT)}:{line} imports {package}"
                      for package, line in sorted(imported_packages(path)) if package in higher]
    assert wrong == []


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from dashboard.app import create_dash\n")
    assert ("dashboard", 2) in imported_packages(module)
