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


def test_every_shipped_rule_says_where_its_text_comes_from():
    from ingest.bounce.rules import SHIPPED, load_rules

    shipped = [r for r in load_rules().rules if r.file == SHIPPED]
    assert len(shipped) > 100
    assert [r.name for r in shipped if not r.source.strip()] == []


def test_a_shipped_block_without_source_is_refused():
    import tomllib
    from importlib import resources

    import pytest

    from ingest.bounce.rules import RulesError, check_sources

    text = resources.files("ingest.bounce").joinpath("rules.toml").read_text("utf-8")
    data = tomllib.loads(text)
    check_sources(data)
    del data["rule"][2]["source"]
    with pytest.raises(RulesError, match=r"rules\.toml: rule 3 \(requireptr\) has no `source`"):
        check_sources(data)
    data["rule"][2]["source"] = "  "
    with pytest.raises(RulesError, match="rule 3"):
        check_sources(data)


def test_operator_rules_need_no_source(tmp_path):
    from ingest.bounce.rules import load_rules

    own = tmp_path / "ours.toml"
    own.write_text("[[rule]]\nreason = \"filtered\"\nmatch = ['no thanks']\n"
                   "[[rule]]\nreason = \"blocked\"\nmatch = ['go away']\nsource = \"our own MX\"\n",
                   encoding="utf-8")
    rules = load_rules(str(own))
    first, second = rules.rules[:2]
    assert (first.file, first.source) == ("ours.toml", "operator rules file ours.toml")
    assert second.source == "our own MX"
    assert rules.rule_for("ours.toml:blocked#1 /go away/") is second
    assert rules.rule_for("status 5.1.1") is None and rules.rule_for(None) is None


DSN = b"""From: MAILER-DAEMON@mx.example.com (Mail Delivery System)
To: bounces@example.com
Subject: Undelivered Mail Returned to Sender
Date: Tue, 03 Nov 2026 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="X"

--X
Content-Type: text/plain

Your message could not be delivered.

--X
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; x@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <x@example.org>: Recipient address rejected: User unknown in local recipient table

--X--
"""


def test_explain_prints_the_deciding_rules_source(tmp_path, capsys, monkeypatch):
    from ingest.bounce.rules import load_rules

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "dsn.eml"
    path.write_bytes(DSN)
    event = explain(DSN)["events"][0]
    rule = load_rules().rule_for(event["rule"])
    assert event["reason"] == "userunknown" and rule is not None
    assert event["source"] == rule.source and "Postfix" in rule.source
    assert main(["explain", str(path)]) == 0
    lines = [ln.split(None, 1) for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert ["source:", rule.source] in lines


def test_a_code_table_decision_names_the_table():
    from ingest.bounce.explain import rule_source
    from ingest.bounce.rules import load_rules

    rules = load_rules()
    assert rule_source("status 5.7.1", rules) == "RFC 3463 enhanced status code table"
    assert rule_source("reply 550", rules) == "SMTP reply code table"
    assert rule_source("nothing to go by", rules) is None
