"""The providers' own figures: read (a file, or the provider's API) and stored.

`import_*` store what a file holds; `fetch_*` ask Google Postmaster Tools (API v2, with a
service account's key: google-auth) and Microsoft SNDS (the automated-access key) and store
the answers the same way; the `provider_feeds` job does both once a day for what [postmaster]
and [snds] configure. A figure read again replaces the stored one (store/provider_stats.py).

What is stored marks its days for the alert rules to judge again and its entities for their
scores to be redone, as new rollups do.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from analysis.config import PostmasterConfig, SndsConfig
from analysis.jobs import JobContext, job
from analysis.rollups import mark_days_to_judge
from analysis.rollups import mark_to_score
from ingest.feeds import postmaster, snds
from store.provider_stats import (put_postmaster_compliance, put_postmaster_stats, put_snds_activity,
                                  put_snds_ip_status)

log = logging.getLogger(__name__)

POSTMASTER, SNDS = "postmaster", "snds"


class FeedError(RuntimeError):
    """A fetch that could not be made (no key, refused credentials, the server unreachable):
    a sentence that says what to do."""


@dataclass
class Stored:
    """What one import or fetch stored, and what it could not read (one line per record)."""

    feed: str
    stats: int = 0
    compliance: int = 0
    activity: int = 0
    status: int = 0
    days: set[date] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.stats + self.compliance + self.activity + self.status

    def add(self, other: Stored) -> None:
        """Count what `other` stored (another file or answer of the same import or fetch) in this one."""
        self.stats += other.stats
        self.compliance += other.compliance
        self.activity += other.activity
        self.status += other.status
        self.days |= other.days
        self.errors += other.errors

    def as_dict(self) -> dict[str, Any]:
        return {"feed": self.feed, "stats": self.stats, "compliance": self.compliance, "activity": self.activity,
                "ip_status": self.status, "days": sorted(d.isoformat() for d in self.days),
                "errors": list(self.errors)}


def _mark(session: Session, entities: set[tuple[date, str, str]], now: datetime) -> None:
    """Judge these days again and redo the scores of these entity-days (and of all mail)."""
    mark_days_to_judge(session, {d for d, _dim, _key in entities}, now)
    mark_to_score(session, entities | {(d, "all", "") for d, _dim, _key in entities})


def store_postmaster(session: Session, read: postmaster.PostmasterRead, *, now: datetime, day: date,
                     source: str = "import") -> Stored:
    """Store what a Postmaster Tools response held; its compliance states as read on `day`."""
    out = Stored(POSTMASTER, errors=list(read.errors))
    latest: dict[tuple[str, date, str], float] = {}
    for s in read.stats:  # the same figure twice in one read: the last one counts, once
        latest[(s.domain, s.day, s.metric)] = s.value
    out.stats = put_postmaster_stats(session, [
        {"domain": d, "day": when, "metric": m, "value": v, "source": source, "read_at": now}
        for (d, when, m), v in latest.items()])
    rows = {(c.domain, c.requirement): c for c in read.compliance}
    out.compliance = put_postmaster_compliance(session, [
        {"domain": c.domain, "requirement": c.requirement, "day": day, "state": c.state, "reason": c.reason,
         "subdomain": c.subdomain, "source": source, "read_at": now} for c in rows.values()])
    entities = {(when, "sending_domain", d) for d, when, _m in latest} | {(day, "sending_domain", d)
                                                                        for d, _r in rows}
    out.days = {d for d, _dim, _key in entities}
    _mark(session, entities, now)
    return out


def store_snds(session: Session, read: snds.SndsRead, *, now: datetime, day: date, source: str = "import") -> Stored:
    """Store what an SNDS export held; an IP status list as read on `day`."""
    out = Stored(SNDS, errors=list(read.errors))
    rows = {}
    for a in read.activity:
        rows[(a.ip, a.activity_start)] = {**a.__dict__, "day": a.activity_start.date(), "source": source,
                                          "read_at": now}
    out.activity = put_snds_activity(session, list(rows.values()))
    entities = {(r["day"], "sending_ip", r["ip"]) for r in rows.values()}
    if read.kind == snds.STATUS:
        ranges = {(s.first_ip, s.last_ip): s for s in read.status}
        out.status = put_snds_ip_status(session, [
            {"first_ip": s.first_ip, "last_ip": s.last_ip, "day": day, "blocked": s.blocked, "details": s.details,
             "source": source, "read_at": now} for s in ranges.values()], {day})
        entities |= {(day, "sending_ip", s.first_ip) for s in ranges.values() if s.first_ip == s.last_ip}
        out.days.add(day)
    out.days |= {d for d, _dim, _key in entities}
    _mark(session, entities, now)
    return out


def _read_file(path: str) -> str:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        return fh.read()


def import_postmaster(session: Session, path: str, *, now: datetime, day: date | None = None) -> Stored:
    """A file of Postmaster Tools API responses (docs/providers.md), stored."""
    read = postmaster.read_text(_read_file(path), where=path)
    return store_postmaster(session, read, now=now, day=day or now.date())


def import_snds(session: Session, path: str, *, now: datetime, day: date | None = None,
                kind: str | None = None) -> Stored:
    """An SNDS data export or IP status list (CSV; which one is told by its columns), stored."""
    read = snds.read_text(_read_file(path), where=path, kind=kind)
    return store_snds(session, read, now=now, day=day or now.date())


# ---------------------------------------------------------------- fetching

def _date(d: date) -> dict[str, int]:
    return {"year": d.year, "month": d.month, "day": d.day}


def postmaster_session(cfg: PostmasterConfig):
    """An HTTP session that sends the service account's bearer token (google-auth)."""
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2 import service_account

    if not cfg.service_account_file:
        raise FeedError("postmaster.service_account_file is not set: name the JSON key file of a service account "
                        "that has access to your domains in Postmaster Tools")
    try:
        with open(cfg.service_account_file, encoding="utf-8") as fh:
            info = json.load(fh)
    except OSError as exc:
        raise FeedError(f"cannot read postmaster.service_account_file {cfg.service_account_file}: "
                        f"{exc.strerror}") from None
    except json.JSONDecodeError:
        raise FeedError(f"postmaster.service_account_file {cfg.service_account_file} is not a JSON key file "
                        "(download the key of the service account as JSON)") from None
    if cfg.token_url:
        info["token_uri"] = cfg.token_url
    try:
        credentials = service_account.Credentials.from_service_account_info(info, scopes=[cfg.scope])
    except (KeyError, ValueError) as exc:
        raise FeedError(f"postmaster.service_account_file {cfg.service_account_file} is not a service account "
                        f"key: {exc}") from None
    return AuthorizedSession(credentials)


def _answer(response, what: str) -> Any:
    if response.status_code != 200:
        try:
            message = response.json().get("error", {}).get("message")
        except ValueError:
            message = None
        raise FeedError(f"{what}: HTTP {response.status_code}{': ' + message if message else ''}")
    try:
        return response.json()
    except ValueError:
        raise FeedError(f"{what}: the answer is not JSON") from None


def fetch_postmaster(cfg: PostmasterConfig, today: date, http=None) -> postmaster.PostmasterRead:
    """Ask Postmaster Tools for the last `cfg.days` days of each configured domain, and for its
    compliance status. A domain that fails is an error line; the others are still read."""
    from google.auth.exceptions import GoogleAuthError
    from requests import RequestException

    http = http or postmaster_session(cfg)
    out = postmaster.PostmasterRead()
    api = cfg.api_url.rstrip("/")
    start, end = today - timedelta(days=cfg.days), today - timedelta(days=1)
    for domain in cfg.domains:
        try:
            body: dict[str, Any] = {"metricDefinitions": postmaster.metric_definitions(),
                                    "timeQuery": {"dateRanges": [{"start": _date(start), "end": _date(end)}]},
                                    "aggregationGranularity": "DAILY", "pageSize": 200}
            for _page in range(100):
                what = f"Postmaster Tools domainStats:query for {domain}"
                doc = _answer(http.post(f"{api}/domains/{domain}/domainStats:query", json=body,
                                        timeout=cfg.timeout), what)
                postmaster.read(doc, what, out)
                token = doc.get("nextPageToken") if isinstance(doc, dict) else None
                if not token:
                    break
                body["pageToken"] = token
            what = f"Postmaster Tools complianceStatus for {domain}"
            postmaster.read(_answer(http.get(f"{api}/domains/{domain}/complianceStatus", timeout=cfg.timeout),
                                    what), what, out)
        except GoogleAuthError as exc:
            raise FeedError(f"Google refused the service account's credentials ({exc}); check "
                            "postmaster.service_account_file and that the account was added to the domains "
                            "in Postmaster Tools") from None
        except RequestException as exc:
            out.errors.append(f"Postmaster Tools for {domain}: {exc}")
        except FeedError as exc:
            out.errors.append(str(exc))
    return out


