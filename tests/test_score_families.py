"""bench/score_families.py: corpus scores per family and per deciding rule, on a made-up manifest."""
from __future__ import annotations

import importlib.util
import json

import pytest

from bench import score_families as sf
from tests.conftest import CORPUS


def bounce(reason, hard, status):
    return {"reason": reason, "hard_bounce": hard, "status": status, "reply_code": None}


def event(reason, hard, status, rule, recipient="a@example.net"):
    return {"recipient": recipient, "reason": reason, "hard_bounce": hard, "status": status, "rule": rule}


MANIFEST = [
    {"file": "sisimai/lhost-postfix-01.eml", "kind": "bounce", "expect": [bounce("userunknown", True, "5.1.1")]},
    {"file": "sisimai/lhost-postfix-02.eml", "kind": "bounce",
     "expect": [bounce("mailboxfull", False, "4.2.2"), bounce("userunknown", True, "5.1.1")]},
    {"file": "sisimai/rhost-cox-01.eml", "kind": "bounce",
     "expect": [bounce("blocked", False, "5.1.0"), bounce("blocked", False, "5.1.0")]},
    {"file": "sisimai/lhost-qmail-01.eml", "kind": "bounce", "expect": [bounce("userunknown", True, "5.1.1")]},
    {"file": "sisimai/arf-02.eml", "kind": "complaint",
     "expect": [{"reason": "feedback", "hard_bounce": False, "status": None, "feedback_type": "abuse"}]},
    {"file": "flufl/postfix_02.txt", "kind": "bounce", "expect_recipients": ["b@example.org"]},
    {"file": "flufl/yale_01.txt", "kind": "bounce", "expect_recipients": ["c@cs.example.edu", "c@example.edu"]},
    {"file": "parsedmarc/aggregate___x.xml", "kind": "dmarc_aggregate", "expect": {"records": 1}},
    {"file": "sisimai/rfc3834-01.eml", "kind": "auto_reply"},
]
RESULTS = {
    "sisimai/lhost-postfix-01.eml": {"kind": "bounce", "events": [
        event("userunknown", True, "5.1.1", "rules.toml:userunknown#3 /user unknown/")]},
    "sisimai/lhost-postfix-02.eml": {"kind": "bounce", "events": [
        event("userunknown", True, "5.1.1", "rules.toml:userunknown#3 /user unknown/"),
        event("userunknown", True, "5.0.0", "rules.toml:userunknown#3 /user unknown/")]},
    "sisimai/rhost-cox-01.eml": {"kind": "bounce", "events": [
        event("blocked", False, "5.1.0", "rules.toml:blocked@cox#1 /cox/")]},
    # qmail-01 has no answer at all
    "sisimai/arf-02.eml": {"kind": "complaint", "events": [{"feedback_type": "abuse"}, {"feedback_type": "abuse"}]},
    "flufl/postfix_02.txt": {"kind": "bounce", "events": [{"recipient": "B@example.org"}]},
    "flufl/yale_01.txt": {"kind": "bounce", "events": [{"recipient": "c@example.edu"}]},
    "parsedmarc/aggregate___x.xml": {"kind": "dmarc_aggregate", "events": []},
}


@pytest.mark.parametrize("name, fam", [
    ("sisimai/lhost-postfix-03.eml", "postfix"), ("sisimai/rhost-cox-01.eml", "cox"),
    ("sisimai/rfc3464-04.eml", "rfc3464"), ("sisimai/arf-02.eml", "arf"), ("flufl/yale_01.txt", "yale"),
    ("flufl/simple_12.txt", "simple"), ("sisimai/lhost-x2-01.eml", "x2"), ("flufl/newmailru_01.txt", "newmailru"),
])
def test_family_comes_from_the_file_name(name, fam):
    assert sf.family(name) == fam


def test_rule_name_is_the_part_before_the_number():
    assert sf.rule_name({"rule": "rules.toml:userunknown#3 /user unknown/"}) == "rules.toml:userunknown"
    assert sf.rule_name({"rule": "status 4.4.7"}) == "status 4.4.7"
    assert sf.rule_name({}) == "(no rule)"


def by_name(scores):
    return {f.name: f for f in scores.families}


