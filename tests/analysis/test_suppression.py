"""The suppression rules on hand-built histories with known answers."""
from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select

from analysis.suppression import Rules, SuppressionRulesError, run
from analysis.config import SuppressionConfig
from store.alerts import Alert
from store.suppressions import Suppression, SuppressionChange, SuppressionHold, changes_since, is_suppressed
from tests.analysis.history import T0, History, hours

RULES = Rules.from_config(SuppressionConfig())


@pytest.fixture
def h(store):
    return History(store)


def suppressed(store, address, at=None):
    with store() as s:
        return is_suppressed(s, address, ["global"], now=at or T0 + hours(24 * 60))


def soft(h, address, reason, gaps_hours, **kw):
    """Bounces of `reason` for `address`, each from its own sent message, at T0 + each gap."""
    return [h.bounce(address, reason, T0 + hours(g), sent=f"<m{g}.{address}>", **kw) for g in gaps_hours]


# -- immediate ----------------------------------------------------------------------------------

@pytest.mark.parametrize("reason", ["userunknown", "hostunknown", "hasmoved", "notaccept", "suppressed"])
def test_a_hygiene_bounce_suppresses_at_once(store, h, reason):
    event = h.bounce("Gone@Example.NET", reason, T0, status="5.1.1")
    out = run(store, RULES, T0 + hours(1))
    assert out.suppressed == 1
    row = suppressed(store, "gone@example.net")
    assert (row.reason, row.source, row.scope) == (reason, "bounce", "global")
    assert (row.event_table, row.event_id, row.expires_at) == ("bounce_events", event, None)
    with store() as s:
        rows, nxt = changes_since(s, 0, 10)
    assert [(r["op"], r["address"], r["reason"]) for r in rows] == [("add", "gone@example.net", reason)]
    assert nxt == rows[0]["cursor"]


def test_notaccept_suppresses_at_once_only_when_permanent(store, h):
    h.bounce("a@example.net", "notaccept", T0, status="4.3.2", hard=False)
    run(store, RULES, T0 + hours(1))
    assert suppressed(store, "a@example.net") is None
    # a temporary notaccept counts as a soft bounce: five of them, days apart, suppress
    soft(h, "a@example.net", "notaccept", [80, 160, 240, 320], status="4.3.2", hard=False)
    run(store, RULES, T0 + hours(330))
    assert suppressed(store, "a@example.net").reason == "notaccept"


@pytest.mark.parametrize("reason", ["userunknown", "hostunknown", "hasmoved"])
def test_a_bad_address_verdict_the_codes_did_not_back_waits_for_a_pattern(store, h, reason):
    # The words said the address is bad but a 4xx said "for now" (the classifier made it
    # soft): one such bounce suppresses no one; repeated ones, days apart, do.
    h.bounce("kim@example.net", reason, T0, status="4.1.1", hard=False)
    run(store, RULES, T0 + hours(1))
    assert suppressed(store, "kim@example.net") is None
    soft(h, "kim@example.net", reason, [80, 160, 240, 320], status="4.1.1", hard=False)
    run(store, RULES, T0 + hours(330))
    assert suppressed(store, "kim@example.net").reason == reason


# -- soft thresholds ------------------------------------------------------------------------------

@pytest.mark.parametrize("reason, needed", [("suspend", 2), ("mailboxfull", 3), ("expired", 3),
                                            ("systemfull", 5), ("systemerror", 5), ("mailererror", 5),
                                            ("networkerror", 5)])
def test_soft_reasons_suppress_at_their_threshold(store, h, reason, needed):
    gaps = [i * 80 for i in range(needed)]
    soft(h, "full@example.net", reason, gaps[:-1])
    run(store, RULES, T0 + hours(gaps[-2] + 1))
    assert suppressed(store, "full@example.net") is None  # one short
    soft(h, "full@example.net", reason, gaps[-1:])
    out = run(store, RULES, T0 + hours(gaps[-1] + 1))
    row = suppressed(store, "full@example.net")
    assert out.suppressed == 1 and row.reason == reason
    assert len(row.details["events"]) == needed and row.details["messages"] == needed
    assert row.expires_at is not None  # a soft suppression lapses (soft_expiry_days)


def test_syntaxerror_is_ours_not_the_recipients(store, h):
    soft(h, "x@example.net", "syntaxerror", [0, 80, 160, 240, 320, 400])
    run(store, RULES, T0 + hours(500))
    assert suppressed(store, "x@example.net") is None


def test_a_more_serious_soft_bounce_counts_toward_a_lower_bar(store, h):
    # 2 mailboxfull + 1 suspend = 3 bounces at the mailboxfull bar (3)
    h.bounce("m@example.net", "mailboxfull", T0, sent="<a>")
    h.bounce("m@example.net", "suspend", T0 + hours(80), sent="<b>")
    h.bounce("m@example.net", "mailboxfull", T0 + hours(160), sent="<c>")
    run(store, RULES, T0 + hours(161))
    assert suppressed(store, "m@example.net").reason == "mailboxfull"


