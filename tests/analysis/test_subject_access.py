"""`postwatch subject-access` (GDPR article 15): every table that can name an address is found,
nothing of another address is, and after `forget` nothing is left in clear."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from analysis.privacy import forget, subject_access
from store.engagement import EngagementEvent
from store.models import DmarcFailureReport, Quarantine
from store.suppressions import SuppressionEvidence, add_suppression, remove_suppression, suppressions_of
from store.volume import SendLog
from tests.analysis.history import T0, History, hours
from tests.postwatch.test_cli import run

SALT = "subject-access-salt-0123456789"
ANN, BOB = "ann@example.net", "bob@example.net"


@pytest.fixture
def stored(store):
    """The same facts about ann and bob, in every table that can name an address."""
    h = History(store)
    for who in (ANN, BOB):
        h.bounce(who, "mailboxfull", T0)
        h.complaint(who, "abuse", T0 + hours(1))
        failure = h.message(b"Feedback-Type: auth-failure\n", kind="dmarc_failure")
        with store.begin() as s:
            row = SendLog(sent_at=T0, recipient=who, recipient_domain="example.net", campaign="spring",
                          result="sent", message_id=f"<{who[:3]}@send.example.com>")
            s.add(row)
            s.flush()
            s.add(EngagementEvent(send_id=row.id, kind="open", occurred_at=T0 + hours(2), recipient=who,
                                  campaign="spring", method="GET", user_agent="Mozilla/5.0", machine=False))
            s.add(DmarcFailureReport(message_id=failure, arrival_date=T0, feedback_type="auth-failure",
                                     original_rcpt_to=who.upper(), reported_domain="send.example.com"))
            add_suppression(s, who, reason="topic", source="unsubscribe", now=T0, scope="topic:tips")
            add_suppression(s, who, reason="pause", source="unsubscribe", now=T0, expires_at=T0 + hours(24 * 30))
            remove_suppression(s, who, reason="topic chosen again", now=T0 + hours(3), scope="topic:tips")
            s.add(SuppressionEvidence(address=who, kind="soft", reason="mailboxfull", occurred_at=T0,
                                      bounce_event_id=hash(who) % 10_000, message_key="m", provider="other"))
        quarantined = h.message(f"Subject: ???\n\nreturned to bounces+{who.replace('@', '=')}@send.example.com\n"
                                .encode(), kind="unknown", status="quarantined")
        with store.begin() as s:
            s.add(Quarantine(message_id=quarantined, reason="not feedback", created_at=T0))
    return store


TABLES = ("send_log", "bounce_events", "complaint_events", "engagement_events", "dmarc_failure_reports",
          "suppressions", "suppression_changes", "suppression_evidence", "inbound_messages")


def test_every_table_is_found_and_nothing_of_another_address(stored):
    with stored() as s:
        found = subject_access(s, "Ann@Example.NET", salt=SALT, now=T0 + hours(5))
    tables = found["tables"]
    assert found["address"] == ANN
    assert {name: len(tables[name]) for name in TABLES} == {
        "send_log": 1, "bounce_events": 1, "complaint_events": 1, "engagement_events": 1,
        "dmarc_failure_reports": 1, "suppressions": 2, "suppression_changes": 3, "suppression_evidence": 1,
        "inbound_messages": 4}  # the DSN, the ARF report, the failure report and the quarantined message
    assert tables["send_log"][0]["message_id"] == "<ann@send.example.com>"
    assert tables["engagement_events"][0]["user_agent"] == "Mozilla/5.0"
    assert {(r["scope"], r["reason"], r["removed_reason"]) for r in tables["suppressions"]} == {
        ("topic:tips", "topic", "topic chosen again"), ("global", "pause", None)}
    assert [c["op"] for c in tables["suppression_changes"]] == ["add", "add", "remove"]
    # metadata of the messages, never their bytes
    assert all("raw_zlib" not in m and m["sha256"] for m in tables["inbound_messages"])
    text = json.dumps(found)
    assert "bob" not in text.lower()
    assert found["kept_as_hash"]["rows"] == {"suppressions": 0, "suppression_changes": 0, "send_log": 0,
                                             "engagement_events": 0}


def test_after_forget_nothing_is_found_in_clear(stored):
    with stored.begin() as s:
        forget(s, ANN, salt=SALT, now=T0 + hours(6))
    with stored() as s:
        found = subject_access(s, ANN, salt=SALT, now=T0 + hours(7))
        assert s.scalar(select(EngagementEvent.user_agent).where(EngagementEvent.recipient.startswith("hmac"))) is None
        bob = subject_access(s, BOB, now=T0 + hours(7))
    assert {name: rows for name, rows in found["tables"].items() if rows} == {}
    body = dict(found)
    body.pop("address")
    assert "ann" not in json.dumps(body).lower()
    # what is kept is kept under the hash, and counted as such
    kept = found["kept_as_hash"]
    assert kept["hash"].startswith("hmac-sha256:")
    assert kept["rows"]["send_log"] == 1 and kept["rows"]["engagement_events"] == 1
    assert kept["rows"]["suppressions"] == 3  # the two kept (one lifted) and the global one forget adds
    with stored() as s:  # for good: the pause would have lapsed
        assert any(r.scope == "global" and r.expires_at is None
                   for r in suppressions_of(s, ANN, now=T0 + hours(24 * 60), salt=SALT))
    # bob is untouched
    assert all(len(bob["tables"][name]) >= 1 for name in TABLES)


def test_the_command_writes_the_json_to_a_file(stored, database, tmp_path):
    env = {"POSTWATCH_DATABASE__URL": database.url, "POSTWATCH_PRIVACY__SALT": SALT}
    done = run(["subject-access", BOB, "--output", "bob.json"], cwd=tmp_path, env=env)
    assert "stored in clear, written to bob.json" in done.stderr and done.stdout == ""
    written = json.loads((tmp_path / "bob.json").read_text())
    assert written["address"] == BOB and len(written["tables"]["send_log"]) == 1
    printed = json.loads(run(["subject-access", "nobody@example.net"], cwd=tmp_path, env=env).stdout)
    assert all(rows == [] for rows in printed["tables"].values())
    refused = run(["subject-access", "not-an-address"], cwd=tmp_path, env=env, check=False)
    assert refused.returncode == 2 and "not an e-mail address" in refused.stderr
