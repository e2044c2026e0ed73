"""Daily rollups per entity, updated incrementally from the events above a watermark.

For each source table the job reads only the rows with an id above the stored watermark (and
at most the highest id when it started, below which every id is committed: see
`committed_max_id`), aggregates them in SQL with GROUP BY, and adds the
counts to `rollups` with one portable upsert (`value = value + excluded.value`). Rollups,
watermarks and the list of entity-days whose score must be recomputed change in one
transaction, so a crash never counts a row twice or loses one.

An event's entity comes from the send log when the event points at a send (`send_id`), else
from what the returned message says (From domain, campaign header) and, for the sending IP,
from the attribution stored with the event (`sending_ip`, see ingest/attribution.py); an
event whose entity is unknown counts under key '' (shown as "unknown"). Imported daily volume is not append-only (a re-import replaces
a count), so its rows carry how much of them the rollups already hold, and only the
difference is added.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Iterable

from sqlalchemy import Text, and_, case, cast, delete, func, select, update as sql_update
from sqlalchemy.orm import Session

from analysis.jobs import JobContext, job
from analysis.providers import ProviderResolver, ProvidersConfig, provider_for_org
from ingest.providers import reporting as complaint_reporting
from store.bulk import upsert_insert
from store.columns import as_date, json_list, utc_day
from store.watermark import committed_max_id
from store.models import BounceEvent, ComplaintEvent, DmarcAggregateReport, DmarcRecord, TlsPolicy, TlsReport
from store.rollups import DIMENSIONS, AlertDay, Rollup, RollupWatermark, ScorePending
from store.volume import SendLog, VolumeImport

if TYPE_CHECKING:
    import pandas as pd

    from analysis.dmarc_intel import Classifier

# Refusals of the sender, not of the recipient, final or temporary (Yahoo's TSS04 is a
# deferral): the block rate of the score and the alerts.
BLOCK_METRICS = ("bounced.reputation", "bounced.policy", "deferred.reputation", "deferred.policy")
# ... of those, the refusals for the sender's reputation alone (the digest's and the comparison's "Blocked")
REPUTATION_BLOCKS = ("bounced.reputation", "deferred.reputation")
# Reasons that are not a failed delivery: they never count as `bounced`.
NOT_BOUNCES = ("delivered", "auto_reply")
# send_log results that reached a receiver: `sent` counts these, `delivered` only the first.
REACHED = ("sent", "bounced")
ENTITY_DIMENSIONS = tuple(d for d in DIMENSIONS if d != "all")

Deltas = dict[tuple[date, str, str, str], int]


class _Batch:
    """The deltas of one update, folded into every dimension."""

    def __init__(self, providers: ProviderResolver, session: Session) -> None:
        self.deltas: Deltas = defaultdict(int)
        self.providers = providers
        self.session = session
        self._domains: list[tuple[Any, str, str, int]] = []  # (day, recipient domain, metric, n)
        # sends whose provider decides whether they count as `sent.fbl`: (day, keys, provider, domain, n)
        self._fbl: list[tuple[Any, dict[str, str | None], str | None, str, int]] = []

    def add(self, day: Any, dimension: str, key: str | None, metric: str, n: int) -> None:
        if n:
            self.deltas[(as_date(day), dimension, key or "", metric)] += int(n)

    def add_entity(self, day: Any, keys: dict[str, str | None], metric: str, n: int) -> None:
        """Count `n` under `all` and under each dimension's key given in `keys`."""
        self.add(day, "all", "", metric, n)
        for dimension, key in keys.items():
            self.add(day, dimension, key, metric, n)

    def add_recipient_domain(self, day: Any, domain: str | None, metric: str, n: int) -> None:
        """Count under the provider of a recipient domain, resolved for the whole batch at once."""
        if n:
            self._domains.append((day, domain or "", metric, n))

    def add_sent_fbl(self, day: Any, keys: dict[str, str | None], provider: str | None, domain: str | None,
                     n: int) -> None:
        """Count sends to a provider that sends complaint reports as `sent.fbl`, under `all`
        and each key (the provider is known, or resolved from the domain with the batch)."""
        if n:
            self._fbl.append((day, keys, provider, domain or "", n))

    def resolve_providers(self) -> None:
        domains = {d for _, d, _, _ in self._domains} | {d for _, _, p, d, _ in self._fbl if not p}
        if not domains and not self._fbl:
            return
        mapping = self.providers.resolve_many(self.session, domains) if domains else {}
        for day, domain, metric, n in self._domains:
            self.add(day, "provider", mapping.get(domain, ""), metric, n)
        self._domains.clear()
        reporting = complaint_reporting()
        for day, keys, provider, domain, n in self._fbl:
            provider = provider or mapping.get(domain, "")
            if provider in reporting:
                self.add_entity(day, {**keys, "provider": provider}, "sent.fbl", n)
        self._fbl.clear()