# -- the window rule -------------------------------------------------------------------------------

def test_bounces_less_than_72_hours_apart_do_not_make_a_pattern(store, h):
    soft(h, "w@example.net", "mailboxfull", [0, 30, 71])  # three messages, all within 72 h
    run(store, RULES, T0 + hours(72))
    assert suppressed(store, "w@example.net") is None
    soft(h, "w@example.net", "mailboxfull", [72.5])  # now the first and the last are 72.5 h apart
    run(store, RULES, T0 + hours(73))
    assert suppressed(store, "w@example.net") is not None


def test_bounces_of_one_message_are_one_message(store, h):
    for g in (0, 80, 160, 240):  # retries of the same sent message, days apart
        h.bounce("one@example.net", "mailboxfull", T0 + hours(g), sent="<same@send.example.com>")
    run(store, RULES, T0 + hours(241))
    assert suppressed(store, "one@example.net") is None
    h.bounce("one@example.net", "mailboxfull", T0 + hours(250), sent="<other@send.example.com>")
    run(store, RULES, T0 + hours(251))
    assert suppressed(store, "one@example.net") is not None


def test_bounces_older_than_the_window_do_not_count(store, h):
    soft(h, "old@example.net", "mailboxfull", [0, 80])
    soft(h, "old@example.net", "mailboxfull", [24 * 31 + 80])  # the first is 31+ days before the last
    run(store, RULES, T0 + hours(24 * 32))
    assert suppressed(store, "old@example.net") is None


def test_delayed_notices_are_not_bounces(store, h):
    soft(h, "d@example.net", "mailboxfull", [0, 80, 160], action="delayed")
    run(store, RULES, T0 + hours(161))
    assert suppressed(store, "d@example.net") is None


# -- reset by a later delivery ---------------------------------------------------------------------

def test_a_delivery_report_resets_the_count(store, h):
    soft(h, "r@example.net", "mailboxfull", [0, 80])
    h.bounce("r@example.net", "delivered", T0 + hours(100), status="2.0.0", action="delivered")
    soft(h, "r@example.net", "mailboxfull", [180, 260])
    run(store, RULES, T0 + hours(261))
    assert suppressed(store, "r@example.net") is None  # 2 since the delivery
    h.bounce("r@example.net", "mailboxfull", T0 + hours(340), sent="<late>")
    run(store, RULES, T0 + hours(341))
    assert suppressed(store, "r@example.net") is not None


def test_a_send_accepted_without_a_bounce_resets_the_count(store, h):
    from store.volume import SendLog

    soft(h, "s@example.net", "mailboxfull", [0, 80])
    with store.begin() as s:
        # the send of the first bounced message (it bounced: no reset), then one that got through
        s.add(SendLog(sent_at=T0 - hours(1), recipient="s@example.net", result="sent", message_id="<m0.s@example.net>"))
        s.add(SendLog(sent_at=T0 + hours(100), recipient="s@example.net", result="sent", message_id="<ok@x>"))
    soft(h, "s@example.net", "mailboxfull", [180, 260])
    run(store, RULES, T0 + hours(261))
    assert suppressed(store, "s@example.net") is None
    h.bounce("s@example.net", "mailboxfull", T0 + hours(340), sent="<late>")
    run(store, RULES, T0 + hours(341))
    assert suppressed(store, "s@example.net") is not None


def test_without_reset_on_delivery_deliveries_do_not_matter(store, h):
    rules = Rules.from_config(SuppressionConfig(reset_on_delivery=False))
    soft(h, "r@example.net", "mailboxfull", [0, 80])
    h.bounce("r@example.net", "delivered", T0 + hours(100), status="2.0.0", action="delivered")
    soft(h, "r@example.net", "mailboxfull", [180])
    run(store, rules, T0 + hours(181))
    assert suppressed(store, "r@example.net") is not None


# -- never suppress --------------------------------------------------------------------------------

@pytest.mark.parametrize("reason", ["blocked", "badreputation", "requireptr", "authfailure", "toomanyconn",
                                    "speeding", "spamdetected", "virusdetected", "mesgtoobig",
                                    "policyviolation", "filtered", "rejected", "failedstarttls",
                                    "undefined", "onhold", "vacation"])
def test_categories_that_never_suppress(store, h, reason):
    soft(h, "n@example.net", reason, [i * 80 for i in range(8)], status="5.7.1")
    out = run(store, RULES, T0 + hours(700))
    assert suppressed(store, "n@example.net") is None and out.suppressed == 0


