"""The bounce reason classifier: receivers' wordings -> reason, hard/soft, category, rule."""
from __future__ import annotations

import re

import pytest

from ingest.bounce.classify import classify, decide
from ingest.bounce.rules import CATEGORY, RulesError, load_rules
from ingest.config import IngestConfig

# (diagnostic, status, reply code, other event fields, reason). Wordings as receivers send them.
ROWS = [
    # hygiene
    ("550 5.1.1 <kim@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
     "5.1.1", "550", {"smtp_command": "RCPT"}, "userunknown"),
    ("550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking "
     "the recipient's email address for typos", "5.1.1", "550", {"remote_mta": "gmail-smtp-in.l.google.com"},
     "userunknown"),
    ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
     "5.1.10", "550", {}, "userunknown"),
    ("554 delivery error: dd This user doesn't have a yahoo.com account (kim@yahoo.com) [0] - mta1.mail.yahoo.com",
     "5.0.0", "554", {"recipient": "kim@yahoo.com"}, "userunknown"),
    ("MSEXCH:IMS:EXAMPLE:MAIL:EXCHANGE 0 (000C05A6) Unknown Recipient", None, None, {}, "userunknown"),
    ("MSEXCH:IMS:EXAMPLE:MAIL:EXCHANGE 0 (000C0595) Ambiguous Recipient", None, None, {}, "filtered"),
    ("Unknown user: kim@example.org", None, None, {}, "userunknown"),  # IMail
    ("Unable to deliver message to <kim@example.org> (and other recipients in the same domain).",
     None, None, {}, "userunknown"),  # InterScan MSS
    ("Your message wasn't delivered to kim@example.org because the address couldn't be found.",
     "5.0.0", None, {"reporting_mta": "dns; googlemail.com"}, "userunknown"),
    ("450 4.1.1 <kim@example.org>: Recipient address rejected: mailbox not found", "4.1.1", "450",
     {"smtp_command": "RCPT"}, "userunknown"),
    ("Host or domain name not found. Name service error for name=example.invalid type=AAAA: Host not found",
     "5.4.4", None, {}, "hostunknown"),
    ("550 5.1.2 <kim@nxdomain.example>: Recipient address rejected: Domain not found", "5.1.2", "550", {},
     "hostunknown"),
    ("550 5.1.6 recipient no longer on server: kim@icloud.com", "5.1.6", "550",
     {"recipient": "kim@icloud.com"}, "hasmoved"),
    ("550 5.1.1 <old@example.org>: address has been replaced by <new@example.net>", "5.1.6", "550", {},
     "hasmoved"),
    ("556 5.1.10 <kim@nullmx.example>: Recipient address rejected: Domain nullmx.example does not accept mail (nullMX)",
     "5.1.10", "556", {}, "notaccept"),
    ("Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)", "5.4.4", None, {}, "notaccept"),
    ("550 5.2.1 The email account that you tried to reach is disabled.", "5.2.1", "550",
     {"remote_mta": "aspmx.l.google.com"}, "suspend"),
    ("550 5.2.1 <kim@example.org>: mailbox disabled, not accepting messages", "5.2.1", "550", {}, "suspend"),
    ("550 Address is on the suppression list (Amazon SES)", None, "550", {}, "suppressed"),
    # transient
    ("552 5.2.2 <kim@example.org>: Recipient address rejected: Mailbox full", "5.2.2", "552", {}, "mailboxfull"),
    ("452 4.2.2 The email account that you tried to reach is over quota.", "4.2.2", "452",
     {"remote_mta": "gmail-smtp-in.l.google.com"}, "mailboxfull"),
    ("maildrop: maildir over quota.", None, None, {}, "mailboxfull"),
    ("452 4.3.1 Insufficient system storage", "4.3.1", "452", {}, "systemfull"),
    ("Delivery expired (message too old) 'timeout'", "4.4.7", None, {"action": "failed"}, "expired"),
    ("retry timeout exceeded", "5.4.7", None, {}, "expired"),
    ("connect to mx.example.org[192.0.2.1]:25: Connection timed out", "4.4.1", None,
     {"smtp_command": "CONN"}, "expired"),
    ("", "4.0.0", None, {"action": "delayed"}, "expired"),
    ("Name service error for name=example.org type=MX: Host not found, try again", "4.4.3", None, {},
     "networkerror"),
    ("554 5.4.6 Hop count exceeded - possible mail loop", "5.4.6", "554", {}, "networkerror"),
    ("451 4.3.0 Error: queue file write error", "4.3.0", "451", {}, "systemerror"),
    ("554 5.3.5 Local configuration error", "5.3.5", "554", {}, "systemerror"),
    ("Command died with status 75: \"/usr/bin/procmail\". Command output: procmail: Quota exceeded",
     "5.3.0", None, {"diagnostic_type": "X-Unix"}, "mailererror"),
    ("501 5.5.2 Syntax error in parameters or arguments", "5.5.2", "501", {}, "syntaxerror"),
    # reputation
    ("554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using zen.spamhaus.org", "5.7.1", "554",
     {"smtp_command": "RCPT"}, "blocked"),
    ("550 5.7.1 Unfortunately, messages from [192.0.2.9] weren't sent. Please contact your Internet service "
     "provider since part of their network is on our block list (S3150).", "5.7.1", "550",
     {"remote_mta": "mx1.hotmail.com"}, "blocked"),
    ("421 4.7.0 [TSS04] Messages from 192.0.2.9 temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", "4.7.0", "421", {},
     "badreputation"),
    ("550 5.7.1 Our system has detected that this message is likely suspicious due to the very low reputation "
     "of the sending IP address.", "5.7.1", "550", {"remote_mta": "gmail-smtp-in.l.google.com"}, "badreputation"),
    ("550 5.7.25 The IP address sending this message does not have a PTR record setup", "5.7.25", "550", {},
     "requireptr"),
    ("450 4.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.9]", "4.7.1", "450", {},
     "requireptr"),
    ("550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy.",
     "5.7.26", "550", {}, "authfailure"),
    ("550 5.7.23 The message was rejected because of Sender Policy Framework violation", "5.7.23", "550", {},
     "authfailure"),
    ("421 4.7.0 Too many concurrent SMTP connections from this IP address; please try again later",
     "4.7.0", "421", {}, "toomanyconn"),
    ("452 4.5.3 Your message has too many recipients.", "4.5.3", "452", {}, "toomanyconn"),
    ("450 4.2.1 The user you are trying to contact is receiving mail too quickly. Please resend your "
     "message at a later time.", "4.2.1", "450", {}, "speeding"),
    ("451 4.7.1 <mx.example.org[192.0.2.2]>: Client host rejected: Please try again slower", "4.7.1", "451", {},
     "speeding"),
    # content
    ("550 5.7.1 Message rejected as spam by Content Filtering.", "5.7.1", "550", {"smtp_command": "DATA"},
     "spamdetected"),
    ("554 5.7.1 This message has been identified as spam", "5.7.1", "554", {}, "spamdetected"),
    ("552 5.7.0 Virus detected: Win.Trojan.Agent", "5.7.0", "552", {"smtp_command": "DATA"}, "virusdetected"),
    ("554 5.6.0 Message contains invalid MIME headers", "5.6.0", "554", {}, "contenterror"),
    ("552 5.3.4 Message size exceeds fixed maximum message size (10485760)", "5.3.4", "552", {}, "mesgtoobig"),
    ("552 5.2.3 Message length exceeds administrative limit", "5.2.3", "552", {}, "exceedlimit"),
    ("550 5.7.1 This message is not RFC 5322 compliant because it has duplicate headers.", "5.7.1", "550", {},
     "notcompliantrfc"),
    # policy
    ("550 5.7.1 Message rejected due to local policy violation", "5.7.1", "550", {}, "policyviolation"),
    ("550 5.2.1 <kim@example.org>: Message rejected due to user rules", "5.2.1", "550", {}, "filtered"),
    ("553 5.1.8 <bounce@nx.example>... Domain of sender address bounce@nx.example does not exist",
     "5.1.8", "553", {}, "rejected"),
    ("550 5.1.0 <bounce@example.com>: Sender address rejected: User unknown", "5.1.0", "550",
     {"smtp_command": "MAIL"}, "rejected"),
    ("554 5.7.1 <kim@example.org>: Relay access denied", "5.7.1", "554", {"smtp_command": "RCPT"}, "norelaying"),
    ("530 5.7.0 Authentication required", "5.7.0", "530", {}, "securityerror"),
    ("550 5.7.1 <kim@example.org>... Access denied", "5.7.1", "550", {}, "securityerror"),
    ("STARTTLS failed: certificate verify failed", None, None, {"smtp_command": "STARTTLS"}, "failedstarttls"),
    ("530 5.7.0 Must issue a STARTTLS command first.", "5.7.0", "530", {}, "failedstarttls"),
    # unknown, delivered, auto-reply
    ("Some words no rule knows", "5.0.0", None, {}, "onhold"),
    ("", None, None, {"action": "failed"}, "undefined"),
    ("250 2.0.0 OK", "2.0.0", "250", {"action": "delivered"}, "delivered"),
    ("I am out of the office until Monday", None, None, {}, "vacation"),
]


