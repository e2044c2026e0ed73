"""Every shipped rule block's `test` sample, through the real classifier: the block itself
decides it (its name in the verdict's rule), with the sample's reason, that reason's category
from reasons.toml, and the sample's hard flag."""
from __future__ import annotations

import pytest

from ingest.bounce.classify import ADDRESS_REASONS, classify
from ingest.bounce.rules import CATEGORY, SHIPPED, load_rules
from ingest.bounce.samples import run_samples

RULES = load_rules()
SHIPPED_RULES = [rule for rule in RULES.rules if rule.file == SHIPPED]

# Blocks that no bounce can reach: an earlier block matches every text they match, under
# conditions at least as wide. A block found so is moved or narrowed; one kept anyway is
# listed here with why, so that the day it becomes reachable the test says so (strict xfail).
SHADOWED: dict[str, str] = {}


def _cases():
    for rule in SHIPPED_RULES:
        for number in range(1, len(rule.samples) + 1):
            marks = ()
            if rule.name in SHADOWED:
                marks = pytest.mark.xfail(reason=f"{rule.name} is shadowed: {SHADOWED[rule.name]}", strict=True)
            yield pytest.param(rule, number, id=f"{rule.name}-{number}", marks=marks)


@pytest.mark.parametrize("rule,number", list(_cases()))
def test_the_block_decides_its_own_sample(rule, number):
    sample = rule.samples[number - 1]
    out = classify(dict(sample.event), rules=RULES)
    decided_by = out["rule"].split("#", 1)[0].strip()
    assert decided_by == rule.label(None), f"decided by {out['rule']}, not by {rule.label(None)}"
    assert out["reason"] == sample.reason == rule.reason
    assert out["category"] == CATEGORY[sample.reason]
    assert out["hard_bounce"] is sample.hard


def test_every_shipped_block_carries_a_sample():
    assert len(SHIPPED_RULES) > 200
    assert [rule.name for rule in SHIPPED_RULES if not rule.samples] == []


def test_the_shadowed_list_names_shipped_blocks():
    assert set(SHADOWED) <= {rule.name for rule in SHIPPED_RULES}


def test_samples_say_hard_where_the_reason_can_be_hard():
    """A sample of an address reason with only 5xx codes is hard, and says so; no other is."""
    for rule in SHIPPED_RULES:
        for sample in rule.samples:
            if sample.hard:
                assert sample.reason in ADDRESS_REASONS, rule.name
    assert sum(s.hard for rule in SHIPPED_RULES for s in rule.samples) > 40


def test_run_samples_reports_the_rule_and_what_it_got():
    results = {r.rule.name: r for r in run_samples(RULES)}
    assert len(results) == len(SHIPPED_RULES)
    ok = results["userunknown-postfix"]
    assert ok.ok and ok.decided_by.startswith("rules.toml:userunknown-postfix#1 ")
    assert [r.rule.name for r in run_samples(RULES) if not r.ok] == list(SHADOWED)


def test_a_shadowed_block_is_reported_with_what_decided_instead(tmp_path):
    """A block below a wider one never decides: its sample names the block that did."""
    own = tmp_path / "own.toml"
    own.write_text(
        '[[rule]]\nname = "too-big"\nreason = "mesgtoobig"\nsource = "a gateway"\n'
        "match = ['too big for us']\n"
        'test = { status = "5.3.4", diagnostic = "552 5.3.4 Message too big for us", reason = "mesgtoobig" }\n'
        '[[rule]]\nname = "header-too-big"\nreason = "exceedlimit"\nsource = "the same gateway"\n'
        "match = ['header too big for us']\n"
        'test = { status = "5.3.4", diagnostic = "552 5.3.4 Message header too big for us", reason = "exceedlimit" }\n')
    rules = load_rules(own)
    mine = [rule for rule in rules.rules if rule.file != SHIPPED]
    results = {r.rule.name: r for r in run_samples(rules, only=mine)}
    assert results["too-big"].ok
    shadowed = results["header-too-big"]
    assert not shadowed.ok
    assert shadowed.describe() == (
        "own.toml:header-too-big test: got mesgtoobig (soft, content) by "
        "own.toml:too-big#1 /too big for us/; expected exceedlimit (soft, content) by own.toml:header-too-big")