@pytest.mark.parametrize("field, value", [("thresholds", ("blocked=3",)), ("immediate", ("spamdetected",)),
                                          ("transient_reasons", ("undefined",)), ("thresholds", ("nonsense=2",)),
                                          ("thresholds", ("mailboxfull",)), ("immediate", ("mailboxfull",)),
                                          ("complaint_scope", "everywhere")])
def test_a_configuration_against_the_categories_is_refused(field, value):
    with pytest.raises(SuppressionRulesError, match=f"suppression.{field}"):
        Rules.from_config(dataclasses.replace(SuppressionConfig(), **{field: value}))


# -- complaints --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["abuse", "fraud", "opt-out", "unsubscribe", "Abuse"])
def test_complaints_suppress_at_once_and_for_good(store, h, kind):
    event = h.complaint("C@Example.net", kind, T0)
    run(store, RULES, T0 + hours(1))
    row = suppressed(store, "c@example.net", at=T0 + hours(24 * 3650))
    assert (row.source, row.reason, row.expires_at, row.event_id) == ("complaint", kind.lower(), None, event)


@pytest.mark.parametrize("kind", ["not-spam", "virus", "other", "auth-failure"])
def test_other_feedback_types_do_not_suppress(store, h, kind):
    h.complaint("c@example.net", kind, T0)
    run(store, RULES, T0 + hours(1))
    assert suppressed(store, "c@example.net") is None


def test_complaints_scoped_to_the_sending_domain(store, h):
    rules = Rules.from_config(SuppressionConfig(complaint_scope="domain"))
    h.complaint("c@example.net", "abuse", T0, from_domain="News.Send.Example.com")
    run(store, rules, T0 + hours(1))
    with store() as s:
        assert is_suppressed(s, "c@example.net", ["global"], now=T0 + hours(2)) is None
        assert is_suppressed(s, "c@example.net", ["global", "domain:news.send.example.com"],
                             now=T0 + hours(2)).scope == "domain:news.send.example.com"


def test_a_redacted_complaint_finds_its_recipient_through_the_send_log(store, h):
    from store.volume import SendLog

    with store.begin() as s:
        send = SendLog(sent_at=T0, recipient="who@example.net", result="sent")
        s.add(send)
        s.flush()
        send_id = send.id
    h.complaint(None, "abuse", T0 + hours(1), send_id=send_id)
    run(store, RULES, T0 + hours(2))
    assert suppressed(store, "who@example.net") is not None


# -- the mass-event guard ------------------------------------------------------------------------

def test_the_guard_holds_soft_escalations_during_a_mass_block_then_releases_them(store, h):
    now = T0 + hours(200)
    soft(h, "full@gmail.com", "mailboxfull", [0, 100, 199.5])
    for i in range(20):  # Gmail blocks us: 20 reputation bounces against 5 others in the last hour
        h.bounce(f"u{i}@gmail.com", "blocked", now - hours(0.5), status="5.7.1", sent=f"<b{i}>")
    for i in range(3):
        h.bounce(f"v{i}@googlemail.com", "mailboxfull", now - hours(0.5), sent=f"<c{i}>")
    h.bounce("gone@gmail.com", "userunknown", now - hours(0.2), status="5.1.1")
    out = run(store, RULES, now)
    assert out.guarded == {"google": (20, 25)}
    assert suppressed(store, "full@gmail.com") is None  # held, not lost
    assert suppressed(store, "gone@gmail.com") is not None  # hygiene is never held
    with store() as s:
        hold = s.scalars(select(SuppressionHold)).one()
        assert (hold.address, hold.provider) == ("full@gmail.com", "google")
        alert = s.scalars(select(Alert)).one()
        assert (alert.rule, alert.dimension, alert.key, alert.status) == ("suppression_hold", "provider", "google",
                                                                          "open")
        assert "20 of 25" in alert.message
    # still within the hour: still held
    again = run(store, RULES, now + hours(0.25))
    assert again.released == 0 and suppressed(store, "full@gmail.com") is None
    # the block is over: the held address is judged, the alert resolved
    later = run(store, RULES, now + hours(2))
    assert later.released == 1 and later.guarded == {}
    assert suppressed(store, "full@gmail.com").reason == "mailboxfull"
    with store() as s:
        assert s.scalar(select(func.count()).select_from(SuppressionHold)) == 0
        assert s.scalars(select(Alert)).one().status == "resolved"


def test_the_guard_needs_both_the_share_and_the_count(store, h):
    now = T0 + hours(200)
    soft(h, "full@gmail.com", "mailboxfull", [0, 100, 199.5])
    for i in range(19):
        h.bounce(f"u{i}@gmail.com", "blocked", now - hours(0.5), status="5.7.1", sent=f"<b{i}>")
    out = run(store, RULES, now)
    assert out.guarded == {} and suppressed(store, "full@gmail.com") is not None


