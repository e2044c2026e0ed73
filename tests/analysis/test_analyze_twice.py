"""`postwatch analyze` twice in a row with nothing new: the second run adds no row but the
record of its own run of each job, and every job says 0 rows; the day's blocklist rows and
the posture results are the same rows, only their check times move."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import inspect, select, text

from analysis.config import BlocklistsConfig, DomainsConfig, ProvidersConfig
from analysis.dns import DnsConfig
from analysis.jobs import JobContext
from analysis.providers import ProviderResolver
from analysis.scheduler import run_all
from analysis.volume import import_csv
from postwatch.config import Config
from store.checks import BlocklistCheck, PostureCheck

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


def _counts(store) -> dict[str, int]:
    with store() as s:
        return {t: s.execute(text(f'SELECT count(*) FROM "{t}"')).scalar()
                for t in inspect(s.connection()).get_table_names()}


def _checks(store) -> list[tuple]:
    """The blocklist and posture results, but for the time of the check (and the count of checks)."""
    with store() as s:
        blocklists = [(r.day, r.dimension, r.key, r.zone, r.status, r.listed, r.answer, r.error, r.listed_at)
                      for r in s.scalars(select(BlocklistCheck).order_by(BlocklistCheck.id))]
        posture = [(r.subject, r.check, r.status, r.fingerprint, r.first_seen_at)
                   for r in s.scalars(select(PostureCheck).order_by(PostureCheck.id))]
    return blocklists + posture


def test_analyze_twice_writes_no_new_rows(store, dns_server):
    dns_server.add("2.0.0.127.zen.test", "A", "127.0.0.2")  # the zones answer for their test entries
    dns_server.add("test.dbl.test", "A", "127.0.1.2")
    dns_server.add("20.100.51.198.zen.test", "A", "127.0.0.2")  # an IP only the send counts name, listed
    cfg = Config(dns=DnsConfig(nameservers=(dns_server.address,), timeout=2.0),
                 domains=DomainsConfig(sending_ips=("192.0.2.10",), sending_domains=("news.example.com",)),
                 blocklists=BlocklistsConfig(ip_zones=("zen.test",), domain_zones=("dbl.test",)),
                 providers=ProvidersConfig(mx_lookups=False))
    with store.begin() as s:  # sending IPs and domains the rollups find, not [domains]
        imported = import_csv(s, "day,sending_domain,sending_ip,provider,campaign,sent\n"
                                 f"{NOW.date()},mail.example.net,198.51.100.20,google,receipts,500\n"
                                 f"{NOW.date()},news.example.com,192.0.2.10,microsoft,spring,700\n",
                              providers=ProviderResolver(), now=NOW, source="test")
        assert not imported.errors
    clock = [NOW]
    ctx = JobContext(sessions=store, settings=cfg, clock=lambda: clock[0])

    first = run_all(ctx)
    assert [r.error for r in first if r.error] == []
    with store() as s:  # the first run already checked what the rollups found
        checked = {(r.key, r.zone): r.status for r in s.scalars(select(BlocklistCheck))}
    assert checked[("198.51.100.20", "zen.test")] == "listed" and ("mail.example.net", "dbl.test") in checked
    counts, checks = _counts(store), _checks(store)

    clock[0] = NOW + timedelta(minutes=5)
    second = run_all(ctx)
    assert {r.job: r.rows for r in second if r.rows} == {}  # every job: 0 rows
    assert _counts(store) == {**counts, "job_runs": counts["job_runs"] + len(second)}  # only its run records
    assert _checks(store) == checks
    with store() as s:
        rows = s.scalars(select(BlocklistCheck)).all()
    assert {r.checks for r in rows} == {2} and {r.checked_at.replace(tzinfo=timezone.utc) for r in rows} == {clock[0]}
