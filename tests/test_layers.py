"""DESIGN.md's layers: store <- ingest <- sender <- analysis <- dashboard <- postwatch.
A module imports only from its own layer and the ones below it, uses no private name of
another module, and no modules import each other round a circle."""
from __future__ import annotations

import ast
import sys
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


# ------------------------------------------------------------ private names and import circles

def project_modules(root: Path = ROOT, packages: list[str] = ORDER) -> dict[str, Path]:
    """Every module of the project by its dotted name (a package by its own name)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The project module that defines dotted `name` (itself when it is a module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, modules: dict[str, Path]):
    """(line, imported module, name or None, local name) for each project import of `module`,
    at any depth (module level, in a function, under `if TYPE_CHECKING`)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _owner(alias.name, modules):
                    local = alias.asname or alias.name.split(".")[0]
                    yield node.lineno, alias.name, None, (local, alias.name if alias.asname else local)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + is_package]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not _owner(source, modules):
                continue
            for alias in node.names:
                local = alias.asname or alias.name
                target = f"{source}.{alias.name}"
                yield node.lineno, source, alias.name, (local, target if target in modules else None)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def private_uses(root: Path = ROOT, packages: list[str] = ORDER) -> list[str]:
    """Private names (`_x`, not dunders) that one project module takes from another: by
    `from m import _x`, or as `m._x` where `m` is a project module it imported."""
    modules = project_modules(root, packages)
    wrong = []
    for module, path in modules.items():
        bound = {}  # local name -> the project module it stands for
        for line, source, name, (local, target) in _imports(module, path, modules):
            if name is not None and _private(name) and _owner(source, modules) != module:
                wrong.append(f"{path.relative_to(root)}:{line} imports {source}.{name}")
            if target:
                bound[local] = target
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                base = _dotted(node.value)
                head, _, rest = (base or "").partition(".")
                if head in bound:
                    owner = _owner(".".join(filter(None, (bound[head], rest))), modules)
                    if owner and owner != module:
                        wrong.append(f"{path.relative_to(root)}:{node.lineno} uses {owner}.{node.attr}")
    return sorted(wrong)


def import_graph(root: Path = ROOT, packages: list[str] = ORDER) -> dict[str, set[str]]:
    """module -> the project modules it imports. Every import counts, module-level or inside a
    function or `if TYPE_CHECKING`: a function-level import only puts the circle off to run time."""
    modules = project_modules(root, packages)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for _line, source, name, _binding in _imports(module, path, modules):
            target = _owner(f"{source}.{name}" if name else source, modules)
            if target and target != module:
                graph[module].add(target)
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(circles)


def test_no_module_uses_a_private_name_of_another():
    assert private_uses() == []


def test_the_check_sees_a_private_name(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "__init__.py").write_text("")
    (tmp_path / "store" / "a.py").write_text("def _hidden():\n    pass\n")
    (tmp_path / "store" / "b.py").write_text("from store.a import _hidden\nfrom store.a import __doc__\n")
    (tmp_path / "store" / "c.py").write_text("from store import a\n\ndef f():\n    return a._hidden()\n")
    (tmp_path / "store" / "d.py").write_text("import store.a as m\n\nm.__name__\nm.x._y\n")
    (tmp_path / "store" / "e.py").write_text("def _own():\n    pass\n\nclass K:\n    _own = _own\n\nK._own()\n")
    assert private_uses(tmp_path, ["store"]) == [
        "store/b.py:1 imports store.a._hidden", "store/c.py:4 uses store.a._hidden", "store/d.py:4 uses store.a._y"]


def test_no_import_circle():
    """Module-level imports count, and so do imports inside functions and under TYPE_CHECKING."""
    assert import_circles(import_graph()) == []


def test_the_check_sees_an_import_circle(tmp_path):
    (tmp_path / "ingest").mkdir()
    (tmp_path / "ingest" / "__init__.py").write_text("")
    (tmp_path / "ingest" / "a.py").write_text("from ingest.b import x\n")
    (tmp_path / "ingest" / "b.py").write_text("def f():\n    from ingest import c\n")
    (tmp_path / "ingest" / "c.py").write_text("import ingest.a\n")
    (tmp_path / "ingest" / "d.py").write_text("import ingest.a\n")
    graph = import_graph(tmp_path, ["ingest"])
    assert graph["ingest.d"] == {"ingest.a"}
    assert import_circles(graph) == [["ingest.a", "ingest.b", "ingest.c"]]
