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
# conditions at least as wide. Kept in the file (removing a block is a decision of its own);
# listed here so that the day one becomes reachable, the test says so (strict xfail).
SHADOWED = {
    "exceedlimit": "its one pattern, 'message header size exceeds limit', always holds 'size exceeds "
                   "limit', which the earlier mesgtoobig block matches (/size exceeds? (the )?(maximum|limit)/) "
                   "with no condition; a 5.2.3 status goes to exceedlimit-status before either",
}


def _cases():
    for rule in SHIPPED_RULES:
        for number in range(1, len(rule.samples) + 1):
            marks = ()
            if rule.name in SHADOWED:
                marks = pytest.mark.xfail(reason=f"{rule.name} is shadowed: {SHADOWED[rule.name]}", strict=True)
            yield pytest.param(rule, number, id=f"{rule.name}-{number}", marks=marks)


@pytest.mark.parametrize("rule,number", _cases())
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
    shadowed = results["exceedlimit"]
    assert not shadowed.ok
    assert shadowed.describe() == (
        "rules.toml:exceedlimit test: got mesgtoobig (soft, content) by "
        "rules.toml:mesgtoobig#16 /size exceeds? (the )?(maximum|limit)/; "
        "expected exceedlimit (soft, content) by rules.toml:exceedlimit")
    assert [r.rule.name for r in run_samples(RULES) if not r.ok] == list(SHADOWED)
