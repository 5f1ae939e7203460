"""Run a README worked example of `gradcore check` as written: its file, its command, its verdicts."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from .cli_helpers import ROOT, run

ROW = re.compile(r"^(\S+)\s+(✅|❌|❔|⚠️?)\s*(\S+)")


def example(filename: str) -> tuple[str, list[str], list[str]]:
    """The README's ``# filename`` Python block, the ``$ gradcore check`` command after it and its output lines."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(rf"```python\n# {re.escape(filename)}\n(.*?)```", text, re.S)
    assert code, f"README has no ```python block starting '# {filename}'"
    shown = re.search(r"```text\n\$ (gradcore check [^\n]*)\n(.*?)```", text[code.end():], re.S)
    assert shown, f"README shows no `gradcore check` run after {filename}"
    return code.group(1), shlex.split(shown.group(1))[1:], shown.group(2).splitlines()


def verdicts(lines: list[str]) -> list[tuple[str, ...]]:
    """(clause, verdict mark, verdict word) of each table row, and the headline before its ':'-separated tail."""
    rows = [m.groups() for line in lines if (m := ROW.match(line))]
    head = [tuple(line.split(": ", 1)) for line in lines[:1]]
    return head + rows


def run_example(filename: str, tmp_path: Path, monkeypatch, capsys) -> tuple[int, list[tuple[str, ...]],
                                                                           list[tuple[str, ...]]]:
    """Write the example's file into ``tmp_path``, run its command there; (exit status, shown, got)."""
    source, argv, shown = example(filename)
    (tmp_path / filename).write_text(source, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    status, out, _ = run(capsys, *argv)
    return status, verdicts(shown), verdicts(out.splitlines())
