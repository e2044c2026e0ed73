"""Rollups on hand-built histories: known counts, incremental = full recompute, only new rows read."""
from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import event, select

from analysis import rollups
from analysis.providers import ProviderResolver, ProvidersConfig
from store.rollups import Rollup, RollupWatermark, ScorePending
from tests.analysis import history_a as h

D1, D2 = date(2026, 5, 1), date(2026, 5, 2)
NOW = datetime(2026, 5, 3, tzinfo=timezone.utc)


def _values(session) -> dict[tuple, int]:
    return {(r.day, r.dimension, r.key, r.metric): r.value for r in session.scalars(select(Rollup)) if r.value}


def _update(session, **kw) -> int:
    return rollups.update(session, now=NOW, providers=ProviderResolver(ProvidersConfig(mx_lookups=False)), **kw)


def _history(s):
    s1 = h.send(s, D1, recipient="a@gmail.com", campaign="spring")
    h.send(s, D1, recipient="b@gmail.com", campaign="spring")
    h.send(s, D1, recipient="c@yahoo.com", sending_ip="192.0.2.11", campaign=None)
    h.send(s, D1, recipient="d@outlook.com", result="bounced")
    h.send(s, D1, recipient="e@outlook.com", result="deferred")  # not an outcome yet
    h.send(s, D1, recipient="f@outlook.com", result="suppressed")  # never sent
    # a bounce through the send log: its IP and campaign come from there
    h.bounce(s, D1, "userunknown", recipient="a@gmail.com", send_id=s1.id, from_domain="other.example")
    # a bounce known only by its returned message: no IP
    h.bounce(s, D1, "blocked", recipient="x@hotmail.com", campaign="spring")
    h.bounce(s, D2, "mailboxfull", recipient="y@custom.example", from_domain=None)
    h.bounce(s, D2, "delivered", recipient="z@gmail.com")  # a success DSN: not a bounce
    # the words said "unknown user", a 4xx said "for now": soft, and counted as a conflict
    h.bounce(s, D2, "userunknown", recipient="w@gmail.com", conflict="the words say userunknown, but reply code 450 is temporary")
    h.complaint(s, D2, "abuse", recipient="b@gmail.com", source_ip="192.0.2.11")
    h.complaint(s, D2, "not-spam", recipient="b@yahoo.com")
    h.dmarc_report(s, D1, "news.example.com", [
        {"ip": "192.0.2.10", "count": 100, "dkim": True, "spf": True},
        {"ip": "203.0.113.5", "count": 7, "rdns": "mail-sor-f41.google.com", "base": "google.com"},
        {"ip": "198.51.100.66", "count": 3},
    ])
    h.tls_report(s, D1, "news.example.com", ok=90, failed=10)


def test_known_counts(store):
    with store() as s, s.begin():
        _history(s)
        _update(s)
    with store() as s:
        v = _values(s)
    a1, a2 = (D1, "all", ""), (D2, "all", "")
    assert v[(*a1, "sent")] == 4 and v[(*a1, "delivered")] == 3
    assert v[(*a1, "bounced")] == 2 and v[(*a1, "hard")] == 1
    assert v[(*a1, "bounced.hygiene")] == 1 and v[(*a1, "bounced.reputation")] == 1
    assert v[(*a1, "reason.userunknown")] == 1 and v[(*a1, "reason.blocked")] == 1
    assert v[(*a2, "bounced")] == 2 and v[(*a2, "bounced.transient")] == 1 and v[(*a2, "reason.delivered")] == 1
    assert v[(*a2, "conflict")] == 1 and (*a2, "hard") not in v and (*a1, "conflict") not in v
    assert v[(D2, "provider", "google", "conflict")] == 1
    assert (*a2, "bounced.delivered") not in v
    assert v[(*a2, "complaints")] == 2 and v[(*a2, "complaints.abuse")] == 1 and v[(*a2, "complaints.not-spam")] == 1
    # entities: send log first, then the returned message, '' when unknown
    assert v[(D1, "sending_ip", "192.0.2.10", "sent")] == 3
    assert v[(D1, "sending_ip", "192.0.2.11", "sent")] == 1
    assert v[(D1, "sending_ip", "192.0.2.10", "hard")] == 1  # through send_id
    assert v[(D1, "sending_ip", "", "bounced.reputation")] == 1  # no IP known
    assert v[(D1, "sending_domain", "news.example.com", "hard")] == 1  # the send log wins over From
    assert v[(D2, "sending_domain", "", "bounced")] == 1
    assert v[(D1, "campaign", "spring", "sent")] == 2 and v[(D1, "campaign", "spring", "bounced")] == 2
    assert v[(D1, "campaign", "", "sent")] == 1
    assert v[(D2, "sending_ip", "192.0.2.11", "complaints")] == 1  # the ARF Source-IP
    # providers by recipient domain
    assert v[(D1, "provider", "google", "sent")] == 2 and v[(D1, "provider", "yahoo", "sent")] == 1
    assert v[(D1, "provider", "microsoft", "sent")] == 1 and v[(D1, "provider", "microsoft", "bounced")] == 1
    assert v[(D2, "provider", "other", "bounced")] == 1
    # DMARC: per From domain, source IP, and the reporter's provider
    dom = (D1, "sending_domain", "news.example.com")
    assert v[(*dom, "dmarc.messages")] == 110 and v[(*dom, "dmarc.pass")] == 100 and v[(*dom, "dmarc.aligned")] == 100
    assert v[(*dom, "dmarc.source.authorised")] == 100 and v[(*dom, "dmarc.source.forwarder")] == 7
    assert v[(*dom, "dmarc.source.unknown")] == 3 and v[(*dom, "dmarc.fail.unknown")] == 3
    assert v[(D1, "sending_ip", "198.51.100.66", "dmarc.messages")] == 3
    assert v[(D1, "provider", "google", "dmarc.messages")] == 110
    assert v[(*dom, "tls.ok")] == 90 and v[(*dom, "tls.failed")] == 10 and v[(*a1, "tls.failed")] == 10
    # the 'all' row is the sum of every dimension's keys
    for metric in ("sent", "bounced", "hard", "conflict", "complaints", "dmarc.messages"):
        for day in (D1, D2):
            for dim in ("sending_domain", "sending_ip", "provider", "campaign"):
                if metric.startswith("dmarc") and dim == "campaign":
                    continue
                total = sum(n for (d, dm, _k, m), n in v.items() if d == day and dm == dim and m == metric)
                assert total == v.get((day, "all", "", metric), 0), (metric, day, dim)


