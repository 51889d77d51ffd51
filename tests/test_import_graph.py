"""`helpers` has no import circle, counting imports inside functions too.

An import inside a function is still a dependency: it only moves the failure (or the
half-initialised module) to the first call. Edges go from a module to each `helpers` module it
imports (``from helpers.x import y`` counts ``helpers.x.y`` when that is a module, else
``helpers.x``); a submodule's implicit import of its package is not an edge, because every
package would otherwise be a circle with its own submodules.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "helpers"


def module_name(path: Path) -> str:
    parts = ("helpers",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def _target(name: str) -> str | None:
    """The helpers module ``name`` refers to (the longest module prefix), or None."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def imports_of(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):  # every import, at module level or inside a function
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = _target(name) if name.startswith("helpers") else None
            if target and target != module:
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_helpers_has_no_import_circle():
    graph = {module: imports_of(module) for module in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_only_the_registry_imports_stand_in_builders():
    importers = sorted(m for m in MODULES if not m.startswith("helpers.standins")
                       and any(t.startswith("helpers.standins") for t in imports_of(m)))
    assert importers == ["helpers.resources"], importers


def test_the_walker_sees_function_level_imports_and_circles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    # helpers.milnce's CLI imports helpers.report inside a function: the edge is there.
    assert "helpers.report" in imports_of("helpers.milnce")
