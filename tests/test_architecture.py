"""The layout tells the architecture: data flows one way, with no import cycles.

The graph is read from the source by :mod:`gradcore.verify.imports`: every import counts,
including those inside functions (a lazy import hides a cycle, it does not remove it); only
``if TYPE_CHECKING:`` imports, which never run, are exempt.

Packages stack in one order (:data:`LAYERS`), and a module may import only its own layer or
those below it: errors and validation → models and their exact analyses → the measuring core →
judging and rendering → the audit → the command line and the public testing face.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gradcore.verify.imports import PACKAGE, closure, graph, imports, module_name

ROOT = Path(__file__).resolve().parents[1]

GRAPH = graph()

# (layer, the modules it holds by name, the subpackages of gradcore it holds); every other
# module of gradcore — a top-level model or exact analysis — is in "models and exact analyses".
LAYERS = (
    ("errors and validation", {"gradcore", "gradcore.errors", "gradcore._validate"}, set()),
    ("models and exact analyses", set(), set()),
    ("measuring core", set(), {"measure"}),
    ("judging and rendering", set(), {"verify"}),
    ("audit", set(), {"audit"}),
    ("command line and testing face", {"gradcore.cli", "gradcore.testing"}, {"cli"}),
)
MODELS = 1


def layer(module: str) -> int:
    """The index in :data:`LAYERS` of ``module``."""
    parts = module.split(".")
    subpackage = parts[1] if len(parts) > 1 else ""
    return next((i for i, (_, names, packages) in enumerate(LAYERS) if module in names or subpackage in packages),
                MODELS)


def climbing(g: dict[str, set[str]]) -> list[str]:
    """Every import in ``g`` that reaches a higher layer than its importer's."""
    return sorted(f"{m} ({LAYERS[layer(m)][0]}) imports {d} ({LAYERS[layer(d)][0]})"
                  for m, deps in g.items() for d in deps if layer(d) > layer(m))


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
    assert "gradcore.verify.plugin" not in closure(GRAPH, {"gradcore.cli"})


def test_every_module_sits_in_a_layer():
    assert layer("gradcore.errors") == 0 and layer("gradcore.normalisation") == 1
    assert layer("gradcore.measure.search") == 2 and layer("gradcore.verify.contracts.norm") == 3
    assert layer("gradcore.audit.blocks") == 4 and layer("gradcore.cli") == 5


def test_no_import_climbs_the_layers():
    assert climbing(GRAPH) == []


def test_a_climbing_import_is_caught():
    planted = {**GRAPH, "gradcore.measure.search": GRAPH["gradcore.measure.search"] | {"gradcore.verify.record"}}
    assert climbing(planted) == ["gradcore.measure.search (measuring core) imports gradcore.verify.record "
                                 "(judging and rendering)"]


def _error_names() -> set[str]:
    """Every exception class (and ExitStatus) gradcore.errors defines."""
    import inspect

    from gradcore import errors
    return {n for n, obj in vars(errors).items() if inspect.isclass(obj) and obj.__module__ == errors.__name__}


def test_errors_are_imported_from_gradcore_errors_only():
    """Issue 21 §5: one import place for the error classes, so no module re-exports them
    (``gradcore.GradcoreInputError`` is the documented public name and stays)."""
    names, wrong = _error_names(), []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] not in ("gradcore", "tests", "theorems", "examples") or rel.as_posix() == "gradcore/errors.py":
            continue
        package = list(rel.parts[:-1])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = node.module or ""
            if node.level:
                module = ".".join(package[: len(package) - node.level + 1] + ([module] if module else []))
            for alias in node.names:
                if alias.name in names and module != "gradcore.errors" and not (
                        module == "gradcore" and alias.name == "GradcoreInputError"):
                    wrong.append(f"{rel}:{node.lineno} imports {alias.name} from {module}")
    assert not wrong, "\n".join(wrong)
