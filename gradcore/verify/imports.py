"""gradcore's own import graph, read from the source (no module is imported).

Used by ``tests/test_architecture.py`` (no cycles; renderers do not measure; the CLI
loads no pytest) and by ``mutation/run.py`` (which tests can see a planted bug: those
whose imports reach the mutated module). Every ``import`` counts, including those
inside functions; only ``if TYPE_CHECKING:`` blocks are exempt, since they never run.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.resolve().relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _hidden(tree: ast.AST) -> set[int]:
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden |= {id(n) for child in node.body for n in ast.walk(child)}
    return hidden


def imports(path: Path, package: str = "") -> set[str]:
    """Every module name ``path`` imports (relative imports resolved against ``package``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = _hidden(tree)
    found = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found |= {f"{base}.{a.name}" for a in node.names} | {base}
    return found


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """gradcore module → the gradcore modules it imports (a package's own __init__ excluded)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    out = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        out[name] = {m for m in imports(path, package) if m in modules and m != name
                     and not name.startswith(m + ".")}
    return out


def closure(g: dict[str, set[str]], start: set[str]) -> set[str]:
    """Every module reachable from ``start`` (``start`` itself included)."""
    seen, todo = set(start), list(start)
    while todo:
        for nxt in g.get(todo.pop(), set()) - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen
