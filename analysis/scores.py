"""Reputation scores: 0-100 per entity per day, from components that explain themselves.

    score = 100 - sum of the points each component loses, then capped

Each rate component has a weight, a `good` line and a `bad` line. It loses a quarter of its
weight on the way from 0 to the good line, the other three quarters between the good and
the bad line, and its whole weight at or above the bad line:

    loss(r) = w * 0.25 * r / good                               if r <= good
            = w * (0.25 + 0.75 * (r - good) / (bad - good))    if good < r < bad
            = w                                                 if r >= bad

r is the rate the counts can carry (analysis/evidence.py): the rate itself when at least
`min_count` events make it, else the lower end of its Wilson interval — so 1 complaint in
200 sends is "too few to say", not a 0.5 % complaint rate.

Components: complaint rate (complaints / the sends to providers that send complaint reports,
`sent.fbl`, or the volume when there were none; the Gmail and Yahoo lines 0.1 % and 0.3 %),
hard-bounce rate, block rate (refusals of the sender — `reputation` and `policy`-category
bounces — / volume), DMARC unaligned
rate (1 - DKIM-aligned / DMARC messages), TLS failure rate, and blocklist listings (any
listing loses the whole weight). Volume is `sent`, or, when nothing is known of the sends,
the DMARC messages the receivers reported.

The grade follows the worst signal: points cannot average a catastrophe away. Caps:
- a rate component at or past its bad line caps the day at `critical` (score at most
  watch - 1), past its good line at `watch` (at most good - 1);
- a blocklist listing caps the day at `watch`;
- as Gmail needs 7 consecutive days under 0.3 % complaints to recover, the days after a day at
  or past the bad complaint line stay at most `watch` until 7 clean days have passed.
Each cap names its component. A component without data loses nothing; a day below
`min_volume` gets no score.

The providers' own figures (analysis/provider_view.py), where there are any for the entity and
day, join the explanation as the `providers` component and cap the grade without costing
points: Gmail's user-reported spam rate (Postmaster Tools) at or past the complaint lines caps
like our complaint rate would; an SNDS colour YELLOW caps at `watch`, RED or a block in the
SNDS IP status list at `critical`.

Where the entity sent tracked mail (docs/tracking.md), the explanation also carries its
engagement (analysis/engagement.py `trend`): the human open and click rates of the 7 days
ending on the day beside the 7 before, with the all-hits rates, as the `engagement` component.
It costs no points and caps nothing: an open rate says how mail is read, not how it is judged.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from functools import cache, partial
from typing import Any, Callable

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from analysis.config import ScoresConfig  # noqa: F401  (re-exported)
from analysis.evidence import carried, complaint_base, passes
from analysis.jobs import JobContext, job
from analysis.rollups import BLOCK_METRICS, mark_to_score
from store.rollups import Rollup, Score, ScorePending

METRICS = ("sent", "sent.fbl", "dmarc.messages", "complaints", "hard", *BLOCK_METRICS, "dmarc.aligned",
           "tls.ok", "tls.failed")


def loss(rate: float, good: float, bad: float, weight: float) -> float:
    """Points lost by a component at `rate` (see the module's docstring)."""
    if rate <= 0:
        return 0.0
    if rate <= good:
        return weight * 0.25 * rate / good
    if rate < bad:
        return weight * (0.25 + 0.75 * (rate - good) / (bad - good))
    return weight


def grade(score: float, config: ScoresConfig) -> str:
    if score >= config.good:
        return "good"
    if score >= config.watch:
        return "watch"
    return "critical"


def _volume(m: dict[str, int]) -> tuple[int, str]:
    if m.get("sent", 0) > 0:
        return m["sent"], "sent"
    return m.get("dmarc.messages", 0), "dmarc.messages"


RATE_COMPONENTS = ("complaints", "hard_bounces", "blocks", "dmarc_unaligned", "tls_failures")


def _rate_component(count: int, total: int, good: float, bad: float, weight: float,
                    config: ScoresConfig) -> dict[str, Any]:
    if total <= 0:
        return {"count": count, "total": total, "rate": None, "good": good, "bad": bad, "weight": weight,
                "lost": 0.0, "grade": None, "note": "no data"}
    rate = count / total
    judged = carried(count, total, config.min_count, config.wilson_z, config.min_events)
    out = {"count": count, "total": total, "rate": round(rate, 6), "judged_rate": round(judged, 6),
           "good": good, "bad": bad, "weight": weight, "lost": round(loss(judged, good, bad, weight), 4),
           "grade": "critical" if judged >= bad else "watch" if judged >= good else "good"}
    if rate >= good and judged < good:
        out["note"] = "too few to say"
    return out


def blocks(m: dict[str, int]) -> int:
    """Refusals of the sender: the reputation and policy categories (S3150, 5.7.515, Yahoo's
    TSS04 deferrals, Spamhaus listings, "not accepted for policy reasons" ...)."""
    return sum(m.get(metric, 0) for metric in BLOCK_METRICS)


def _complaint_base(m: dict[str, int], volume: int) -> int:
    """Sends to providers that report complaints when there were any (see analysis/evidence.py)."""
    if m.get("sent", 0) > 0:
        return int(complaint_base(m["sent"], m.get("sent.fbl", 0))[0])
    return volume


def _breach(m: dict[str, int] | None, config: ScoresConfig) -> bool:
    if not m:
        return False
    volume, _ = _volume(m)
    return volume >= config.min_volume and passes(m.get("complaints", 0), _complaint_base(m, volume),
                                                  config.complaint_bad, config.min_count, config.wilson_z,
                                                  config.min_events)


def compute(days: dict[date, dict[str, int]], day: date, config: ScoresConfig,
            listings: list[str] | None = None,
            providers: dict[str, Any] | None = None,
            engagement: dict[str, Any] | None = None) -> tuple[float, str, dict[str, Any]] | None:
    """The score, grade and components of `day`, from the daily metrics of one entity (`days`
    must hold the `recovery_days - 1` days before it when they have data); None below min_volume."""
    m = days.get(day, {})
    volume, basis = _volume(m)
    if volume < config.min_volume:
        return None
    c: dict[str, Any] = {"volume": {"messages": volume, "basis": basis}}
    c["complaints"] = _rate_component(m.get("complaints", 0), _complaint_base(m, volume), config.complaint_good,
                                      config.complaint_bad, config.weight_complaints, config)
    c["hard_bounces"] = _rate_component(m.get("hard", 0), volume, config.hard_bounce_good,
                                        config.hard_bounce_bad, config.weight_hard_bounces, config)
    c["blocks"] = _rate_component(blocks(m), volume, config.block_good,
                                  config.block_bad, config.weight_blocks, config)
    dmarc_total = m.get("dmarc.messages", 0)
    c["dmarc_unaligned"] = _rate_component(dmarc_total - m.get("dmarc.aligned", 0), dmarc_total,
                                           config.unaligned_good, config.unaligned_bad, config.weight_dmarc, config)
    tls_total = m.get("tls.ok", 0) + m.get("tls.failed", 0)
    c["tls_failures"] = _rate_component(m.get("tls.failed", 0), tls_total, config.tls_failure_good,
                                        config.tls_failure_bad, config.weight_tls, config)
    zones = sorted(listings or [])
    c["blocklists"] = {"zones": zones, "weight": config.weight_blocklists,
                       "lost": config.weight_blocklists if zones else 0.0}
    lost = sum(c[k]["lost"] for k in ("complaints", "hard_bounces", "blocks", "dmarc_unaligned", "tls_failures",
                                      "blocklists"))
    score = max(0.0, 100.0 - lost)
    caps = []
    for name in RATE_COMPONENTS:  # the worst signal caps the grade, whatever the rest says
        comp = c[name]
        if comp["grade"] == "critical":
            rule = "complaint_rate_at_or_above_bad" if name == "complaints" else f"{name}_at_or_above_bad"
            caps.append({"rule": rule, "component": name, "cap": config.watch - 1})
        elif comp["grade"] == "watch":
            caps.append({"rule": f"{name}_past_good", "component": name, "cap": config.good - 1})
    if zones:
        caps.append({"rule": "blocklist_listing", "component": "blocklists", "cap": config.good - 1})
    if providers:
        c["providers"] = dict(providers)
        caps += _provider_caps(providers, config)
    if engagement:
        c["engagement"] = dict(engagement)
    if not _breach(m, config):
        last = next((day - timedelta(days=i) for i in range(1, config.recovery_days)
                     if _breach(days.get(day - timedelta(days=i)), config)), None)
        if last is not None:
            clean = (day - last).days
            caps.append({"rule": "complaint_recovery", "component": "complaints", "cap": config.good - 1,
                         "last_breach": last.isoformat(), "clean_days": clean, "needed": config.recovery_days})
    caps.sort(key=lambda cap: cap["cap"])  # the lowest cap first: it is the one that decides
    for cap in caps:
        score = min(score, cap["cap"])
    c["caps"] = caps
    c["lost"] = round(lost, 4)
    score = round(score, 2)
    return score, grade(score, config), c


def _provider_caps(providers: dict[str, Any], config: ScoresConfig) -> list[dict[str, Any]]:
    """The caps the providers' own figures put on the grade (see the module's docstring)."""
    caps = []
    gmail = providers.get("gmail_spam_rate")
    if gmail is not None:
        if gmail["rate"] >= config.complaint_bad:
            caps.append({"rule": "gmail_spam_rate_at_or_above_bad", "component": "providers",
                         "cap": config.watch - 1, "rate": gmail["rate"], "domain": gmail["domain"]})
        elif gmail["rate"] >= config.complaint_good:
            caps.append({"rule": "gmail_spam_rate_past_good", "component": "providers", "cap": config.good - 1,
                         "rate": gmail["rate"], "domain": gmail["domain"]})
    colour = providers.get("snds_colour")
    if colour is not None and colour["colour"] in ("YELLOW", "RED"):
        caps.append({"rule": f"snds_{colour['colour'].lower()}", "component": "providers",
                     "cap": config.watch - 1 if colour["colour"] == "RED" else config.good - 1, "ip": colour["ip"]})
    if providers.get("snds_blocked"):
        caps.append({"rule": "snds_blocked", "component": "providers", "cap": config.watch - 1,
                     "ranges": providers["snds_blocked"]["ranges"]})
    return caps


def _provider_signals(session: Session) -> Callable[[date], Any]:
    """`analysis.provider_view.signals` per day, cached."""
    from analysis.provider_view import signals

    return cache(partial(signals, session))


def _engagement_trend(session: Session) -> Callable[[date, str, str], dict[str, Any] | None]:
    """`analysis.engagement.trend` of an entity-day; None at once when nothing is tracked."""
    from analysis.engagement import trend
    from store.engagement import TrackedCampaign

    if session.scalar(select(TrackedCampaign.id).limit(1)) is None:
        return lambda day, dimension, key: None
    return lambda day, dimension, key: trend(session, day, dimension, key)


def _blocklist_listings(session: Session) -> Callable[[date], dict[tuple[str, str], list[str]]]:
    """`analysis.blocklists.listed` per day, cached; no listings when that module is absent."""
    try:
        from analysis.blocklists import listed
    except ImportError:
        return lambda day: {}
    return cache(lambda day: listed(session, day) or {})


def _listings_for(all_listings: dict[tuple[str, str], list[str]], dimension: str, key: str) -> list[str]:
    if dimension == "all":
        return sorted({f"{k}@{z}" for (dim, k), zones in all_listings.items() for z in zones})
    return list(all_listings.get((dimension, key), []))


def score_pending(session: Session, *, now: datetime, config: ScoresConfig | None = None) -> int:
    """Recompute the scores of every entity-day whose rollups changed (and of the days after it
    that its complaint rate can cap); returns the score rows written or removed."""
    config = config or ScoresConfig()
    pending = session.execute(select(ScorePending.day, ScorePending.dimension, ScorePending.key)).all()
    if not pending:
        return 0
    from analysis.rollups import as_date

    listings = _blocklist_listings(session)
    provider_signals = _provider_signals(session)
    engagement = _engagement_trend(session)
    by_dimension: dict[str, dict[str, set[date]]] = defaultdict(lambda: defaultdict(set))
    for d, dimension, key in pending:
        by_dimension[dimension][key].add(as_date(d))
    span = max(config.recovery_days - 1, 0)
    written = 0
    for dimension, keyed in by_dimension.items():
        # one read per dimension (in chunks of keys), not one per entity
        first = min(min(days) for days in keyed.values())
        last = max(max(days) for days in keyed.values())
        metrics: dict[str, dict[date, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
        existing: dict[tuple[str, date], Score] = {}
        keys = list(keyed)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            for key, d, metric, value in session.execute(select(Rollup.key, Rollup.day, Rollup.metric, Rollup.value).where(
                    Rollup.dimension == dimension, Rollup.key.in_(chunk), Rollup.day >= first - timedelta(days=span),
                    Rollup.day <= last + timedelta(days=span), Rollup.metric.in_(METRICS))):
                metrics[key][as_date(d)][metric] = value
            for row in session.scalars(select(Score).where(
                    Score.dimension == dimension, Score.key.in_(chunk), Score.day >= first,
                    Score.day <= last + timedelta(days=span))):
                existing[(row.key, as_date(row.day))] = row
        for key, days in keyed.items():
            series = metrics.get(key, {})
            targets = set(days)
            for d in days:  # a complaint breach caps the days after it
                targets.update(d + timedelta(days=i) for i in range(1, span + 1) if d + timedelta(days=i) in series)
            for d in sorted(targets):
                result = compute(series, d, config, _listings_for(listings(d), dimension, key),
                                 provider_signals(d).for_entity(dimension, key), engagement(d, dimension, key))
                row = existing.get((key, d))
                if result is None:
                    if row is not None:
                        session.delete(row)
                        written += 1
                    continue
                score, g, components = result
                if row is None:
                    session.add(Score(day=d, dimension=dimension, key=key, score=score, grade=g,
                                      components=components, computed_at=now))
                elif (row.score, row.grade, row.components) != (score, g, components):
                    row.score, row.grade, row.components, row.computed_at = score, g, components, now
                else:
                    continue  # computed again to the same (today's listings are redone every run)
                written += 1
    done = [tuple(p) for p in pending]
    for i in range(0, len(done), 300):
        session.execute(delete(ScorePending).where(
            tuple_(ScorePending.day, ScorePending.dimension, ScorePending.key).in_(done[i:i + 300])))
    session.flush()
    return written


def rescore_since(session: Session, since: date) -> int:
    """Mark every entity-day from `since` on for its score to be computed again."""
    return mark_to_score(session, (tuple(row) for row in session.execute(
        select(Rollup.day, Rollup.dimension, Rollup.key).where(Rollup.day >= since).distinct())))


def mark_listed_today(session: Session, today: date) -> None:
    """Blocklist results are not rollups: mark today's listed entities so their score is redone."""
    listed = _blocklist_listings(session)(today)
    if not listed:
        return
    keys = {(dim, key) for dim, key in listed}
    present = session.execute(select(Rollup.dimension, Rollup.key).where(Rollup.day == today).distinct()).all()
    mark_to_score(session, [(today, dim, key) for dim, key in present if (dim, key) in keys or dim == "all"])


def scores_for(session: Session, day: date, dimension: str | None = None) -> list[Score]:
    query = select(Score).where(Score.day == day)
    if dimension:
        query = query.where(Score.dimension == dimension)
    return list(session.scalars(query.order_by(Score.dimension, Score.score, Score.key)))


def config_from(settings: Any) -> ScoresConfig:
    return getattr(settings, "scores", None) or ScoresConfig()


@job("scores", every=timedelta(minutes=15), order=20)
def scores_job(ctx: JobContext) -> int:
    """Recompute the reputation scores of the entity-days whose rollups changed."""
    now = ctx.clock()
    with ctx.sessions() as session, session.begin():
        if ctx.since is not None:
            rescore_since(session, ctx.since)
        mark_listed_today(session, now.date())
        return score_pending(session, now=now, config=config_from(ctx.settings))

