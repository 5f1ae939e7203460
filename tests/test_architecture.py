"""The layout tells the architecture: data flows one way, with no import cycles.

Every ``import`` in ``gradcore/`` counts, including the ones inside functions (a lazy
import hides a cycle, it does not remove it); only ``if TYPE_CHECKING:`` blocks are
exempt, since they never run.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "gradcore"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden |= {id(n) for child in node.body for n in ast.walk(child)}
    return hidden


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = _type_checking_nodes(tree)
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found |= {f"{base}.{a.name}" for a in node.names} | {base}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path) if m in modules and m != name
                       and not name.startswith(m + ".")}  # a package's own __init__ is not a dependency
    return graph


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in graph[node]:
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


GRAPH = _graph()


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_one_that_imports_it_back(module):
    cycle = _cycle_through(GRAPH, module)
    assert cycle is None, " → ".join(cycle)


def test_gradcore_never_imports_theorems_or_pytest_outside_its_test_integrations():
    allowed_pytest = {"gradcore.verify.plugin", "gradcore.testing"}
    for path in ROOT.rglob("*.py"):
        name, imported = _module_name(path), _imports(path)
        assert not any(m.split(".")[0] == "theorems" for m in imported), name
        if name not in allowed_pytest:
            assert "pytest" not in {m.split(".")[0] for m in imported}, f"{name} imports pytest"


def test_renderers_do_not_measure():
    renderers = ("gradcore.verify.report", "gradcore.verify.figures", "gradcore.verify.views",
                 "gradcore.verify.check_report")
    for name in renderers:
        measuring = {m for m in GRAPH.get(name, ()) if m.startswith(("gradcore.measure", "gradcore.verify.contracts"))
                     or m == "gradcore.verify.check"}
        assert not measuring, f"{name} imports {sorted(measuring)}"


def _closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_the_command_line_does_not_load_pytest_to_print_help():
    assert "gradcore.verify.plugin" not in _closure(GRAPH, "gradcore.verify.cli")