def test_incremental_equals_full_recompute_and_reads_only_new_rows(store, database):
    from store.engine import get_engine

    with store() as s, s.begin():
        _history(s)
        _update(s)
    with store() as s, s.begin():  # a second batch, one on an old day
        s2 = h.send(s, D2, recipient="q@gmail.com", campaign="summer")
        h.bounce(s, D1, "hostunknown", recipient="q@gmail.com", send_id=s2.id)
        h.complaint(s, D2, "abuse", send_id=s2.id)
        h.dmarc_report(s, D2, "news.example.com", [{"ip": "192.0.2.10", "count": 5, "dkim": True}])
        marks = {m.source: m.last_id for m in s.scalars(select(RollupWatermark))}
        seen: list[str] = []
        listener = lambda conn, cur, stmt, params, ctx, many: seen.append(stmt)  # noqa: E731
        event.listen(get_engine(database), "before_cursor_execute", listener)
        try:
            _update(s)
        finally:
            event.remove(get_engine(database), "before_cursor_execute", listener)
        incremental = _values(s)
    # every read of an event table was bounded by the old watermark
    reads = [q for q in seen if "GROUP BY" in q and "FROM bounce_events" in q]
    assert reads and all("bounce_events.id >" in q for q in reads)
    assert marks["bounce_events"] > 0
    with store() as s, s.begin():
        rollups.rebuild(s, now=NOW, providers=ProviderResolver(ProvidersConfig(mx_lookups=False)))
        full = _values(s)
    assert incremental == full
    assert full[(D1, "all", "", "hard")] == 2 and full[(D2, "campaign", "summer", "complaints")] == 1


def test_idempotent_and_marks_entity_days_for_scoring(store):
    with store() as s, s.begin():
        _history(s)
        assert _update(s) > 0
    with store() as s, s.begin():
        before = _values(s)
        assert _update(s) == 0
        assert _values(s) == before
        pending = set(s.execute(select(ScorePending.day, ScorePending.dimension, ScorePending.key)).all())
    assert (D1, "sending_ip", "192.0.2.10") in pending and (D2, "all", "") in pending


def test_a_batch_limit_goes_on_where_it_stopped(store):
    with store() as s, s.begin():
        for i in range(5):
            h.bounce(s, D1, "userunknown", recipient=f"u{i}@gmail.com")
        _update(s, limit=2)
        assert _values(s)[(D1, "all", "", "bounced")] == 2
        _update(s, limit=2)
        _update(s, limit=2)
        assert _values(s)[(D1, "all", "", "bounced")] == 5


def test_metrics_frame(store):
    with store() as s, s.begin():
        _history(s)
        _update(s)
    with store() as s:
        frame = rollups.metrics_frame(s, date(2026, 4, 30), D2, "all")
        assert list(frame.index) == [date(2026, 4, 30), D1, D2]
        assert frame.loc[D1, "sent"] == 4 and frame.loc[date(2026, 4, 30), "sent"] == 0
        assert frame.loc[D2, "complaints"] == 2 and str(frame["sent"].dtype) == "int64"
        ip = rollups.metrics_frame(s, D1, D1, "sending_ip", "192.0.2.11")
        assert ip.loc[D1, "sent"] == 1
        summed = rollups.metrics_frame(s, D1, D2, "sending_ip")
        assert summed.loc[D1, "sent"] == 4
        empty = rollups.metrics_frame(s, date(2020, 1, 1), date(2020, 1, 2), "campaign", "none")
        assert len(empty) == 2 and empty.empty