def _range(column, lo: int, hi: int):
    return and_(column > lo, column <= hi)


def _provider_key(batch: _Batch, day, provider: str | None, domain: str | None, metric: str, n: int) -> None:
    if provider:
        batch.add(day, "provider", provider, metric, n)
    else:
        batch.add_recipient_domain(day, domain, metric, n)


def _send_log(session: Session, batch: _Batch, lo: int, hi: int, dialect: str) -> None:
    s = SendLog
    day = utc_day(s.sent_at, dialect).label("day")
    sent = func.sum(case((s.result.in_(REACHED), 1), else_=0))
    delivered = func.sum(case((s.result == "sent", 1), else_=0))
    where = and_(_range(s.id, lo, hi), s.result.in_(REACHED))
    for dimension, column in (("sending_domain", s.sending_domain), ("sending_ip", s.sending_ip),
                              ("campaign", s.campaign)):
        for d, key, n_sent, n_delivered in session.execute(
                select(day, column, sent, delivered).where(where).group_by(day, column)):
            batch.add(d, dimension, key, "sent", n_sent)
            batch.add(d, dimension, key, "delivered", n_delivered)
            if dimension == "campaign":  # every row has exactly one campaign key: 'all' is their sum
                batch.add(d, "all", "", "sent", n_sent)
                batch.add(d, "all", "", "delivered", n_delivered)
    domain = case((s.provider.is_(None), s.recipient_domain))
    for d, provider, rdomain, n_sent, n_delivered in session.execute(
            select(day, s.provider, domain, sent, delivered).where(where).group_by(day, s.provider, domain)):
        _provider_key(batch, d, provider, rdomain, "sent", n_sent)
        _provider_key(batch, d, provider, rdomain, "delivered", n_delivered)
    # sends to providers with a feedback loop: the complaint rate's denominator
    entity = (s.sending_domain, s.sending_ip, s.campaign)
    for d, sdomain, ip, campaign, provider, rdomain, n_sent in session.execute(
            select(day, *entity, s.provider, domain, sent).where(where)
            .group_by(day, *entity, s.provider, domain)):
        batch.add_sent_fbl(d, {"sending_domain": sdomain, "sending_ip": ip, "campaign": campaign},
                           provider, rdomain, n_sent)


def _bounces(session: Session, batch: _Batch, lo: int, hi: int, dialect: str) -> None:
    b, s = BounceEvent, SendLog
    day = utc_day(b.occurred_at, dialect).label("day")
    keys = {"sending_domain": func.coalesce(s.sending_domain, b.from_domain),
            "sending_ip": func.coalesce(s.sending_ip, b.sending_ip),
            "campaign": func.coalesce(s.campaign, b.campaign)}
    base = select().select_from(b).outerjoin(s, s.id == b.send_id).where(_range(b.id, lo, hi))
    n = func.count()
    conflict = b.conflict.is_not(None).label("conflict")
    delayed = (func.lower(func.coalesce(b.action, "")) == "delayed").label("delayed")
    for dimension, column in keys.items():
        query = base.add_columns(day, column, b.category, b.reason, b.hard, conflict, delayed, n).group_by(
            day, column, b.category, b.reason, b.hard, conflict, delayed)
        for d, key, category, reason, hard, disagreed, later, count in session.execute(query):
            for metric in _bounce_metrics(category, reason, hard, disagreed, bool(later)):
                batch.add(d, dimension, key, metric, count)
                if dimension == "campaign":
                    batch.add(d, "all", "", metric, count)
    domain = case((s.provider.is_(None), b.recipient_domain))
    query = base.add_columns(day, s.provider, domain, b.category, b.reason, b.hard, conflict, delayed, n).group_by(
        day, s.provider, domain, b.category, b.reason, b.hard, conflict, delayed)
    for d, provider, rdomain, category, reason, hard, disagreed, later, count in session.execute(query):
        for metric in _bounce_metrics(category, reason, hard, disagreed, bool(later)):
            _provider_key(batch, d, provider, rdomain, metric, count)