def test_the_guard_is_per_provider(store, h):
    now = T0 + hours(200)
    soft(h, "full@yahoo.com", "mailboxfull", [0, 100, 199.5])
    for i in range(30):  # the provider named on the event wins over the domain list
        h.bounce(f"u{i}@corp.example", "blocked", now - hours(0.5), status="5.7.1", provider="microsoft",
                 sent=f"<b{i}>")
    out = run(store, RULES, now)
    assert set(out.guarded) == {"microsoft"} and suppressed(store, "full@yahoo.com") is not None


# -- idempotence, expiry, the job --------------------------------------------------------------------

def test_a_second_pass_writes_nothing(store, h):
    h.bounce("a@example.net", "userunknown", T0)
    soft(h, "b@example.net", "mailboxfull", [0, 80, 160])
    h.complaint("c@example.net", "abuse", T0)
    first = run(store, RULES, T0 + hours(170))
    second = run(store, RULES, T0 + hours(170))
    assert first.suppressed == 3 and second.rows == 0
    with store() as s:
        assert s.scalar(select(func.count()).select_from(SuppressionChange)) == 3
        assert s.scalar(select(func.count()).select_from(Suppression)) == 3


def test_events_arriving_later_are_read_once(store, h):
    soft(h, "b@example.net", "mailboxfull", [0, 80])
    run(store, RULES, T0 + hours(81))
    soft(h, "b@example.net", "mailboxfull", [160])
    out = run(store, RULES, T0 + hours(161))
    assert out.evidence == 1 and out.suppressed == 1


def test_a_soft_suppression_lapses_and_the_feed_says_so(store, h):
    soft(h, "b@example.net", "mailboxfull", [0, 80, 160])
    run(store, RULES, T0 + hours(161))
    out = run(store, RULES, T0 + hours(161) + hours(24 * 91))
    assert out.expired == 1
    with store() as s:
        rows, _ = changes_since(s, 0)
    assert [(r["op"], r["reason"]) for r in rows] == [("add", "mailboxfull"), ("remove", "expired")]
    # the bounces it was built on were judged: they do not suppress again on their own
    soft(h, "b@example.net", "mailboxfull", [161 + 24 * 92])
    run(store, RULES, T0 + hours(162 + 24 * 92))
    assert suppressed(store, "b@example.net", at=T0 + hours(163 + 24 * 92)) is None


def test_a_person_removing_a_suppression_is_not_overruled_by_old_bounces(store, h):
    from store.suppressions import remove_suppression

    soft(h, "b@example.net", "mailboxfull", [0, 80, 160])
    run(store, RULES, T0 + hours(161))
    with store.begin() as s:
        remove_suppression(s, "b@example.net", reason="mailbox emptied", now=T0 + hours(170))
    soft(h, "b@example.net", "mailboxfull", [200])
    run(store, RULES, T0 + hours(201))
    assert suppressed(store, "b@example.net", at=T0 + hours(202)) is None


def test_the_job_is_registered_and_reads_the_configuration(store, h):
    from analysis.jobs import JobContext, all_jobs
    from postwatch.config import load

    jobs = {j.name: j for j in all_jobs()}
    assert jobs["suppression"].order == 30 and jobs["retention"].order == 90
    config = load(environ={"POSTWATCH_SUPPRESSION__THRESHOLDS": "suspend=2, mailboxfull=2",
                           "POSTWATCH_SUPPRESSION__MIN_SPREAD_HOURS": "1.5"})
    assert config.suppression.thresholds == ("suspend=2", "mailboxfull=2")
    assert config.suppression.min_spread_hours == 1.5
    soft(h, "b@example.net", "mailboxfull", [0, 2])
    rows = jobs["suppression"].run(JobContext(sessions=store, settings=config, clock=lambda: T0 + hours(3)))
    assert rows >= 3 and suppressed(store, "b@example.net") is not None


def test_from_a_real_dsn_through_the_pipeline_to_the_feed(store, pipeline):
    from ingest.envelope import Envelope
    from tests.ingest.messages import postfix_dsn

    out = pipeline.ingest(postfix_dsn(recipients=(
        ("Gone@Example.net", "5.1.1", "550 5.1.1 <Gone@Example.net>: Recipient address rejected: User unknown"),
        ("full@example.net", "4.2.2", "452 4.2.2 <full@example.net>: Mailbox full"),
        ("blocked@example.net", "5.7.1", "550 5.7.1 Service unavailable; client host blocked using Spamhaus"))),
        Envelope("file"))
    assert out.status == "parsed"
    result = run(store, RULES, T0 + hours(24 * 400))
    assert result.suppressed == 1 and result.evidence == 1
    with store() as s:
        rows, nxt = changes_since(s, 0)
    assert [(r["op"], r["address"], r["reason"]) for r in rows] == [("add", "gone@example.net", "userunknown")]
    assert run(store, RULES, T0 + hours(24 * 400)).rows == 0
