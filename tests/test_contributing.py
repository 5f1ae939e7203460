"""CONTRIBUTING.md describes the code as it is: every file and module it names exists."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
LAYOUT = TEXT[TEXT.index("## Layout"):TEXT.index("## The pytest plugin")]


def _named_files() -> list[Path]:
    """Every ``path.py`` the layout names, resolved against the package folder it is listed under."""
    found, folder = [], ROOT / "gradcore"
    for token in re.findall(r"`([^`]+)`", LAYOUT):
        if token.endswith("/") and (ROOT / token).is_dir():
            folder = ROOT / token
        elif token.startswith("gradcore/") and token.endswith((".py", ".json")):
            found.append(ROOT / token)
            folder = (ROOT / token).parent
        elif re.fullmatch(r"[a-z_]+\.(py|json)", token):
            found.append(folder / token)
    return found


def test_every_file_the_layout_names_exists():
    named = _named_files()
    assert len(named) > 40
    missing = [str(p.relative_to(ROOT)) for p in named if not p.is_file()]
    assert not missing, f"CONTRIBUTING names files that do not exist: {missing}"


def test_every_module_of_the_package_is_named_in_the_layout():
    named = {p.resolve() for p in _named_files()}
    modules = [p for p in (ROOT / "gradcore").rglob("*.py") if p.name != "__init__.py"
               and p.parent.name in ("verify", "measure", "audit", "contracts") and not p.name.startswith("_")]
    helpers = [p for p in modules if p.parent.name == "measure"]   # recipes are named by example only
    unnamed = [str(p.relative_to(ROOT)) for p in modules if p.resolve() not in named and p not in helpers
               and p.parent.name != "contracts"]   # one module per kind: the kinds are listed by the registry
    assert not unnamed, f"modules the layout does not describe: {unnamed}"


def _resolves(dotted: str) -> bool:
    """``gradcore.a.b`` is a module, or an attribute of the module ``gradcore.a``."""
    import importlib

    try:
        importlib.import_module(dotted)
        return True
    except ImportError:
        module, _, attr = dotted.rpartition(".")
        try:
            return hasattr(importlib.import_module(module), attr)
        except ImportError:
            return False


def test_every_dotted_name_resolves():
    names = set(re.findall(r"`(gradcore(?:\.[A-Za-z_]+)+)`", TEXT))
    assert names and not [n for n in sorted(names) if not _resolves(n)]
