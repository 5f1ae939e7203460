"""Coverage is a checked property (issue 22 §3): every catalogue claim is reached by a technique kind.

A claim is *reached* when a registered contract clause cites it (``gradcore check`` then
measures it on any new technique of that kind), or is marked ``applies_to = "none"`` with a
``reason`` in its TOML entry: a definition, or a formula of one named function, that no
technique can satisfy or break.
"""
from __future__ import annotations

import json
from collections import Counter

import pytest

from gradcore.verify import catalogue, plugin, report
from gradcore.verify.contracts import reaches

from .cli_helpers import CATALOGUE, small_results

CLAIMS = catalogue.load()
REACHES = reaches()
NONE = {cid for cid, c in CLAIMS.items() if c.applies_to == "none"}
TARGET = 0.85


def _share() -> tuple[float, dict[str, tuple[int, int]]]:
    """The share of claims some kind reaches, and per topic (reached, claims)."""
    topics = Counter(c.topic for c in CLAIMS.values())
    reached = Counter(c.topic for cid, c in CLAIMS.items() if cid in REACHES)
    return len(set(REACHES) & set(CLAIMS)) / len(CLAIMS), {t: (reached[t], n) for t, n in topics.items()}


# Claims no clause cites yet and that are not definitions. Empty since issue 22: the list is a
# ratchet: a claim that loses its clause fails the test, and so does one that gains a clause while it
# is still listed here — remove it then.
AWAITING_A_CLAUSE: set[str] = set()


def test_every_claim_is_reached_by_a_kind_marked_none_or_listed_as_awaiting_a_clause():
    share, topics = _share()
    print(f"reachable: {share:.1%} of {len(CLAIMS)} claims; marked none: {len(NONE)}")
    print("\n".join(f"  {t:<16} {r}/{n}" for t, (r, n) in sorted(topics.items())))
    missing = {cid for cid in CLAIMS if cid not in REACHES and cid not in NONE}
    assert missing <= AWAITING_A_CLAUSE, (f"cited by no contract clause and not marked applies_to = \"none\": "
                                          f"{', '.join(sorted(missing - AWAITING_A_CLAUSE))}")
    assert not AWAITING_A_CLAUSE - missing, (f"now cited by a clause (or marked none): remove "
                                             f"{', '.join(sorted(AWAITING_A_CLAUSE - missing))} from the list")


def test_a_claim_marked_none_is_cited_by_no_clause_and_says_why():
    both = {cid: REACHES[cid] for cid in NONE if cid in REACHES}
    assert not both, f"marked applies_to = \"none\" yet cited by a clause: {both}"
    assert all(len(CLAIMS[cid].reason) > 20 for cid in NONE)
    assert len(NONE) <= 15   # definitions and named formulas are few; a technique claim belongs to a kind


def test_every_cited_claim_is_in_the_catalogue():
    assert not set(REACHES) - set(CLAIMS), sorted(set(REACHES) - set(CLAIMS))


def test_the_kinds_reach_85_percent_of_the_claims_and_every_topic():
    share, topics = _share()
    assert share >= TARGET, f"{share:.1%} of the claims are reachable, below {TARGET:.0%}"
    assert all(r for r, _ in topics.values()), sorted(t for t, (r, _) in topics.items() if not r)


@pytest.mark.parametrize("fields, message", [
    ('applies_to = "some"\nreason = "r"', "applies_to 'some' not in"),
    ('applies_to = "none"', "needs a reason"),
    ('applies_to = "none"\nreason = 3', "needs a reason"),
    ('reason = "why"', "has a reason but no applies_to"),
])
def test_the_loader_type_checks_applies_to(tmp_path, fields, message):
    entry = CATALOGUE.split("[[claim.sources]]")[0] + fields + "\n[[claim.sources]]" + \
        CATALOGUE.split("[[claim.sources]]")[1].split("[[claim]]")[0]
    (tmp_path / "t.toml").write_text(entry, encoding="utf-8")
    with pytest.raises(catalogue.CatalogueError, match=message):
        catalogue.load(tmp_path)


def test_the_report_shows_the_kinds_each_claim_reaches(tmp_path):
    """The plugin writes ``reaches`` into the results document; the renderer only shows it."""
    doc = json.loads(small_results(tmp_path, n=200).read_text(encoding="utf-8"))
    reached = plugin._reaches()
    for c in doc["claims"]:
        c["reaches"] = reached.get(c["id"], [])
    by_id = {c["id"]: c for c in doc["claims"]}
    assert by_id["INIT-07"]["reaches"] == ["activation", "initialiser"] and by_id["ACT-01"]["reaches"] == []
    by_id["ACT-01"].update(applies_to="none", reason=CLAIMS["ACT-01"].reason)
    rows = {line.split("|")[1].strip(): line for line in report.render(doc).splitlines()
            if line.startswith("| [")}
    assert rows["[INIT-07](#init-07)"].rstrip(" |").endswith("activation, initialiser")
    assert rows["[ACT-01](#act-01)"].rstrip(" |").endswith("none (a definition or formula)")
