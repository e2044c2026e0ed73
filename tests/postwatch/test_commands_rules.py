"""`postwatch rules test [FILE]`: the samples of an operator's rules file, run through the
classifier; each failing one named with its rule and what it got; exit 1 when one fails."""
from __future__ import annotations

import json

import pytest

from postwatch.cli import main

GOOD = """\
[[rule]]
reason = "blocked"
name = "acme-gateway"
match = ['rejected by acme gateway']
test = { recipient = "kim@example.org", status = "5.7.1", reply_code = "550", diagnostic = "550 5.7.1 Rejected by ACME gateway", reason = "blocked" }

[[rule]]
reason = "userunknown"
name = "acme-mailbox"
match = ['acme: no mailbox']
test = [{ smtp_command = "RCPT", status = "5.1.1", reply_code = "550", diagnostic = "550 5.1.1 ACME: no mailbox", reason = "userunknown", hard = true },
        { status = "4.1.1", reply_code = "450", diagnostic = "450 4.1.1 ACME: no mailbox (try later)", reason = "userunknown" }]

[[rule]]
reason = "filtered"
match = ['acme says no']
"""

# The second sample says a plain "User unknown" is the sender's fault: the shipped
# userunknown-status block decides it, so the sample (or the rule) is wrong.
FAILING = GOOD + """
[[rule]]
reason = "rejected"
name = "acme-sender"
match = ['acme: sender not welcome']
test = [{ diagnostic = "550 5.7.1 ACME: sender not welcome", reason = "rejected" },
        { diagnostic = "550 5.1.1 User unknown", status = "5.1.1", reason = "rejected" }]
"""


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no postwatch.toml: the embedded defaults
    monkeypatch.delenv("POSTWATCH_INGEST__RULES_FILE", raising=False)
    return tmp_path


def test_every_sample_passes(here, capsys):
    (here / "ours.toml").write_text(GOOD)
    assert main(["rules", "test", "ours.toml"]) == 0
    out = capsys.readouterr().out
    assert out == "ours.toml: 3 samples, 3 passed, 0 failed (rules without a sample: 1 of 3)\n"
    assert main(["rules", "test", "--all", "ours.toml"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("ok   ours.toml:acme-gateway test: blocked (soft, reputation) by "
                        "ours.toml:acme-gateway#1 /rejected by acme gateway/")
    assert lines[1].startswith("ok   ours.toml:acme-mailbox test 1: userunknown (hard, hygiene) by ")
    assert lines[2].startswith("ok   ours.toml:acme-mailbox test 2: userunknown (soft, hygiene) by ")


def test_a_failing_sample_is_named_with_what_it_got(here, capsys):
    (here / "ours.toml").write_text(FAILING)
    assert main(["rules", "test", "ours.toml"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "FAIL ours.toml:acme-sender test 2: got userunknown (hard, hygiene) by "
        "rules.toml:userunknown-status#75 /user unknown/; expected rejected (soft, policy) by ours.toml:acme-sender",
        "ours.toml: 5 samples, 4 passed, 1 failed (rules without a sample: 1 of 4)"]


def test_json_gives_one_object_per_sample(here, capsys):
    (here / "ours.toml").write_text(FAILING)
    assert main(["rules", "test", "--json", "ours.toml"]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["rule"], r["sample"], r["ok"]) for r in rows] == [
        ("ours.toml:acme-gateway", 1, True), ("ours.toml:acme-mailbox", 1, True),
        ("ours.toml:acme-mailbox", 2, True), ("ours.toml:acme-sender", 1, True), ("ours.toml:acme-sender", 2, False)]
    last = rows[-1]
    assert last["expected"] == {"reason": "rejected", "hard_bounce": False}
    assert last["got"]["reason"] == "userunknown" and last["got"]["rule"].startswith("rules.toml:userunknown-status#")
    assert last["event"] == {"status": "5.1.1", "diagnostic": "550 5.1.1 User unknown"}


def test_the_configured_rules_file_is_the_default(here, capsys, monkeypatch):
    (here / "ours.toml").write_text(FAILING)
    monkeypatch.setenv("POSTWATCH_INGEST__RULES_FILE", str(here / "ours.toml"))
    assert main(["rules", "test"]) == 1
    assert "FAIL ours.toml:acme-sender test 2" in capsys.readouterr().out


def test_no_file_to_test(here, capsys):
    assert main(["rules", "test"]) == 2
    assert "no rules file to test: give FILE, or set ingest.rules_file" in capsys.readouterr().err
    assert main(["rules", "test", "missing.toml"]) == 2
    assert "missing.toml: no such rules file" in capsys.readouterr().err


def test_a_malformed_sample_stops_with_its_block(here, capsys):
    (here / "bad.toml").write_text("[[rule]]\nreason = \"blocked\"\nmatch = ['x']\n"
                                   "test = { diagnostic = \"550 x\", status = \"5.7\", reason = \"blocked\" }\n")
    assert main(["rules", "test", "bad.toml"]) == 2
    err = capsys.readouterr().err
    assert "bad.toml: rule 1 (blocked): `test`: status '5.7' is not an RFC 3463 status such as 5.1.1" in err


def test_a_file_without_samples(here, capsys):
    (here / "plain.toml").write_text("[[rule]]\nreason = \"blocked\"\nmatch = ['x']\n")
    assert main(["rules", "test", "plain.toml"]) == 0
    assert capsys.readouterr().out == "plain.toml: no rule carries a `test` sample (rules without a sample: 1 of 1)\n"


def test_help_says_what_a_sample_is_and_the_exit_status(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["rules", "test", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "usage: postwatch rules test [-h] [--all] [--json] [FILE]" in text
    assert "test = { recipient = " in text and "Exit status: 0 when every sample passes, 1" in text


def test_the_example_rules_file_passes(capsys):
    from tests.conftest import ROOT

    assert main(["rules", "test", str(ROOT / "examples" / "bounce-rules.toml")]) == 0
    assert capsys.readouterr().out == "bounce-rules.toml: 4 samples, 4 passed, 0 failed\n"
