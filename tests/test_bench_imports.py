"""The bench package by concern: every module imports, and the package's own import graph has no cycle."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import compactor.bench

PACKAGE = "compactor.bench"


def modules() -> dict:
    root = Path(compactor.bench.__file__).parent
    return {m.name: root / f"{m.name}.py" for m in pkgutil.iter_modules([str(root)]) if not m.ispkg}


def intra_imports(name: str, path: Path) -> set:
    """The package's modules this module imports (relative or absolute; lazy imports inside functions count)."""
    known, out = modules(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                targets = [node.module] if node.module else [a.name for a in node.names]
            elif node.level == 0 and node.module and node.module.startswith(PACKAGE + "."):
                targets = [node.module[len(PACKAGE) + 1:].split(".")[0]]
            elif node.level == 0 and node.module == PACKAGE:
                targets = [a.name for a in node.names]
            else:
                continue
            out |= {t.split(".")[0] for t in targets if t and t.split(".")[0] in known}
        elif isinstance(node, ast.Import):
            out |= {a.name[len(PACKAGE) + 1:].split(".")[0] for a in node.names
                    if a.name.startswith(PACKAGE + ".") and a.name[len(PACKAGE) + 1:].split(".")[0] in known}
    return out - {name}


def test_every_bench_module_imports():
    for name in modules():
        if name != "__main__":  # it runs the CLI
            importlib.import_module(f"{PACKAGE}.{name}")


def test_the_bench_import_graph_is_acyclic():
    graph = {name: intra_imports(name, path) for name, path in modules().items()}
    state: dict = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != "open", f"import cycle: {' -> '.join(stack + [node, nxt])}"
            if nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert "cli" not in graph["sweep"]  # the cycle this package once had