def _event(diag, status, code, extra):
    ev = {"recipient": "kim@example.org", "action": "failed", "status": status, "reply_code": code,
          "diagnostic": diag or None}
    ev.update(extra)
    return ev


@pytest.mark.parametrize("diag,status,code,extra,reason", ROWS, ids=[f"{r[4]}-{i}" for i, r in enumerate(ROWS)])
def test_receiver_wordings(diag, status, code, extra, reason):
    out = classify(_event(diag, status, code, extra))
    assert out["reason"] == reason, out["rule"]
    assert out["category"] == CATEGORY[reason]
    temporary = (status or "").startswith("4") or (code or "").startswith("4")
    hard = reason in ("userunknown", "hostunknown", "hasmoved", "notaccept") and not temporary
    assert out["hard_bounce"] is hard


def test_every_reason_has_a_row():
    assert {r[4] for r in ROWS} == set(CATEGORY), set(CATEGORY) - {r[4] for r in ROWS}


# DESIGN.md, "Bounce reasons": the one authority for reason -> category.
DESIGN_TABLE = {
    "hygiene": "userunknown hostunknown hasmoved notaccept suspend suppressed",
    "transient": "mailboxfull systemfull expired networkerror systemerror mailererror syntaxerror",
    "reputation": "blocked badreputation requireptr authfailure toomanyconn speeding",
    "content": "spamdetected virusdetected contenterror mesgtoobig exceedlimit notcompliantrfc",
    "policy": "policyviolation filtered securityerror failedstarttls norelaying rejected",
    "unknown": "undefined onhold",
    "delivered": "delivered",
    "auto_reply": "vacation",
}


