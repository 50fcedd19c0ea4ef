"""The dependency rules of docs/architecture.md, checked on the source: no import cycles among the
modules of ``harness``, ``zoo`` and the built-in plugins, ``zoo`` never imports ``harness``, and a
plugin imports ``zoo`` only.

Every import counts, also one inside a function (a lazy import is still a dependency) — except
those under ``if TYPE_CHECKING:``. Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__``
first, so it depends on those packages too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: (directory holding the package, package name)
PACKAGES = ((ROOT, "harness"), (ROOT, "zoo"), (ROOT / "plugins" / "zoo-torch", "zoo_torch"),
            (ROOT / "plugins" / "zoo-tf", "zoo_tf"), (ROOT / "plugins" / "zoo-jax", "zoo_jax"))
PLUGINS = ("zoo_torch", "zoo_tf", "zoo_jax")


def _modules() -> dict[str, Path]:
    found = {}
    for root, package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            if "templates" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.orelse:
                    visit(stmt)
                continue
            if isinstance(child, ast.Import):
                out.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = module.split(".") if is_package else module.split(".")[:-1]
                    parent = parent[: len(parent) - (child.level - 1)]
                    base = ".".join(parent + ([base] if base else []))
                out.add(base)
                out.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(tree)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for imported in _imports(ast.parse(path.read_text()), name, path.name == "__init__.py"):
            if imported in modules and imported != name:
                deps.add(imported)
            parts = imported.split(".")
            for i in range(1, len(parts)):  # the packages above it run first (but not our own)
                parent = ".".join(parts[:i])
                if parent in modules and not name.startswith(parent + "."):
                    deps.add(parent)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_graph_sees_real_imports() -> None:
    graph = _graph()
    assert "harness.results.records" in graph["harness.results.store"]
    assert "zoo.contract" in graph["harness.worker.phases"]


def test_no_import_cycles_among_harness_and_zoo_modules() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (break each by moving the shared part down a layer):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_zoo_never_imports_harness() -> None:
    offenders = {m: sorted(d for d in deps if d.split(".")[0] == "harness")
                 for m, deps in _graph().items() if m.split(".")[0] == "zoo"}
    offenders = {m: d for m, d in offenders.items() if d}
    assert not offenders, f"zoo modules that import the host: {offenders}"


def test_plugins_import_only_zoo() -> None:
    offenders = {m: sorted(d for d in deps if d.split(".")[0] == "harness")
                 for m, deps in _graph().items() if m.split(".")[0] in PLUGINS}
    offenders = {m: d for m, d in offenders.items() if d}
    assert not offenders, f"plugin modules that import the host: {offenders}"
