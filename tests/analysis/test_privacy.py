"""Forgetting an address, and purging raw messages after the retention period."""
from __future__ import annotations

import zlib

import pytest
from sqlalchemy import func, select

from analysis.privacy import PrivacyError, forget, purge_raw
from store.addresses import address_hash
from store.models import BounceEvent, ComplaintEvent, InboundMessage, Quarantine
from store.suppressions import (Suppression, SuppressionChange, SuppressionEvidence, add_suppression,
                                changes_since, is_suppressed)
from tests.analysis.history import T0, History, hours

SALT = "test-salt-0123456789"


@pytest.fixture
def h(store):
    return History(store)


def _all_text(store) -> str:
    """Every readable column of the rows that could name an address, as one string."""
    with store() as s:
        parts = [repr(row) for model in (Suppression, SuppressionChange, SuppressionEvidence)
                 for row in s.execute(select(model.__table__)).all()]
        parts += list(s.scalars(select(BounceEvent.recipient))) + list(s.scalars(select(ComplaintEvent.recipient)))
    return "\n".join(parts).lower()


def test_forget_erases_and_still_suppresses_by_hash(store, h):
    from analysis.suppression import Rules, run
    from analysis.config import SuppressionConfig
    from store.volume import SendLog

    target = "Ann.Smith@Example.NET"
    kept = h.bounce("other@example.net", "userunknown", T0)
    shared = h.message(b"Final-Recipient: rfc822; ann.smith@example.net\nFinal-Recipient: rfc822; bo@example.net\n")
    h.bounce("ann.smith@example.net", "mailboxfull", T0, message_id=shared)
    h.bounce("bo@example.net", "mailboxfull", T0, message_id=shared)
    h.bounce("ANN.SMITH@example.net", "userunknown", T0 + hours(1))
    h.complaint("ann.smith@example.net", "abuse", T0 + hours(2))
    quarantined = h.message(b"Subject: ???\n\nreturned to bounces+ann.smith=example.net@send.example.com\n",
                            kind="unknown", status="quarantined")
    unrelated = h.message(b"Subject: ???\n\nnothing about her\n", kind="unknown", status="quarantined")
    with store.begin() as s:
        for mid in (quarantined, unrelated):
            s.add(Quarantine(message_id=mid, reason="not feedback", created_at=T0))
        s.add(SendLog(sent_at=T0, recipient="ann.smith@example.net", result="sent"))
        add_suppression(s, "ann.smith@example.net", reason="unsub", source="unsubscribe", now=T0,
                        scope="campaign:5")
    run(store, Rules.from_config(SuppressionConfig()), T0 + hours(3))
    with store() as s:
        assert is_suppressed(s, target, ["global"], now=T0 + hours(4)) is not None

    with store.begin() as s:
        result = forget(s, target, salt=SALT, now=T0 + hours(5))
    digest = address_hash("ann.smith@example.net", SALT)
    assert result.hash == "hmac-sha256:" + digest
    assert result.erased["bounce_events"] == 2 and result.erased["complaint_events"] == 1
    assert result.erased["raw_messages"] == 4  # the shared DSN, her DSN, the complaint, the quarantined one
    assert result.erased["send_log"] == 1 and not result.suppressed  # she was suppressed already

    assert "ann.smith" not in _all_text(store)
    with store() as s:
        # the other recipient of the shared DSN keeps its event; the message keeps its row, not its bytes
        assert s.scalar(select(func.count()).select_from(BounceEvent)) == 2
        assert s.get(BounceEvent, kept) is not None
        msg = s.get(InboundMessage, shared)
        assert msg.raw_zlib is None and "erased" in msg.error
        assert s.get(InboundMessage, unrelated).raw_zlib is not None
        q = s.scalars(select(Quarantine).where(Quarantine.message_id == quarantined)).one()
        assert q.released_at is not None and "erased" in q.reason
        assert s.scalar(select(SendLog.recipient)) == result.hash
        # still suppressed: by its hash, when the caller passes the salt
        found = is_suppressed(s, target, ["global"], now=T0 + hours(6), salt=SALT)
        assert found is not None and found.address is None and found.address_hash == digest
        assert is_suppressed(s, target, ["campaign:5"], now=T0 + hours(6), salt=SALT) is not None
        rows, _ = changes_since(s, 0)
    assert {r["address"] for r in rows if "example.net" not in r["address"]} == {result.hash}
    assert all("ann.smith" not in r["address"] for r in rows)


def test_forget_keeps_a_never_suppressed_address_suppressed_by_hash(store, h):
    with store.begin() as s:
        result = forget(s, "new@example.org", salt=SALT, now=T0)
        assert result.suppressed
    with store() as s:
        assert is_suppressed(s, "New@Example.org", now=T0 + hours(1), salt=SALT).reason == "erased"
        assert is_suppressed(s, "New@Example.org", now=T0 + hours(1)) is None  # without the salt: no answer
        rows, _ = changes_since(s, 0)
    assert [(r["op"], r["address"]) for r in rows] == [("add", result.hash)]
    with store.begin() as s:  # forgetting twice changes nothing
        assert not forget(s, "new@example.org", salt=SALT, now=T0).suppressed


def test_forget_needs_a_salt(store):
    with store.begin() as s, pytest.raises(PrivacyError, match="privacy.salt"):
        forget(s, "a@example.org", salt="", now=T0)


def test_retention_purges_old_raw_bytes_only(store, h):
    old = h.message(received_at=T0 - hours(24 * 200))
    old_q = h.message(received_at=T0 - hours(24 * 181), kind="unknown", status="quarantined")
    fresh = h.message(received_at=T0 - hours(24 * 179))
    with store.begin() as s:
        s.add(Quarantine(message_id=old_q, reason="not feedback", created_at=T0))
    assert purge_raw(store, older_than_days=0, now=T0) == 0  # 0 = keep everything
    assert purge_raw(store, older_than_days=180, now=T0) == 2
    assert purge_raw(store, older_than_days=180, now=T0) == 0  # idempotent
    with store() as s:
        assert s.get(InboundMessage, old).raw_zlib is None
        assert "purged" in s.get(InboundMessage, old).error
        assert zlib.decompress(s.get(InboundMessage, fresh).raw_zlib)
        assert s.scalars(select(Quarantine)).one().released_at is not None


def test_the_retention_job_reads_privacy_raw_retention_days(store, h):
    from analysis.jobs import JobContext, all_jobs
    from postwatch.config import load

    h.message(received_at=T0 - hours(24 * 10))
    job = {j.name: j for j in all_jobs()}["retention"]
    config = load(environ={"POSTWATCH_PRIVACY__RAW_RETENTION_DAYS": "7"})
    assert job.run(JobContext(sessions=store, settings=config, clock=lambda: T0)) == 1
