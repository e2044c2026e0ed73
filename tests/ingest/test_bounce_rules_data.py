"""The data behind the classifier: reasons.toml (each reason's category and whether it can be
hard) and the `test` key of rule blocks, each refused with the file, the key and what to fix."""
from __future__ import annotations

import re

import pytest

from ingest.bounce.rules import (CATEGORIES, REASON_NAMES, REASON_TABLE, RulesError, load_reasons,
                                 load_rules)

SHIPPED_TABLE = ("[reasons]\n" + "".join(f'{r} = {{ category = "{c}" }}\n' for r, c in REASON_TABLE.category.items()))


def test_the_shipped_reason_table():
    assert list(REASON_TABLE.category) == list(REASON_NAMES)
    assert set(REASON_TABLE.category.values()) == set(CATEGORIES)
    assert REASON_TABLE.hard == {"userunknown", "hostunknown", "hasmoved", "notaccept"}
    assert REASON_TABLE.never_temporary == {"userunknown", "hostunknown", "hasmoved"}
    assert "feedback" not in REASON_TABLE.category  # an ARF report is a complaint, never a bounce


def test_a_table_written_out_again_reads_the_same(tmp_path):
    path = tmp_path / "reasons.toml"
    path.write_text(SHIPPED_TABLE.replace('userunknown = { category = "hygiene" }',
                                          'userunknown = { category = "hygiene", hard = true }'))
    table = load_reasons(path)
    assert table.category == REASON_TABLE.category
    assert table.hard == {"userunknown"} and table.never_temporary == frozenset()


@pytest.mark.parametrize("change,message", [
    (('mailboxfull = { category = "transient" }\n', ""),
     "reasons.toml: [reasons] has no entry for mailboxfull: every reason of DESIGN.md needs its category"),
    (("[reasons]\n", '[reasons]\nbogus = { category = "hygiene" }\n'),
     "reasons.toml: [reasons] bogus: not one of DESIGN.md's reasons"),
    (('blocked = { category = "reputation" }', 'blocked = { category = "reputaton" }'),
     "reasons.toml: [reasons] blocked: category 'reputaton' is not one of DESIGN.md's categories"),
    (('blocked = { category = "reputation" }', 'blocked = { categroy = "reputation" }'),
     "reasons.toml: [reasons] blocked: unknown key(s) categroy"),
    (('blocked = { category = "reputation" }', 'blocked = { category = "reputation", hard = "yes" }'),
     "reasons.toml: [reasons] blocked: hard must be true or false, not 'yes'"),
    (('blocked = { category = "reputation" }', 'blocked = "reputation"'),
     "reasons.toml: [reasons] blocked: write { category = \"...\" }"),
    (("[reasons]\n", "[reason]\n"), "reasons.toml: the reasons are written as a [reasons] table"),
])
def test_a_bad_reason_table_names_the_file_and_key(tmp_path, change, message):
    path = tmp_path / "reasons.toml"
    assert change[0] in SHIPPED_TABLE
    path.write_text(SHIPPED_TABLE.replace(change[0], change[1], 1))
    with pytest.raises(RulesError, match=re.escape(message)):
        load_reasons(path)


BLOCK = '[[rule]]\nreason = "blocked"\nname = "acme-wall"\nmatch = ["acme wall"]\n'


@pytest.mark.parametrize("test,message", [
    ('"550 acme wall"', "`test` must be a table such as"),
    ('{ diagnostic = "550 acme wall", reason = "blocked", code = "550" }',
     "`test` has unknown key(s) code; a sample holds the bounce's recipient"),
    ('{ diagnostic = "550 acme wall" }', "`test` has no `reason`"),
    ('{ diagnostic = "550 acme wall", reason = "blockd" }', "`test`: reason 'blockd' is not one of DESIGN.md's reasons"),
    ('{ diagnostic = "550 acme wall", reason = "blocked", hard = "no" }', "`test`: hard must be true or false, not 'no'"),
    ('{ diagnostic = "550 acme wall", status = "5.7", reason = "blocked" }',
     "`test`: status '5.7' is not an RFC 3463 status such as 5.1.1"),
    ('{ diagnostic = "550 acme wall", reply_code = "5xx", reason = "blocked" }',
     "`test`: reply_code '5xx' is not an SMTP reply code such as 550"),
    ('{ diagnostic = 550, reason = "blocked" }', "`test`: diagnostic must be a string, not 550"),
    ('{ reason = "blocked" }', "`test` holds no bounce: give at least one of recipient"),
    ('[{ diagnostic = "550 acme wall", reason = "blocked" }, { reason = "blocked" }]', "`test` 2 holds no bounce"),
])
def test_a_malformed_sample_is_a_load_error_naming_the_block(tmp_path, test, message):
    path = tmp_path / "ours.toml"
    path.write_text(BLOCK + f"test = {test}\n")
    with pytest.raises(RulesError, match=re.escape("ours.toml: rule 1 (acme-wall): " + message)):
        load_rules(str(path))


def test_samples_are_read_with_their_block(tmp_path):
    path = tmp_path / "ours.toml"
    path.write_text(BLOCK + 'test = [{ diagnostic = "550 5.7.1 acme wall", status = "5.7.1", reply_code = "550", '
                            'reason = "blocked" },\n        { recipient = "kim@example.org", smtp_command = "RCPT", '
                            'diagnostic = "450 acme wall, later", reason = "blocked", hard = false }]\n'
                    + '[[rule]]\nreason = "filtered"\nmatch = ["no thanks"]\n')
    first, second = load_rules(str(path)).rules[:2]
    assert [s.event for s in first.samples] == [
        {"status": "5.7.1", "reply_code": "550", "diagnostic": "550 5.7.1 acme wall"},
        {"recipient": "kim@example.org", "smtp_command": "RCPT", "diagnostic": "450 acme wall, later"}]
    assert [(s.reason, s.hard) for s in first.samples] == [("blocked", False), ("blocked", False)]
    assert second.samples == ()  # optional in an operator's file


def test_a_shipped_block_without_a_sample_is_refused():
    import tomllib
    from importlib import resources

    from ingest.bounce.rules import check_samples_given

    data = tomllib.loads(resources.files("ingest.bounce").joinpath("rules.toml").read_text("utf-8"))
    check_samples_given(data)
    del data["rule"][4]["test"]
    with pytest.raises(RulesError, match=r"rules\.toml: rule 5 \(blocked\) has no `test`"):
        check_samples_given(data)