def _bounce_metrics(category: str, reason: str, hard: bool, disagreed: bool, delayed: bool = False) -> list[str]:
    """A delay (a DSN or webhook event with action `delayed`, an MTA log's deferral) is no
    bounce: the message is still being tried. It counts as `deferred` (and by category), never
    in `bounced`, the reasons or the delivery rate, as the suppression rules never count it; a
    deferral of the reputation or policy category is still a refusal of the sender (a block,
    BLOCK_METRICS)."""
    if delayed:
        return ["deferred", f"deferred.{category}"]
    metrics = [f"reason.{reason}"]
    if category not in NOT_BOUNCES:
        metrics += ["bounced", f"bounced.{category}"]
    if hard:
        metrics.append("hard")
    if disagreed:  # the words and the codes disagreed and the classifier settled soft
        metrics.append("conflict")
    return metrics


def _complaints(session: Session, batch: _Batch, lo: int, hi: int, dialect: str) -> None:
    c, s = ComplaintEvent, SendLog
    day = utc_day(c.occurred_at, dialect).label("day")
    keys = {"sending_domain": func.coalesce(s.sending_domain, c.from_domain),
            "sending_ip": func.coalesce(s.sending_ip, c.sending_ip),
            "campaign": func.coalesce(s.campaign, c.campaign)}
    base = select().select_from(c).outerjoin(s, s.id == c.send_id).where(_range(c.id, lo, hi))
    for dimension, column in keys.items():
        query = base.add_columns(day, column, c.feedback_type, func.count()).group_by(day, column, c.feedback_type)
        for d, key, feedback_type, count in session.execute(query):
            for metric in ("complaints", f"complaints.{(feedback_type or 'unknown').lower()}"):
                batch.add(d, dimension, key, metric, count)
                if dimension == "campaign":
                    batch.add(d, "all", "", metric, count)
    domain = case((s.provider.is_(None), c.recipient_domain))
    query = base.add_columns(day, s.provider, domain, c.feedback_type, func.count()).group_by(
        day, s.provider, domain, c.feedback_type)
    for d, provider, rdomain, feedback_type, count in session.execute(query):
        for metric in ("complaints", f"complaints.{(feedback_type or 'unknown').lower()}"):
            _provider_key(batch, d, provider, rdomain, metric, count)


def _dmarc(session: Session, batch: _Batch, lo: int, hi: int, dialect: str, classify: Classifier) -> None:
    r, a = DmarcRecord, DmarcAggregateReport
    day = utc_day(r.interval_begin, dialect).label("day")
    domain = func.lower(func.coalesce(r.header_from, a.domain))
    overrides = cast(r.policy_override_reasons, Text)
    columns = (day, domain, r.source_ip, r.source_base_domain, r.source_reverse_dns, r.dkim_aligned,
               r.spf_aligned, r.dmarc_pass, overrides, a.org_name, a.org_email)
    query = (select(*columns, func.sum(r.count)).join(a, a.id == r.report_id)
             .where(_range(r.id, lo, hi)).group_by(*columns))
    for (d, dom, ip, base, rdns, dkim, spf, passed, over, org, org_email, count) in session.execute(query):
        reasons = json_list(over)
        source_class, _rule = classify(ip, base, rdns, bool(spf), bool(dkim), reasons)
        keys = {"sending_domain": dom, "sending_ip": ip,
                "provider": provider_for_org(org_email or org)}
        metrics = ["dmarc.messages", f"dmarc.source.{source_class}"]
        if passed:
            metrics.append("dmarc.pass")
        else:
            metrics.append(f"dmarc.fail.{source_class}")
        if dkim:
            metrics.append("dmarc.aligned")
        for metric in metrics:
            batch.add_entity(d, keys, metric, count)


