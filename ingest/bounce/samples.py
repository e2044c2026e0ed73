"""The `test` samples of bounce rules, run through the classifier.

A sample is a bounce as `postwatch parse --json` prints it and the verdict its block must give:
the block itself decides it (the rule named in the verdict), with the sample's reason, that
reason's category and the sample's hard flag. A sample decided by another block means the
sample or the order of the blocks is wrong.
"""
from __future__ import annotations

from dataclasses import dataclass

from ingest.bounce.classify import classify
from ingest.bounce.rules import CATEGORY, Rule, RuleSet, Sample


@dataclass(frozen=True)
class SampleResult:
    rule: Rule
    sample: Sample
    number: int  # which of the block's samples, from 1
    reason: str
    hard: bool
    category: str
    decided_by: str  # the deciding rule's label, or the code table that spoke

    @property
    def name(self) -> str:
        """The block and, when it has several, which sample: "rules.toml:userunknown test 2"."""
        suffix = f" test {self.number}" if len(self.rule.samples) > 1 else " test"
        return self.rule.label(None) + suffix

    @property
    def by_its_rule(self) -> bool:
        return self.decided_by.split("#", 1)[0].strip() == self.rule.label(None)

    @property
    def ok(self) -> bool:
        return (self.by_its_rule and self.reason == self.sample.reason and self.hard == self.sample.hard
                and self.category == CATEGORY[self.sample.reason])

    def describe(self) -> str:
        """What the classifier made of the sample, and, when that is wrong, what was expected."""
        got = f"{self.reason} ({'hard' if self.hard else 'soft'}, {self.category}) by {self.decided_by}"
        if self.ok:
            return f"{self.name}: {got}"
        want = f"{self.sample.reason} ({'hard' if self.sample.hard else 'soft'}, {CATEGORY[self.sample.reason]})"
        return f"{self.name}: got {got}; expected {want} by {self.rule.label(None)}"


def run_sample(rule: Rule, number: int, rules: RuleSet) -> SampleResult:
    """Sample `number` (from 1) of `rule`, classified with the whole rule set, as a bounce is."""
    sample = rule.samples[number - 1]
    out = classify(dict(sample.event), rules=rules)
    return SampleResult(rule=rule, sample=sample, number=number, reason=out["reason"],
                        hard=out["hard_bounce"], category=out["category"], decided_by=out["rule"])


def run_samples(rules: RuleSet, only: list[Rule] | None = None) -> list[SampleResult]:
    """Every sample of `only` (rules of the set; all of its rules when None), in file order."""
    return [run_sample(rule, n, rules) for rule in (rules.rules if only is None else only)
            for n in range(1, len(rule.samples) + 1)]