@pytest.mark.parametrize("category", sorted(DESIGN_TABLE))
def test_category_mapping_matches_design(category):
    for reason in DESIGN_TABLE[category].split():
        assert CATEGORY[reason] == category
    assert {r for r, c in CATEGORY.items() if c == category} == set(DESIGN_TABLE[category].split())


def test_rate_limit_behind_5_1_1_is_not_userunknown():
    out = classify({"status": "5.1.1", "reply_code": "550", "action": "failed",
                    "diagnostic": "550 5.1.1 Rate limit exceeded for this sender, try again later"})
    assert out["reason"] != "userunknown"
    assert out["reason"] in ("speeding", "toomanyconn")
    assert out["hard_bounce"] is False


def test_mailbox_not_found_behind_4xx_is_userunknown_but_soft():
    # The words name the cause; the 4xx says the receiver may change its mind: never hard.
    out = classify({"status": "4.0.0", "reply_code": "450", "action": "failed", "smtp_command": "RCPT",
                    "diagnostic": "450 4.0.0 Requested action aborted: mailbox not found"})
    assert out["reason"] == "userunknown"
    assert out["hard_bounce"] is False
    assert "4.0.0 is temporary" in out["conflict"]


@pytest.mark.parametrize("command,status,reason", [
    ("RCPT", None, "userunknown"),  # said to RCPT TO: the address is unknown
    (None, "5.1.1", "userunknown"),  # a 5.1.x status that means so
    ("DATA", None, "filtered"),  # said after DATA: the receiver's filter (Sisimai: Filtered.pm)
    (None, None, "filtered"),  # no command to tell, no status: Sisimai reads it as filtered too
    (None, "5.2.1", "filtered"),
    ("MAIL", None, "rejected"),  # said to MAIL FROM: about our sender address
])
def test_user_unknown_wording_depends_on_command_and_status(command, status, reason):
    event = {"action": "failed", "diagnostic": "550 User unknown", "smtp_command": command, "status": status}
    assert classify(event)["reason"] == reason


