"""The layout tells the architecture: data flows one way, with no import cycles.

The graph is read from the source by :mod:`gradcore.verify.imports`: every import counts,
including those inside functions (a lazy import hides a cycle, it does not remove it).
"""
from __future__ import annotations

import pytest

from gradcore.verify.imports import PACKAGE, closure, graph, imports, module_name

GRAPH = graph()


def _cycle_through(g: dict[str, set[str]], start: str) -> list[str] | None:
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in g[node]:
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_one_that_imports_it_back(module):
    cycle = _cycle_through(GRAPH, module)
    assert cycle is None, " → ".join(cycle)


def test_gradcore_never_imports_theorems_or_pytest_outside_its_test_integrations():
    allowed_pytest = {"gradcore.verify.plugin", "gradcore.testing"}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        imported = {m.split(".")[0] for m in imports(path, name.rpartition(".")[0])}
        assert "theorems" not in imported, name
        if name not in allowed_pytest:
            assert "pytest" not in imported, f"{name} imports pytest"


def test_renderers_do_not_measure():
    renderers = ("gradcore.verify.report", "gradcore.verify.figures", "gradcore.verify.views",
                 "gradcore.verify.check_report")
    for name in renderers:
        measuring = {m for m in GRAPH.get(name, ()) if m.startswith(("gradcore.measure", "gradcore.verify.contracts"))
                     or m == "gradcore.verify.check"}
        assert not measuring, f"{name} imports {sorted(measuring)}"


def test_the_command_line_does_not_load_pytest_to_print_help():
    assert "gradcore.verify.plugin" not in closure(GRAPH, {"gradcore.verify.cli"})