def test_imported_volume_is_counted_and_a_reimport_replaces(store):
    from analysis.volume import import_csv

    resolver = ProviderResolver(ProvidersConfig(mx_lookups=False))
    csv1 = "day,sending_domain,sending_ip,provider,campaign,sent\n2026-05-01,ext.example.com,,gmail.com,,1000\n"
    csv2 = "day,sending_domain,sending_ip,provider,campaign,sent\n2026-05-01,ext.example.com,,google,,700\n"
    with store() as s, s.begin():
        import_csv(s, csv1, providers=resolver, now=NOW)
        _update(s)
        assert _values(s)[(D1, "provider", "google", "sent")] == 1000
        import_csv(s, csv2, providers=resolver, now=NOW)
        _update(s)
        v = _values(s)
        assert v[(D1, "provider", "google", "sent")] == 700
        assert v[(D1, "all", "", "sent")] == 700 and v[(D1, "sending_domain", "ext.example.com", "sent")] == 700
        assert v[(D1, "sending_ip", "", "sent")] == 700
        rollups.rebuild(s, now=NOW, providers=resolver)
        assert _values(s) == v


def test_a_queued_send_is_counted_once_it_has_its_result(store):
    """The sender writes `queued` before the message leaves: rollups wait for the result."""
    with store() as s, s.begin():
        h.send(s, D1, recipient="a@gmail.com")
        pending = h.send(s, D2, hour=20, recipient="b@gmail.com", result="queued")
        h.send(s, date(2026, 4, 1), recipient="old@gmail.com", result="queued")  # left by a crash
        h.send(s, D1, recipient="c@gmail.com")
        _update(s)
    with store() as s:
        v = _values(s)
    assert v[(D1, "all", "", "sent")] == 1  # rows after the recent queued one wait too
    with store() as s, s.begin():
        s.get(type(pending), pending.id).result = "sent"
        _update(s)
    with store() as s:
        v = _values(s)
    assert v[(D1, "all", "", "sent")] == 2 and v[(D2, "all", "", "sent")] == 1


def test_sends_to_providers_that_report_complaints_are_counted_apart(store):
    """`sent.fbl`: the complaint rate's denominator — Yahoo and Microsoft send a report per
    complaint, Gmail and Apple none, so only their sends can complain."""
    from analysis.volume import import_csv

    with store() as s, s.begin():
        h.send(s, D1, recipient="a@gmail.com", campaign="spring")
        h.send(s, D1, recipient="b@yahoo.com", campaign="spring")
        h.send(s, D1, recipient="c@aol.com", campaign="spring", sending_ip="192.0.2.11")
        h.send(s, D1, recipient="d@outlook.com", campaign="spring", result="bounced")
        h.send(s, D1, recipient="e@icloud.com", campaign="spring")
        import_csv(s, "day,sending_domain,sending_ip,provider,campaign,sent\n"
                      f"{D1},news.example.com,192.0.2.10,microsoft,autumn,40\n"
                      f"{D1},news.example.com,192.0.2.10,google,autumn,60\n", now=NOW,
                   providers=ProviderResolver(ProvidersConfig(mx_lookups=False)))
        _update(s)
        v = _values(s)
    assert v[(D1, "all", "", "sent")] == 105 and v[(D1, "all", "", "sent.fbl")] == 43
    assert v[(D1, "campaign", "spring", "sent.fbl")] == 3 and v[(D1, "campaign", "autumn", "sent.fbl")] == 40
    assert v[(D1, "sending_ip", "192.0.2.11", "sent.fbl")] == 1
    assert v[(D1, "provider", "yahoo", "sent.fbl")] == 2 and (D1, "provider", "google", "sent.fbl") not in v


def test_a_delay_is_a_deferral_never_a_bounce_and_a_reputation_delay_is_a_block(store):
    """Events with action `delayed` (a delay DSN, a webhook's deferral, an MTA log's deferred
    line) count as `deferred` by category, not in `bounced`, the reasons or the delivery rate;
    one of the reputation category (Yahoo's TSS04) still counts among the blocks."""
    from analysis.scores import blocks

    with store() as s, s.begin():
        h.send(s, D1, recipient="a@yahoo.com")
        h.bounce(s, D1, "blocked", recipient="a@yahoo.com", action="delayed")
        h.bounce(s, D1, "mailboxfull", recipient="b@yahoo.com", action="delayed")
        h.bounce(s, D1, "userunknown", recipient="c@yahoo.com", action="failed")
        _update(s)
    with store() as s:
        v = {metric: n for (day, dim, key, metric), n in _values(s).items() if (day, dim, key) == (D1, "all", "")}
    assert v["deferred"] == 2 and v["deferred.reputation"] == 1 and v["deferred.transient"] == 1
    assert v["bounced"] == 1 and v["reason.userunknown"] == 1 and "reason.blocked" not in v
    assert "bounced.reputation" not in v and blocks(v) == 1