def test_per_family_counts():
    fams = by_name(sf.score(MANIFEST, RESULTS))
    assert set(fams) == {"postfix", "cox", "qmail", "arf", "yale"}  # no DMARC or auto-reply family
    postfix = fams["postfix"]
    assert postfix.files == 3  # two Sisimai files and one flufl file
    # postfix-02: one reason right of two; its second status is wrong; both hard right
    assert dict(postfix.tally) == {"reason": [2, 3], "hard": [2, 3], "status": [2, 3], "found": [2, 2],
                                   "recipients": [1, 1]}
    assert len(postfix.missed) == 1 and postfix.missed[0].startswith("sisimai/lhost-postfix-02.eml")
    assert dict(fams["cox"].tally) == {"reason": [1, 2], "hard": [1, 2], "status": [1, 2], "found": [1, 1]}
    assert dict(fams["qmail"].tally) == {} and fams["qmail"].missed == ["sisimai/lhost-qmail-01.eml: no answer"]
    assert dict(fams["arf"].tally) == {"complaint": [1, 2]}  # the extra event is a miss
    assert dict(fams["yale"].tally) == {"recipients": [0, 1]}


def test_families_are_sorted_worst_first_by_their_lowest_figure():
    scores = sf.score(MANIFEST, RESULTS)
    assert [f.name for f in scores.families] == ["yale", "arf", "cox", "postfix", "qmail"]
    assert [round(f.lowest(), 3) for f in scores.families] == [0.0, 0.5, 0.5, 0.667, 1.0]
    assert scores.totals["reason"] == [3, 5] and scores.totals["complaint"] == [1, 2]


def test_wrong_events_are_grouped_by_their_rule():
    rules = {r.name: r for r in sf.score(MANIFEST, RESULTS).rules}
    assert (rules["rules.toml:userunknown"].events, rules["rules.toml:userunknown"].wrong) == (3, 1)
    assert rules["rules.toml:userunknown"].families == {"postfix": 1}
    assert (rules["rules.toml:blocked@cox"].events, rules["rules.toml:blocked@cox"].wrong) == (1, 0)
    assert sf.score(MANIFEST, RESULTS).rules[0].name == "rules.toml:userunknown"


def test_table_and_json():
    scores = sf.score(MANIFEST, RESULTS)
    lines = sf.render(scores).splitlines()
    assert lines[1].split() == ["family", "files", "reason", "%", "hard", "%", "status", "%", "found", "%",
                                "recips", "%", "complaint", "%", "misses"]
    assert lines[2].split() == ["yale", "1", "-", "-", "-", "-", "0.0", "-", "1"]
    assert lines[5].split() == ["postfix", "3", "66.7", "66.7", "66.7", "100.0", "100.0", "-", "1"]
    assert any(line.split()[:4] == ["rules.toml:userunknown", "3", "1", "33.3"] for line in lines)
    data = json.loads(json.dumps(sf.as_json(scores)))
    assert [f["family"] for f in data["families"]] == ["yale", "arf", "cox", "postfix", "qmail"]
    assert data["families"][3]["counts"]["reason"] == "2/3"
    assert data["totals"]["counts"]["reason"] == "3/5"


def test_totals_agree_with_score_corpus(monkeypatch, capsys, tmp_path):
    """score_corpus.py, given the same answers, reaches the same totals."""
    tool = CORPUS.parent / "tools" / "score_corpus.py"
    if not tool.is_file():
        pytest.skip(f"score_corpus.py is not at {tool}")
    spec = importlib.util.spec_from_file_location("score_corpus", tool)
    sc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sc)
    (tmp_path / "manifest.json").write_text(json.dumps(MANIFEST))
    answers = {str(tmp_path / name): dict(r, file=str(tmp_path / name)) for name, r in RESULTS.items()}
    monkeypatch.setattr(sc, "run", lambda cmd, paths, timeout: (
        {sc.os.path.realpath(p): answers[p] for p in paths if p in answers}, 1.0, 0))
    monkeypatch.setattr("sys.argv", ["score_corpus.py", str(tmp_path), "--json"])
    with pytest.raises(SystemExit):  # a missing answer is always below its minimum
        sc.main()
    theirs = json.loads(capsys.readouterr().out)["counts"]
    ours = sf.as_json(sf.score(MANIFEST, RESULTS))["totals"]["counts"]
    assert {k: theirs[k] for k in ours} == ours
