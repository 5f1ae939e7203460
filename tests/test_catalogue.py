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
    ('[[claim]]\nid = "X-01"\n', "claim X-01, field title: is missing"),
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


GOOD = ('[[claim]]\nid = "X-01"\ntitle = "t"\nstatement = "s"\nmethod = "symbolic"\nexpected_verdict = "verified"\n'
        'assumptions = ["a"]\ntolerance = { rtol = 0.1, atol = 0.0 }\n'
        '[[claim.sources]]\nfile = "f"\nsection = "s"\nquote = "q"\n')
PAPER_SOURCE = ('[[claim.sources]]\nauthors = "A B"\nyear = 2017\ntitle = "T"\narxiv = "1"\nlocator = "§1"\n'
                'quote = "q"\n')


@pytest.mark.parametrize("old, new, field", [
    ('assumptions = ["a"]', 'assumptions = "x real"', "assumptions"),          # was: a list of characters
    ('assumptions = ["a"]', 'assumptions = ["a", 3]', "assumptions[1]"),
    ('assumptions = ["a"]', 'assumptions = ["a\\nb"]', "assumptions[0]"),     # would break one-line views
    ('year = 2017', 'year = true', "sources[1].year"),                          # bool is an int in Python
    ('year = 2017', 'year = 17', "sources[1].year"),
    ('year = 2017', 'year = "2017"', "sources[1].year"),
    ('rtol = 0.1', 'rtol = nan', "tolerance.rtol"),                             # reached show --json as NaN
    ('rtol = 0.1', 'rtol = inf', "tolerance.rtol"),
    ('rtol = 0.1', 'rtol = -0.1', "tolerance.rtol"),
    ('rtol = 0.1', 'rtol = 1.5', "tolerance.rtol"),
    ('rtol = 0.1', 'rtol = "0.1"', "tolerance.rtol"),
    ('atol = 0.0', 'atol = -inf', "tolerance.atol"),
    ('atol = 0.0', 'atol = 0.0, rtoll = 1.0', "tolerance.rtoll"),
    ('title = "t"', 'title = 3', "title"),
    ('title = "t"', 'title = ["t"]', "title"),
    ('title = "t"', 'title = ""', "title"),
    ('statement = "s"', 'statement = { a = 1 }', "statement"),
    ('method = "symbolic"', 'method = ["symbolic"]', "method"),
    ('expected_verdict = "verified"', 'expected_verdict = 1', "expected_verdict"),
    ('tolerance = { rtol = 0.1, atol = 0.0 }', 'tolerance = 0.1', "tolerance"),
    ('tolerance = { rtol = 0.1, atol = 0.0 }', 'tolerance = { rtol = 0.1 }\nasumptions = ["b"]', "asumptions"),
    ('file = "f"', 'file = 7', "sources[0].file"),
    ('quote = "q"\n', 'quote = "q"\nkind = "book"\n', "sources[0].kind"),
])
def test_every_field_is_type_checked_naming_file_claim_and_field(tmp_path, old, new, field):
    """Each of these used to load (a string read as its characters, a boolean year, a NaN tolerance)."""
    text = GOOD + PAPER_SOURCE
    assert old in text
    (tmp_path / "t.toml").write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(catalogue.CatalogueError) as e:
        catalogue.load(tmp_path)
    message = str(e.value)
    assert f"t.toml: claim X-01, field {field}:" in message and "\n" not in message


def test_a_well_formed_entry_still_loads(tmp_path):
    (tmp_path / "t.toml").write_text(GOOD + PAPER_SOURCE, encoding="utf-8")
    claim = catalogue.load(tmp_path)["X-01"]
    assert claim.assumptions == ("a",) and (claim.rtol, claim.atol) == (0.1, 0.0)
    assert [s.kind for s in claim.sources] == ["seed", "paper"] and claim.sources[1].year == 2017


@pytest.mark.parametrize("cid", ["ACT-01\\n", "ACT-1", "act-01", "ACT 01", "ACT-٠١", "../X-01"])
def test_ids_must_be_exactly_like_act_01(tmp_path, cid):
    """``$`` matched before a trailing newline and ``\\d`` matched Arabic-Indic digits."""
    (tmp_path / "t.toml").write_text(GOOD.replace('"X-01"', f'"{cid}"'), encoding="utf-8")
    with pytest.raises(catalogue.CatalogueError, match="field id: .* is not like 'ACT-01'"):
        catalogue.load(tmp_path)


@pytest.mark.parametrize("text, problem", [
    ("claim = 3\n", "'claim' must be an array of tables"),
    ('claim = ["x"]\n', "claim #1, field entry: must be a table"),
    ("[claims]\nid = 1\n", "unknown top-level key 'claims'"),
    (GOOD.replace('[[claim.sources]]\nfile = "f"\nsection = "s"\nquote = "q"\n', "sources = []\n"), "field sources"),
    ("a = " + "[" * 5000 + "]" * 5000 + "\n", "t.toml"),
])
def test_malformed_catalogue_files(tmp_path, text, problem):
    (tmp_path / "t.toml").write_text(text, encoding="utf-8")
    with pytest.raises(catalogue.CatalogueError, match=problem):
        catalogue.load(tmp_path)


def test_unreadable_catalogue_paths(tmp_path):
    """A symlink loop, a directory named x.toml, a file passed as the directory, a name too long:
    each is one CatalogueError naming the path (they were RuntimeError, IsADirectoryError, OSError)."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(catalogue.CatalogueError, match="loop"):
        catalogue.load(tmp_path / "loop")
    (tmp_path / "d" / "x.toml").mkdir(parents=True)
    with pytest.raises(catalogue.CatalogueError, match="x.toml: cannot be read"):
        catalogue.load(tmp_path / "d")
    (tmp_path / "f.toml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(catalogue.CatalogueError, match="is not a directory"):
        catalogue.load(tmp_path / "f.toml")
    with pytest.raises(catalogue.CatalogueError, match="catalogue directory .*aaaa"):
        catalogue.load(tmp_path / ("a" * 300))


def test_a_catalogue_file_that_cannot_be_read(tmp_path, monkeypatch):
    """chmod 000 does not stop root, so the refusal is simulated where the loader reads."""
    (tmp_path / "t.toml").write_text(GOOD, encoding="utf-8")

    def refuse(path, max_bytes):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(catalogue.atomic, "read_text", refuse)
    with pytest.raises(catalogue.CatalogueError, match="t.toml: cannot be read: Permission denied"):
        catalogue.load(tmp_path)


def test_duplicate_ids_across_two_files_of_one_directory(tmp_path):
    (tmp_path / "a.toml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.toml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(catalogue.CatalogueError, match="b.toml: duplicate claim id X-01"):
        catalogue.load(tmp_path)
