"""[providers] in operator rules files: names are case-blind and the first file's entry wins."""
from __future__ import annotations

from ingest.bounce.rules import load_rules


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