def fetch_snds(cfg: SndsConfig) -> list[snds.SndsRead]:
    """The data export and the IP status list, by the automated-access key."""
    import requests

    if not cfg.key:
        raise FeedError("snds.key is not set: turn on automated access in SNDS and set its key")
    reads = []
    base = cfg.base_url.rstrip("/")
    for page, kind in (("data.aspx", snds.DATA), ("ipStatus.aspx", snds.STATUS)):
        try:
            response = requests.get(f"{base}/{page}", params={"key": cfg.key}, timeout=cfg.timeout)
        except requests.RequestException as exc:
            raise FeedError(f"cannot reach SNDS at {base}: {exc}") from None
        if response.status_code != 200:
            raise FeedError(f"SNDS {page}: HTTP {response.status_code} (is snds.key the automated-access key?)")
        reads.append(snds.read_text(response.text, where=f"SNDS {page}", kind=kind))
    return reads


def store_fetched(sessions, feed: str, reads: list[Any], *, now: datetime) -> Stored:
    """Store what `fetch_postmaster` or `fetch_snds` answered, each answer in a transaction of its own."""
    store = store_postmaster if feed == POSTMASTER else store_snds
    total = Stored(feed)
    for read in reads:
        with sessions.begin() as session:
            total.add(store(session, read, now=now, day=now.date(), source="fetch"))
    return total


# Daily, and not part of `postwatch analyze`: it asks the providers over the network.
@job("provider_feeds", cron="20 6 * * *", order=5, in_analyze=False)
def provider_feeds_job(ctx: JobContext) -> int:
    """Fetch Google Postmaster Tools' and Microsoft SNDS's figures, for what [postmaster] and
    [snds] configure, and store them."""
    now = ctx.clock()
    settings = ctx.settings
    pm: PostmasterConfig = getattr(settings, "postmaster", None) or PostmasterConfig()
    sn: SndsConfig = getattr(settings, "snds", None) or SndsConfig()
    rows, problems = 0, []
    if pm.service_account_file and pm.domains:
        stored = store_fetched(ctx.sessions, POSTMASTER, [fetch_postmaster(pm, now.date())], now=now)
        rows += stored.rows
        problems += stored.errors
    if sn.key:
        stored = store_fetched(ctx.sessions, SNDS, fetch_snds(sn), now=now)
        rows += stored.rows
        problems += stored.errors
    for line in problems:
        log.warning("provider feeds: %s", line)
    if problems:
        raise FeedError(f"{len(problems)} record(s) or domain(s) could not be read ({rows} row(s) stored); "
                        f"the first: {problems[0]}")
    return rows