def _tls(session: Session, batch: _Batch, lo: int, hi: int, dialect: str) -> None:
    t, p = TlsReport, TlsPolicy
    day = utc_day(t.begin, dialect).label("day")
    for d, org, ok, failed in session.execute(
            select(day, t.organization_name, func.sum(t.successful_sessions), func.sum(t.failed_sessions))
            .where(_range(t.id, lo, hi)).group_by(day, t.organization_name)):
        batch.add(d, "all", "", "tls.ok", ok)
        batch.add(d, "all", "", "tls.failed", failed)
        batch.add(d, "provider", provider_for_org(org), "tls.ok", ok)
        batch.add(d, "provider", provider_for_org(org), "tls.failed", failed)
    # the policy domain is ours: the reports tell how mail to it fared
    for d, policy_domain, ok, failed in session.execute(
            select(day, func.lower(p.policy_domain), func.sum(p.successful_sessions), func.sum(p.failed_sessions))
            .join(t, t.id == p.report_id).where(_range(t.id, lo, hi))
            .group_by(day, func.lower(p.policy_domain))):
        batch.add(d, "sending_domain", policy_domain, "tls.ok", ok)
        batch.add(d, "sending_domain", policy_domain, "tls.failed", failed)


def _imports(session: Session, batch: _Batch) -> int:
    """Add the difference between each changed import row and what the rollups hold of it."""
    rows = session.scalars(select(VolumeImport).where(VolumeImport.pending.is_(True))).all()
    for row in rows:
        n = row.sent - row.rolled
        keys = {"sending_domain": row.sending_domain, "sending_ip": row.sending_ip, "campaign": row.campaign}
        if "." in row.provider:  # a recipient domain (a webhook's, say): its provider, as for events
            batch.add_entity(row.day, keys, "sent", n)
            batch.add_recipient_domain(row.day, row.provider, "sent", n)
            batch.add_sent_fbl(row.day, keys, None, row.provider, n)
        else:
            keys["provider"] = row.provider
            batch.add_entity(row.day, keys, "sent", n)
            if row.provider in complaint_reporting():
                batch.add_entity(row.day, keys, "sent.fbl", n)
        row.rolled, row.pending = row.sent, False
    return len(rows)


# source name -> (id column whose watermark is kept, reader)
SOURCES: dict[str, tuple[Any, Any]] = {
    "send_log": (SendLog.id, _send_log),
    "bounce_events": (BounceEvent.id, _bounces),
    "complaint_events": (ComplaintEvent.id, _complaints),
    "dmarc_records": (DmarcRecord.id, None),  # needs the [dmarc] configuration; see update()
    "tls_reports": (TlsReport.id, _tls),
}


def update(session: Session, *, now: datetime, providers: ProviderResolver | None = None,
           classifier: Classifier | None = None, limit: int | None = None) -> int:
    """Count every event above the watermarks into `rollups`; returns the rollup rows changed.

    `limit` caps the ids read per source in one call (the next call goes on from there).
    The caller commits: rollups and watermarks move together.
    """
    from analysis.dmarc_intel import Classifier

    dialect = session.get_bind().dialect.name
    providers = providers or ProviderResolver(ProvidersConfig(mx_lookups=False))
    classifier = classifier or Classifier()
    batch = _Batch(providers, session)
    marks = {m.source: m for m in session.scalars(select(RollupWatermark))}
    for source, (id_column, reader) in SOURCES.items():
        hi = committed_max_id(session, id_column)
        if source == "send_log":
            # a send still `queued` has no result yet: stop below it, count it when it has one
            # (a send queued for over a day was left by a crash; it must not stop the count)
            queued = session.scalar(select(func.min(SendLog.id)).where(
                SendLog.result == "queued", SendLog.sent_at > now - timedelta(days=1)))
            if queued is not None and hi is not None:
                hi = min(hi, queued - 1)
        mark = marks.get(source)
        lo = mark.last_id if mark else 0
        if hi is None or hi <= lo:
            continue
        if limit is not None:
            hi = min(hi, lo + limit)
        if source == "dmarc_records":
            _dmarc(session, batch, lo, hi, dialect, classifier)
        else:
            reader(session, batch, lo, hi, dialect)
        if mark is None:
            mark = marks[source] = RollupWatermark(source=source, last_id=hi, updated_at=now)
            session.add(mark)
        mark.last_id, mark.updated_at = hi, now
    _imports(session, batch)
    batch.resolve_providers()
    changed = {k: v for k, v in batch.deltas.items() if v}
    _upsert(session, changed, now)
    session.flush()
    return len(changed)