def test_notaccept_is_hard_only_when_permanent():
    text = "Domain example.org does not accept mail (nullMX)"
    assert classify({"status": "5.1.10", "diagnostic": text})["hard_bounce"] is True
    assert classify({"status": "4.3.2", "reply_code": "421", "diagnostic": text})["hard_bounce"] is False


def test_rule_names_the_deciding_rule():
    out = classify({"status": "5.1.1", "diagnostic": "550 5.1.1 <kim@example.org>... User unknown"})
    assert re.fullmatch(r"rules\.toml:userunknown-status#\d+ /user unknown/", out["rule"]), out["rule"]
    d = decide({"status": "5.1.1", "diagnostic": "550 5.1.1 <kim@example.org>... User unknown"})
    assert d.matched == "User unknown"
    # no words: the code decides, and says so
    assert classify({"status": "5.2.2", "diagnostic": ""})["rule"] == "status 5.2.2"
    assert classify({"status": "5.7.99", "diagnostic": ""})["rule"] == "status 5.7.x"
    assert classify({"reply_code": "521", "diagnostic": ""})["rule"] == "reply 521"
    assert classify({"action": "delayed"})["rule"] == "action delayed"


def test_provider_scoped_rule_needs_the_provider():
    text = "550 5.7.1 [CS01] Message rejected due to local policy. Please visit https://support.apple.com"
    apple = classify({"recipient": "kim@icloud.com", "status": "5.7.1", "diagnostic": text})
    assert apple["reason"] == "policyviolation" and apple["provider"] == "apple"
    assert apple["rule"].startswith("rules.toml:policyviolation@apple#")
    # Orange's label codes mean nothing elsewhere
    label = "550 5.5.0 Le compte du destinataire est bloque. LPN007_426"
    assert classify({"remote_mta": "smtp-in.orange.fr", "diagnostic": label})["rule"].startswith(
        "rules.toml:suspend@orange")


def test_the_failed_command_matters():
    # a "no such user" answer to MAIL FROM is about our sender address
    at_mail = classify({"status": "5.0.0", "smtp_command": "MAIL", "diagnostic": "550 No such user here"})
    assert at_mail["reason"] == "rejected"
    at_rcpt = classify({"status": "5.0.0", "smtp_command": "RCPT", "diagnostic": "550 No such user here"})
    assert at_rcpt["reason"] == "userunknown"
    # refused at the greeting with nothing more said: it is us
    assert classify({"status": "5.0.0", "smtp_command": "CONN", "diagnostic": "554 go away"})["reason"] == "blocked"
    assert classify({"smtp_command": "HELO", "diagnostic": "550 Access refused"})["reason"] == "blocked"


def test_status_is_derived_when_missing():
    out = classify({"action": "failed", "diagnostic": "550 User unknown", "smtp_command": "RCPT"})
    assert out["status"] == "5.0.911"
    assert classify({"action": "failed", "diagnostic": "550 User unknown"})["status"] == "5.0.910"
    assert classify({"action": "delayed", "diagnostic": "Mailbox full"})["status"] == "4.0.922"
    assert "status" not in classify({"status": "5.1.1", "diagnostic": "User unknown"})


