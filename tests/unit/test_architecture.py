"""The layering rules of docs/architecture.md, checked on the source: no import cycles between fmops modules
(function-level and TYPE_CHECKING imports count too), and the core never imports dagster."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "fmops_pipelines"
CORE = ("data", "fm", "supervision", "specialist", "evaluation")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module named by an import anywhere in the file (resolved to its longest known module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = {t for t in imports_of(path) if t in modules and t != name}
        # a package's __init__ is not an edge target when the import names a submodule of it
        graph[name] = {t for t in targets if not any(o.startswith(t + ".") for o in targets)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_core_modules_never_import_dagster():
    for layer in CORE:
        for path in (PACKAGE / layer).rglob("*.py"):
            offending = {m for m in imports_of(path) if m == "dagster" or m.startswith("dagster.")}
            assert not offending, f"{path.relative_to(REPO)} imports {sorted(offending)}"


def test_abstain_is_defined_once():
    definitions = [p.relative_to(REPO) for p in PACKAGE.rglob("*.py")
                   if any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "ABSTAIN" for t in n.targets)
                          for n in ast.walk(ast.parse(p.read_text())))]
    assert len(definitions) == 1, definitions
