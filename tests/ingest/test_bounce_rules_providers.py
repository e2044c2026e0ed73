"""[providers] in operator rules files: names are case-blind and the first file's entry wins;
the shipped providers are ingest/providers.toml, and a rule's scope is a name one of them knows."""
from __future__ import annotations

import pytest

from ingest.bounce.rules import RulesError, load_rules


def test_an_operator_provider_overrides_the_shipped_one_whatever_its_case(tmp_path):
    first = tmp_path / "first.toml"
    first.write_text('[providers.Google]\ndomains = ["Mail.Example"]\nhosts = ["mx.mail.example"]\n')
    second = tmp_path / "second.toml"
    second.write_text('[providers.google]\ndomains = ["other.example"]\n[providers.ACME]\ndomains = ["acme.example"]\n')
    rules = load_rules(str(first), str(second))
    assert rules.providers["google"]["domains"] == ("mail.example",)
    assert rules.providers["google"]["hosts"] == ("mx.mail.example",)
    assert rules.providers["acme"]["domains"] == ("acme.example",)
    assert "Google" not in rules.providers and "ACME" not in rules.providers
    shipped = load_rules()
    assert "gmail.com" in shipped.providers["google"]["domains"]


def test_the_shipped_providers_are_the_one_vocabulary_with_aol_under_yahoo():
    from ingest.providers import providers

    shipped = load_rules()
    assert list(shipped.providers) == list(providers())
    assert "aol.com" in shipped.providers["yahoo"]["domains"] and "aol" not in shipped.providers


def test_a_rule_scoped_to_a_former_name_applies_to_the_provider_it_is_now_part_of(tmp_path):
    from ingest.bounce.classify import classify

    mine = tmp_path / "mine.toml"
    mine.write_text('[[rule]]\nreason = "speeding"\nprovider = "aol"\nmatch = ["slow down, aol"]\n')
    rules = load_rules(str(mine))
    assert rules.rules[0].provider == frozenset({"yahoo"}) and rules.rules[0].name == "speeding@aol"
    got = classify({"recipient": "x@aol.com", "diagnostic": "421 slow down, aol"}, rules=rules)
    assert (got["provider"], got["reason"]) == ("yahoo", "speeding")
    # a rules file that still defines the old name itself keeps it
    own = tmp_path / "own.toml"
    own.write_text('[providers.aol]\ndomains = ["aol.example"]\n' + mine.read_text())
    assert load_rules(str(own)).rules[0].provider == frozenset({"aol"})


def test_a_rule_scoped_to_a_provider_no_list_names_is_refused(tmp_path):
    mine = tmp_path / "typo.toml"
    mine.write_text('[[rule]]\nreason = "blocked"\nprovider = "gogle"\nmatch = ["blocked"]\n')
    with pytest.raises(RulesError, match="scoped to provider gogle"):
        load_rules(str(mine))
