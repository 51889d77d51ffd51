"""The benchmarks are not run by the suite (they take half an hour), so a rename in `helpers`
can break them unseen: the full run of 2026-12-04 stopped at `mmv._compiled_apply`, which had
moved to `helpers.mmv.encoder`. This checks, without running them, that every attribute the
benchmark scripts read from a `helpers` module exists there."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _helpers_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> `helpers` module it is bound to, for every ``from helpers... import``
    in the file (the form the benchmarks use)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and \
                node.module.split(".")[0] == "helpers":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                try:
                    importlib.import_module(full)
                except ImportError:
                    continue  # a function or class, not a module: nothing is read from it here
                names[alias.asname or alias.name] = full
    return names


def _missing(tree: ast.AST) -> list[tuple[int, str, str]]:
    """``(line, module, attribute)`` of every attribute read from an imported `helpers` module
    that the module does not have."""
    names = _helpers_names(tree)
    return [(node.lineno, names[node.value.id], node.attr) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id in names and isinstance(node.ctx, ast.Load)
            and not hasattr(importlib.import_module(names[node.value.id]), node.attr)]


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py")))
def test_every_helpers_attribute_a_benchmark_reads_exists(script):
    tree = ast.parse((BENCHMARKS / script).read_text(encoding="utf-8"))
    missing = [f"{script}:{line}: {module}.{attr}" for line, module, attr in _missing(tree)]
    assert not missing, "benchmarks read names that helpers no longer has:\n" + "\n".join(missing)


def test_the_check_finds_a_name_that_is_missing():
    tree = ast.parse("from helpers import mmv\nmmv._compiled_apply\nmmv.load_model\n")
    assert _missing(tree) == [(2, "helpers.mmv", "_compiled_apply")]