def test_operator_rules_file_overrides_shipped(tmp_path):
    own = tmp_path / "our-rules.toml"
    own.write_text('[[rule]]\nreason = "blocked"\nname = "acme-filter"\n'
                   'match = [\'user unknown \\(acme-gw\\)\']\n', encoding="utf-8")
    event = {"status": "5.1.1", "diagnostic": "550 5.1.1 User unknown (acme-gw)"}
    assert classify(event)["reason"] == "userunknown"
    out = classify(event, config=IngestConfig(rules_file=str(own)))
    assert out["reason"] == "blocked"
    assert out["rule"] == r"our-rules.toml:acme-filter#1 /user unknown \(acme-gw\)/"
    # the same through a loaded rule set; other bounces still get the shipped rules
    rules = load_rules(str(own))
    assert classify({"status": "5.2.2", "diagnostic": "Mailbox full"}, rules=rules)["reason"] == "mailboxfull"


def test_operator_tables_override_shipped(tmp_path):
    own = tmp_path / "codes.toml"
    own.write_text('[status]\n"5.7.1" = "blocked"\n', encoding="utf-8")
    event = {"status": "5.7.1", "diagnostic": "550 5.7.1 nope"}
    assert classify(event)["reason"] == "securityerror"
    assert classify(event, config=IngestConfig(rules_file=str(own)))["reason"] == "blocked"


@pytest.mark.parametrize("text,message", [
    ('[[rule]]\nreason = "bogus"\nmatch = ["x"]\n', "not one of DESIGN.md's reasons"),
    ('[[rule]]\nreason = "blocked"\nmatch = ["("]\n', "not a valid regex"),
    ('[[rule]]\nreason = "blocked"\nmacth = ["x"]\n', "unknown key"),
    ('[[rule]\n', "not valid TOML"),
])
def test_bad_rules_file_says_what_to_fix(tmp_path, text, message):
    own = tmp_path / "bad.toml"
    own.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError, match=re.escape(message)):
        load_rules(str(own))


def test_missing_rules_file_is_an_error(tmp_path):
    with pytest.raises(RulesError, match="ingest.rules_file"):
        load_rules(str(tmp_path / "nope.toml"))


@pytest.mark.parametrize("pattern,literal", [
    ("user unknown", "user unknown"),
    ("(spf|dmarc) check failed", " check failed"),
    ("mail ?folder is full", "folder is full"),
    (r"x{2,3}yz ab", "yz ab"),
    ("a|bcd", None),
    (r"\.i\.ua/err/8/", ".i.ua/err/8/"),
    (r"rcpt <[^>]*> does not exist", "> does not exist"),
    (r"\bib\d{3}\b", None),
])
def test_literal_index_reads_patterns(pattern, literal):
    from ingest.bounce.matcher import literal_of

    assert literal_of(pattern) == literal


def test_literal_index_never_hides_a_match():
    """The prefilter must pick the same pattern as trying every pattern of every rule."""
    rules = load_rules()
    texts = [r[0] for r in ROWS if r[0]] + [p.replace("\\", "") for rule in rules.rules for p in rule.patterns[:3]]
    for text in texts:
        found = rules.matcher.candidates(text)
        for r, rule in enumerate(rules.rules):
            if not rule.patterns:
                continue
            full = rule.which(text)
            quick = rule.which(text, found.get(r, []))
            assert (full and full[0]) == (quick and quick[0]), (rule.name, text)


def test_every_shipped_pattern_compiles():
    """The shipped rules are compiled when first needed, not at start: check them all here."""
    import re

    from ingest.bounce.rules import load_rules

    bad = []
    for rule in load_rules().rules:
        if rule.file != "rules.toml":
            continue
        for pattern in rule.patterns:
            try:
                re.compile(pattern, re.I)
            except re.error as exc:
                bad.append(f"{rule.name}: /{pattern}/: {exc}")
    assert bad == []
