"""The catalogue is well formed and in one-to-one correspondence with theorem tests."""
import ast
from pathlib import Path

import pytest

from gradcore.verify import catalogue

ROOT = Path(__file__).resolve().parent.parent
SEEDS = {"000_4824916cf301f1c3.txt", "002_96418150213d33a8.txt",
         "003_1271ccf28c3604bb.txt", "004_663d4a9e11a09e4a.txt"}


def theorem_claim_ids() -> dict[str, list[str]]:
    """Claim ids named by @pytest.mark.claim(...) in theorems/, with where they are."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "theorems").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "claim" \
                    and getattr(getattr(node.func, "value", None), "attr", None) == "mark":
                found.setdefault(node.args[0].value, []).append(f"{path.name}:{node.lineno}")
    return found


def test_catalogue_cites_the_seed_notes_or_publications():
    claims = catalogue.load()
    assert claims
    for c in claims.values():
        for s in c.sources:
            assert s.quote.strip(), c.id
            if s.kind == "seed":
                assert s.file in SEEDS and s.section.strip(), c.id
            else:
                assert s.authors and s.year > 1900 and s.title and s.locator and (s.doi or s.arxiv or s.url), c.id


PAPER = ('[[claim]]\nid = "LIT-01"\ntitle="t"\nstatement="s"\nmethod="symbolic"\nexpected_verdict="verified"\n'
         '[[claim.sources]]\nauthors = "Vaswani, Shazeer, Parmar"\nyear = 2017\ntitle = "Attention Is All You Need"\n'
         'arxiv = "1706.03762"\nlocator = "§3.2.1, footnote 4"\nquote = "q · k has mean 0 and variance d_k"\n')


def test_a_publication_is_a_source_with_its_own_citation(tmp_path):
    (tmp_path / "lit.toml").write_text(PAPER, encoding="utf-8")
    (src,) = catalogue.load(tmp_path)["LIT-01"].sources
    assert src.kind == "paper" and src.document == "Vaswani et al. 2017"
    assert src.cite() == "Vaswani et al. 2017, *Attention Is All You Need*, §3.2.1, footnote 4 (arXiv:1706.03762)"
    two = catalogue.Publication("Xavier Glorot, Yoshua Bengio", 2010, "T", "§4", "q", url="https://x")
    assert two.document == "Glorot & Bengio 2010" and two.cite().endswith("(https://x)")
    (tmp_path / "lit.toml").write_text(PAPER.replace('arxiv = "1706.03762"\n', ""), encoding="utf-8")
    with pytest.raises(catalogue.CatalogueError, match="doi, arxiv or url"):
        catalogue.load(tmp_path)


def test_every_catalogued_claim_has_exactly_one_theorem():
    tested = theorem_claim_ids()
    missing = [cid for cid in catalogue.load() if cid not in tested]
    assert not missing, f"catalogued claims without a theorem test: {missing}"
    doubled = {cid: where for cid, where in tested.items() if len(where) > 1}
    assert not doubled, f"claims with more than one theorem test: {doubled}"


def test_every_theorem_names_a_catalogued_claim():
    unknown = {cid: w for cid, w in theorem_claim_ids().items() if cid not in catalogue.load()}
    assert not unknown, f"theorem tests naming no catalogued claim: {unknown}"


@pytest.mark.parametrize("text,problem", [
    ('[[claim]]\nid = "bad"\n', "lacks"),
    ('[[claim]]\nid = "bad"\ntitle="t"\nstatement="s"\nmethod="symbolic"\nexpected_verdict="verified"\n'
     'sources=[{file="f", section="s", quote="q"}]\n', "not like"),
    ('[[claim]]\nid = "X-01"\ntitle="t"\nstatement="s"\nmethod="guess"\nexpected_verdict="verified"\n'
     'sources=[{file="f", section="s", quote="q"}]\n', "method"),
    ('[[claim]]\nid = "X-01"\ntitle="t"\nstatement="s"\nmethod="symbolic"\nexpected_verdict="true"\n'
     'sources=[{file="f", section="s", quote="q"}]\n', "expected_verdict"),
    ("[[claim]\n", "Expected"),
])
def test_malformed_catalogue_entries_are_named(tmp_path, text, problem):
    (tmp_path / "t.toml").write_text(text, encoding="utf-8")
    with pytest.raises(catalogue.CatalogueError, match=problem):
        catalogue.load(tmp_path)


def test_missing_catalogue_directory(tmp_path):
    with pytest.raises(catalogue.CatalogueError, match="does not exist"):
        catalogue.load(tmp_path / "nope")


def test_a_downstream_catalogue_is_added_to_the_built_in_one(tmp_path):
    (tmp_path / "mine.toml").write_text(PAPER.replace("LIT-01", "MY-01"), encoding="utf-8")
    both = catalogue.load(extra=(tmp_path,))
    assert "MY-01" in both and set(catalogue.load()) < set(both)
    assert set(catalogue.load(extra=(tmp_path,), builtin=False)) == {"MY-01"}
    with pytest.raises(catalogue.CatalogueError, match=f"unknown claim id 'NOPE-01'.*{tmp_path.name}"):
        both.claim("NOPE-01")
    (tmp_path / "clash.toml").write_text(PAPER.replace("LIT-01", "ACT-01"), encoding="utf-8")
    with pytest.raises(catalogue.CatalogueError, match="duplicate claim id ACT-01"):
        catalogue.load(extra=(tmp_path,))
