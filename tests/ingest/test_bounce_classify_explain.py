"""`postwatch explain`: each recipient, what the receiver said, and the rule that decided."""
from __future__ import annotations

import json

from ingest.bounce.explain import explain
from ingest.config import IngestConfig
from postwatch.cli import main
from tests.ingest.messages import postfix_dsn

TWO = (("gone@example.net", "5.1.1", "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown"),
       ("full@example.net", "4.2.2", "452 4.2.2 <full@example.net>: Mailbox full, try again later"))


def test_explain_names_rule_and_matched_text():
    out = explain(postfix_dsn(TWO))
    assert out["kind"] == "bounce"
    by = {e["recipient"]: e for e in out["events"]}
    gone = by["gone@example.net"]
    assert gone["reason"] == "userunknown" and gone["hard_bounce"] is True
    assert gone["rule"].startswith("rules.toml:userunknown")
    assert gone["matched"].lower() in gone["diagnostic"].lower()
    full = by["full@example.net"]
    assert (full["reason"], full["category"], full["status"]) == ("mailboxfull", "transient", "4.2.2")


def test_explain_uses_the_operator_rules_file(tmp_path):
    own = tmp_path / "ours.toml"
    own.write_text("[[rule]]\nreason = \"filtered\"\nmatch = ['mailbox full, try again']\n", encoding="utf-8")
    out = explain(postfix_dsn(TWO), IngestConfig(rules_file=str(own)))
    full = [e for e in out["events"] if e["recipient"] == "full@example.net"][0]
    assert full["reason"] == "filtered"
    assert full["rule"] == "ours.toml:filtered#1 /mailbox full, try again/"


def test_explain_command(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no postwatch.toml here: the embedded defaults
    path = tmp_path / "b.eml"
    path.write_bytes(postfix_dsn(TWO))
    assert main(["explain", str(path)]) == 0
    text = capsys.readouterr().out
    assert "gone@example.net" in text and "rules.toml:userunknown" in text and "matched:" in text
    assert main(["explain", "--json", str(path)]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["file"].endswith("b.eml")
    assert {e["reason"] for e in row["events"]} == {"userunknown", "mailboxfull"}


def test_explain_on_a_non_bounce(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "note.eml"
    path.write_bytes(b"From: a@example.com\nTo: b@example.com\nSubject: hello\n\nhi\n")
    assert main(["explain", str(path)]) == 0
    assert "note.eml" in capsys.readouterr().out