def _upsert(session: Session, deltas: Deltas, now: datetime) -> None:
    if not deltas:
        return
    insert = upsert_insert(session)
    table = Rollup.__table__
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=["day", "dimension", "key", "metric"],
                                      set_={"value": table.c.value + stmt.excluded.value})
    rows = [{"day": d, "dimension": dim, "key": key[:255], "metric": metric[:80], "value": v}
            for (d, dim, key, metric), v in deltas.items()]
    for i in range(0, len(rows), 5000):
        session.execute(stmt, rows[i:i + 5000])
    mark_to_score(session, ((d, dim, key[:255]) for (d, dim, key, _m) in deltas))
    mark_days_to_judge(session, {d for d, _dim, _key, _m in deltas}, now)


def mark_to_score(session: Session, entities: Iterable[tuple[date, str, str]]) -> int:
    """Mark these (day, dimension, key) for their score to be computed again; how many."""
    rows = [{"day": d, "dimension": dim, "key": key} for d, dim, key in sorted(set(entities))]
    stmt = upsert_insert(session)(ScorePending.__table__).on_conflict_do_nothing()
    for i in range(0, len(rows), 5000):
        session.execute(stmt, rows[i:i + 5000])
    return len(rows)


def mark_days_to_judge(session: Session, days: set[date], now: datetime) -> None:
    """The alert rules must judge these days (again): their rollups changed."""
    if not days:
        return
    insert = upsert_insert(session)
    stmt = insert(AlertDay.__table__)
    stmt = stmt.on_conflict_do_update(index_elements=["day"], set_={"changed_at": stmt.excluded.changed_at,
                                                                    "judged_at": None})
    session.execute(stmt, [{"day": d, "changed_at": now, "judged_at": None} for d in sorted(days)])


def rebuild(session: Session, **kwargs: Any) -> int:
    """Forget every rollup and watermark and count everything again (a full recompute)."""
    session.execute(delete(Rollup))
    session.execute(delete(RollupWatermark))
    session.execute(sql_update(VolumeImport).values(rolled=0, pending=True))
    session.flush()
    return update(session, **kwargs)


def metrics_frame(session: Session, start: date, end: date, dimension: str, key: str | None = None) -> pd.DataFrame:
    """Daily metrics of one entity (or, with `key` None, of every key of `dimension` summed).

    Index: every day from `start` to `end` inclusive; one column per metric seen; zeros where
    absent; integer values.
    """
    import pandas as pd

    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension must be one of {', '.join(DIMENSIONS)}")
    query = (select(Rollup.day, Rollup.metric, func.sum(Rollup.value))
             .where(Rollup.dimension == dimension, Rollup.day >= start, Rollup.day <= end)
             .group_by(Rollup.day, Rollup.metric))
    if key is not None:
        query = query.where(Rollup.key == key)
    rows = session.execute(query).all()
    days = pd.Index([start + timedelta(days=i) for i in range((end - start).days + 1)], name="day")
    if not rows:
        return pd.DataFrame(index=days, dtype="int64")
    frame = pd.DataFrame(rows, columns=["day", "metric", "value"])
    frame["day"] = frame["day"].map(as_date)
    wide = frame.pivot_table(index="day", columns="metric", values="value", aggfunc="sum", fill_value=0)
    wide = wide.reindex(days, fill_value=0).fillna(0).astype("int64")
    wide.columns.name = None
    return wide


def resolver_from(settings: Any, clock=None) -> ProviderResolver:
    """The provider resolver the configuration describes ([providers], [dns])."""
    return ProviderResolver(getattr(settings, "providers", None) or ProvidersConfig(),
                            getattr(settings, "dns", None), clock)


@job("rollups", every=timedelta(minutes=5), order=10)
def rollups_job(ctx: JobContext) -> int:
    """Count new events into the daily rollups."""
    from analysis.dmarc_intel import classifier_from

    with ctx.sessions() as session, session.begin():
        return update(session, now=ctx.clock(), providers=resolver_from(ctx.settings, ctx.clock),
                      classifier=classifier_from(ctx.settings))
