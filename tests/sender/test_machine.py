"""The machine-activity rules as shipped (one case per rule) and as an operator replaces them."""
from __future__ import annotations

import pytest

from sender.machine import RulesError, load_rules

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
RULES = load_rules()


def test_the_shipped_data_is_dated_and_read():
    assert RULES.date and RULES.apple_date
    assert RULES.apple_prefixes >= 20


@pytest.mark.parametrize("ip, cls", [
    ("172.224.224.5", "apple-mpp"), ("104.28.80.9", "apple-mpp"), ("2a02:26f7:b3c0:4000::1", "apple-mpp"),
    ("17.58.100.1", "apple"), ("::ffff:17.58.100.1", "apple"), ("66.249.84.10", "google-proxy"),
    ("10.0.0.3", "private"), ("127.0.0.1", "private"), ("93.184.216.34", "other"), ("", "unknown"),
    ("not-an-ip", "unknown"),
])
def test_address_classes(ip, cls):
    assert RULES.ranges.classify(ip) == cls


@pytest.mark.parametrize("kind, method, agent, ip_class, reason", [
    ("open", "GET", FIREFOX, "apple-mpp", "apple-mpp"),
    ("open", "GET", MPP := "Mozilla/5.0", "other", "apple-mpp-agent"),
    ("open", "GET", "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
     "other", "google-image-proxy"),
    ("open", "GET", FIREFOX, "google-proxy", "google-proxy-range"),
    ("click", "HEAD", FIREFOX, "other", "head-request"),
    ("open", "HEAD", FIREFOX, "other", "head-request"),
    ("click", "GET", None, "other", "no-user-agent"),
    ("click", "GET", "Mozilla/5.0 (compatible; Barracuda Sentinel)", "other", "scanner-agent"),
    ("click", "GET", "python-requests/2.32", "other", "scanner-agent"),
    ("open", "GET", "Mozilla/5.0 ... BingPreview/1.0b", "other", "scanner-agent"),
])
def test_each_shipped_rule(kind, method, agent, ip_class, reason):
    assert RULES.judge(kind, method, agent, ip_class) == (True, reason)


@pytest.mark.parametrize("kind, agent, ip_class", [
    ("open", FIREFOX, "other"), ("click", FIREFOX, "other"),
    ("click", "Mozilla/5.0", "apple-mpp"),  # a click from an Apple relay is a person behind Private Relay
])
def test_a_person_is_not_flagged(kind, agent, ip_class):
    assert RULES.judge(kind, "GET", agent, ip_class) == (False, None)


def test_an_operator_file_replaces_the_rules_and_may_count_a_proxy_as_a_person(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('date = "2027-01-01"\n[ranges]\ncorp = ["192.0.2.0/24"]\n'
                     '[[rule]]\nreason = "gmail-proxy"\nagent_contains = ["GoogleImageProxy"]\nmachine = false\n'
                     '[[rule]]\nreason = "corp-gateway"\nip_class = ["corp"]\n')
    apple = tmp_path / "egress-ip-ranges.csv"
    apple.write_text("198.18.0.0/15,US,US-CA,Cupertino,\n")  # Apple's own file has no header
    mine = load_rules(str(rules), str(apple))
    assert (mine.date, mine.apple_date, mine.apple_prefixes) == ("2027-01-01", "", 1)
    assert mine.ranges.classify("198.18.1.1") == "apple-mpp" and mine.ranges.classify("192.0.2.7") == "corp"
    assert mine.judge("open", "GET", "x GoogleImageProxy", "other") == (False, None)
    assert mine.judge("click", "GET", FIREFOX, "corp") == (True, "corp-gateway")
    assert mine.judge("open", "GET", "Mozilla/5.0", "apple-mpp") == (False, None)  # the shipped rules are gone


@pytest.mark.parametrize("rules, apple, words", [
    ('[[rule]]\nreason = "x"\n', "", "needs a condition"),
    ('[[rule]]\nreason = "x"\nmethods = ["HEAD"]\ncolour = "red"\n', "", "unknown key 'colour'"),
    ('[[rule]]\nreason = "x"\nhits = ["view"]\nmethods = ["HEAD"]\n', "", "hits may be open and click"),
    ('[ranges]\nx = ["300.1.1.0/24"]\n', "", "'300.1.1.0/24' is not an address range"),
    ("", "17.0.0.0/8,US,,,\nbogus,US,,,\n", "line 2: 'bogus'"),
    ("", "# date: 2026-01-01\n", "no address ranges"),
    ("not toml [", "", "rules.toml"),
])
def test_a_bad_file_is_a_sentence_naming_where(tmp_path, rules, apple, words):
    r = tmp_path / "rules.toml"
    r.write_text(rules)
    a = ""
    if apple:
        (tmp_path / "apple.csv").write_text(apple)
        a = str(tmp_path / "apple.csv")
    with pytest.raises(RulesError, match=words.replace("(", r"\(").replace("[", r"\[")):
        load_rules(str(r), a)


def test_a_missing_file_says_which_setting(tmp_path):
    with pytest.raises(RulesError, match="tracking.apple_ranges_file"):
        load_rules("", str(tmp_path / "nope.csv"))
