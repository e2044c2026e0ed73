"""Authentication posture checks against records in the loopback DNS server."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from analysis import posture
from analysis.dns import DnsConfig, make_resolver
from analysis.jobs import JobContext
from analysis.config import DomainsConfig
from analysis.spf import check_spf
from postwatch.config import Config
from store.alerts import Alert
from store.checks import POSTURE_STATUSES, PostureCheck
from store.models import DmarcAggregateReport, DmarcRecord, InboundMessage

NOW = datetime(2026, 6, 15, 3, 0, tzinfo=timezone.utc)
D = "send.example"


@pytest.fixture
def resolver(dns_server):
    return make_resolver(DnsConfig(nameservers=(dns_server.address,), timeout=2.0))


def _txt(dns_server, name, value):
    chunks = [value[i:i + 200] for i in range(0, len(value), 200)]
    dns_server.add(name, "TXT", " ".join(f'"{c}"' for c in chunks))


def _rsa_key(bits: int) -> str:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    return base64.b64encode(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).decode()


# ---------------------------------------------------------------- SPF

def test_spf_counts_lookups_through_includes_and_checks_the_sending_ips(dns_server, resolver):
    _txt(dns_server, D, "v=spf1 ip4:192.0.2.0/28 include:_spf.esp.example a mx -all")
    _txt(dns_server, D, "google-site-verification=abc")
    _txt(dns_server, "_spf.esp.example", "v=spf1 include:_a.esp.example include:_b.esp.example ~all")
    _txt(dns_server, "_a.esp.example", "v=spf1 ip4:198.51.100.0/24 ~all")
    _txt(dns_server, "_b.esp.example", "v=spf1 ip6:2001:db8::/32 exists:%{i}.x.esp.example ~all")
    dns_server.add(D, "A", "192.0.2.100")
    dns_server.add(D, "MX", "10 mx.send.example.")
    dns_server.add("mx.send.example", "A", "192.0.2.200")
    r = check_spf(resolver, D, ("192.0.2.5", "198.51.100.9", "203.0.113.1"))
    assert r.lookups == 6  # include x3, a, mx, exists
    assert r.includes == ["_a.esp.example", "_b.esp.example", "_spf.esp.example"]
    assert r.all_qualifier == "-" and r.errors == []
    assert r.warnings == ["sending IP 203.0.113.1 is not authorised by the record (ip4/ip6/a/mx, includes "
                          "followed; exists and ptr are not evaluated)"]
    assert {"192.0.2.0/28", "198.51.100.0/24", "2001:db8::/32", "192.0.2.100/32", "192.0.2.200/32"} <= set(r.networks)
    assert r.status == "warning"


def test_spf_over_ten_lookups_loops_void_lookups_and_syntax(dns_server, resolver):
    names = [f"i{n}.esp.example" for n in range(11)]
    _txt(dns_server, "many.example", "v=spf1 " + " ".join(f"include:{n}" for n in names) + " -all")
    for n in names:
        _txt(dns_server, n, "v=spf1 ip4:192.0.2.1 -all")
    r = check_spf(resolver, "many.example")
    assert r.lookups == 11 and r.status == "error" and "more than 10" in r.errors[0]

    _txt(dns_server, "loop.example", "v=spf1 include:loop2.example -all")
    _txt(dns_server, "loop2.example", "v=spf1 redirect=loop.example")
    assert any("loop" in e for e in check_spf(resolver, "loop.example").errors)

    _txt(dns_server, "void.example", "v=spf1 a:nx1.example a:nx2.example mx:nx3.example include:nx4.example -all")
    r = check_spf(resolver, "void.example")
    assert r.void_lookups == 4 and any("returned nothing" in e for e in r.errors)
    assert any("nx4.example has no SPF record" in e for e in r.errors)

    _txt(dns_server, "bad.example", "v=spf1 ip4:300.1.1.1 foo:bar +all")
    errors = check_spf(resolver, "bad.example").errors
    assert any("bad address" in e for e in errors) and any("unknown mechanism" in e for e in errors)
    assert any("+all" in e for e in errors)

    _txt(dns_server, "two.example", "v=spf1 -all")
    _txt(dns_server, "two.example", "v=spf1 ip4:192.0.2.1 -all")
    assert any("2 SPF records" in e for e in check_spf(resolver, "two.example").errors)
    assert check_spf(resolver, "none.example").status == "missing"


# ---------------------------------------------------------------- DMARC, DKIM, MTA-STS, TLS-RPT, PTR

def test_dmarc_record(dns_server, resolver):
    _txt(dns_server, f"_dmarc.{D}", "v=DMARC1; p=quarantine; sp=reject; pct=50; adkim=s; "
                                    "rua=mailto:dmarc@send.example,mailto:x@reports.example; ruf=mailto:f@send.example")
    r = posture.dmarc(resolver, D)
    assert (r.detail["p"], r.detail["sp"], r.detail["pct"], r.detail["adkim"], r.detail["aspf"]) == (
        "quarantine", "reject", "50", "s", "r")
    assert r.detail["rua"] == ["mailto:dmarc@send.example", "mailto:x@reports.example"]
    assert r.status == "warning"
    assert any("pct=50" in w for w in r.detail["warnings"])
    assert any("reports.example has not authorised" in w for w in r.detail["warnings"])
    _txt(dns_server, f"{D}._report._dmarc.reports.example", "v=DMARC1")
    assert not any("authorised" in w for w in posture.dmarc(resolver, D).detail["warnings"])

    _txt(dns_server, "_dmarc.parent.example", "v=DMARC1; p=reject; rua=mailto:d@parent.example")
    sub = posture.dmarc(resolver, "news.parent.example")
    assert sub.status == "ok" and sub.detail["inherited_from"] == "parent.example"
    _txt(dns_server, "_dmarc.weak.example", "v=DMARC1; p=none")
    weak = posture.dmarc(resolver, "weak.example")
    assert weak.status == "warning" and "p=none" in weak.summary
    _txt(dns_server, "_dmarc.broken.example", "v=DMARC1; p=maybe")
    assert posture.dmarc(resolver, "broken.example").status == "error"
    assert posture.dmarc(resolver, "nothing.example").status == "missing"


def test_dkim_keys(dns_server, resolver):
    _txt(dns_server, f"s2048._domainkey.{D}", f"v=DKIM1; k=rsa; p={_rsa_key(2048)}")
    _txt(dns_server, f"s1024._domainkey.{D}", f"v=DKIM1; k=rsa; p={_rsa_key(1024)}")
    _txt(dns_server, f"gone._domainkey.{D}", "v=DKIM1; p=")
    _txt(dns_server, f"junk._domainkey.{D}", "v=DKIM1; p=bm90IGEga2V5")
    good = posture.dkim(resolver, D, "s2048")
    assert (good.status, good.detail["bits"], good.check) == ("ok", 2048, "dkim:s2048")
    assert posture.dkim(resolver, D, "s1024").status == "warning"
    assert "revoked" in posture.dkim(resolver, D, "gone").summary
    assert posture.dkim(resolver, D, "junk").status == "error"
    assert posture.dkim(resolver, D, "absent").status == "missing"


def test_mta_sts_tls_rpt_and_ptr(dns_server, resolver):
    _txt(dns_server, f"_mta-sts.{D}", "v=STSv1; id=20260601T000000")
    _txt(dns_server, f"_smtp._tls.{D}", "v=TLSRPTv1; rua=mailto:tls@send.example")
    assert posture.mta_sts(resolver, D).status == "ok"
    assert posture.tls_rpt(resolver, D).detail["rua"] == ["mailto:tls@send.example"]
    assert posture.mta_sts(resolver, "other.example").status == "missing"

    dns_server.add("10.2.0.192.in-addr.arpa", "PTR", "mail.send.example.")
    dns_server.add("mail.send.example", "A", "192.0.2.10")
    dns_server.add("11.2.0.192.in-addr.arpa", "PTR", "host.isp.example.")
    dns_server.add("host.isp.example", "A", "198.51.100.1")
    assert posture.ptr(resolver, "192.0.2.10").summary == "PTR ok: mail.send.example, forward-confirmed"
    assert "not forward-confirmed" in posture.ptr(resolver, "192.0.2.11").summary
    assert posture.ptr(resolver, "192.0.2.12").status == "missing"


# ---------------------------------------------------------------- the job: stored, changes alerted

def _published(dns_server, policy="reject"):
    dns_server.clear()
    _txt(dns_server, D, "v=spf1 ip4:192.0.2.10 -all")
    _txt(dns_server, f"_dmarc.{D}", f"v=DMARC1; p={policy}; rua=mailto:dmarc@send.example")
    _txt(dns_server, f"sel1._domainkey.{D}", f"v=DKIM1; p={KEY}")
    _txt(dns_server, f"seen._domainkey.{D}", f"v=DKIM1; p={KEY}")
    _txt(dns_server, f"_smtp._tls.{D}", "v=TLSRPTv1; rua=mailto:tls@send.example")
    dns_server.add("10.2.0.192.in-addr.arpa", "PTR", "mail.send.example.")
    dns_server.add("mail.send.example", "A", "192.0.2.10")


KEY = _rsa_key(2048)


def _ctx(store, dns_server, now):
    cfg = Config(dns=DnsConfig(nameservers=(dns_server.address,), timeout=2.0),
                 domains=DomainsConfig(sending_domains=(D,), sending_ips=("192.0.2.10",), dkim_selectors=("sel1",)))
    return JobContext(sessions=store, settings=cfg, clock=lambda: now)


def _seen_selector(store):
    with store.begin() as s:
        msg = InboundMessage(sha256="1" * 64, received_at=NOW, source="file", size=1, kind="dmarc_aggregate",
                             status="parsed")
        s.add(msg)
        s.flush()
        rep = DmarcAggregateReport(message_id=msg.id, org_name="google.com", report_id="r1", domain=D,
                                   begin=NOW - timedelta(days=2), end=NOW - timedelta(days=1), record_count=1,
                                   message_count=3)
        rep.records.append(DmarcRecord(interval_begin=NOW - timedelta(days=2), interval_end=NOW - timedelta(days=1),
                                       source_ip="192.0.2.10", count=3, dkim_aligned=True, spf_aligned=True,
                                       dmarc_pass=True, header_from=D,
                                       dkim_results=[{"domain": D, "selector": "seen", "result": "pass"},
                                                     {"domain": "esp.example", "selector": "esp1", "result": "pass"}]))
        s.add(rep)


def test_the_job_stores_results_and_alerts_on_changes(store, dns_server):
    _published(dns_server)
    _seen_selector(store)
    written = posture.posture_job(_ctx(store, dns_server, NOW))
    with store() as s:
        rows = {(r.subject, r.check): r.status for r in posture.current(s)}
        assert s.scalars(select(Alert)).all() == []  # nothing critical at first sight
    assert rows == {(D, "spf"): "ok", (D, "dmarc"): "ok", (D, "dkim:sel1"): "ok", (D, "dkim:seen"): "ok",
                    (D, "mta_sts"): "missing", (D, "tls_rpt"): "ok", ("192.0.2.10", "ptr"): "ok"}
    assert written == 7
    assert posture.posture_job(_ctx(store, dns_server, NOW + timedelta(days=1))) == 0  # unchanged

    _published(dns_server, policy="none")  # someone weakened the policy
    dns_server.zone.records.pop(("seen._domainkey.send.example", "TXT"))  # and dropped a key in use
    assert posture.posture_job(_ctx(store, dns_server, NOW + timedelta(days=2))) == 2
    with store() as s:
        alerts = {(a.rule, a.key): a for a in s.scalars(select(Alert).where(Alert.status == "open"))}
        assert s.scalar(select(PostureCheck.id).where(PostureCheck.check == "dmarc")
                        .order_by(PostureCheck.id.desc()).limit(1)) is not None
        history = s.scalars(select(PostureCheck.status).where(PostureCheck.check == "dmarc")
                            .order_by(PostureCheck.id)).all()
    assert history == ["ok", "warning"]
    assert set(alerts) == {("posture.dmarc", D), ("posture.dkim:seen", D)}
    assert alerts[("posture.dmarc", D)].severity == "warning"
    assert "was ok" in alerts[("posture.dmarc", D)].message
    assert alerts[("posture.dkim:seen", D)].severity == "critical"

    _published(dns_server)  # put back: a change again, told as info, closed after a day unchanged
    posture.posture_job(_ctx(store, dns_server, NOW + timedelta(days=3)))
    posture.posture_job(_ctx(store, dns_server, NOW + timedelta(days=4, hours=1)))
    with store() as s:
        assert s.scalars(select(Alert).where(Alert.status == "open")).all() == []


def test_a_silent_dns_is_an_unknown_result_not_a_crash_nor_an_alert(store):
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        cfg = Config(dns=DnsConfig(nameservers=(f"127.0.0.1:{s.getsockname()[1]}",), timeout=0.2),
                     domains=DomainsConfig(sending_domains=(D,)))
        posture.posture_job(JobContext(sessions=store, settings=cfg, clock=lambda: NOW))
    finally:
        s.close()
    with store() as session:
        rows = posture.current(session)
        assert session.scalars(select(Alert)).all() == []
    assert {r.check: r.status for r in rows}["spf"] == "unknown"
    assert rows[0].summary == f"dmarc unknown: no answer for _dmarc.{D} TXT (time-out)"


def test_a_time_out_or_servfail_is_unknown_and_raises_no_alert(store, dns_server):
    _published(dns_server)
    dns_server.zone.records.pop((D, "TXT"))
    _txt(dns_server, D, "v=spf1 ip4:192.0.2.10 include:_spf.esp.example -all")
    dns_server.fail("_spf.esp.example", "timeout")  # an include that times out: SPF cannot be judged
    dns_server.fail(f"_dmarc.{D}", "SERVFAIL")
    dns_server.fail("10.2.0.192.in-addr.arpa", "SERVFAIL")
    cfg = Config(dns=DnsConfig(nameservers=(dns_server.address,), timeout=0.4),
                 domains=DomainsConfig(sending_domains=(D,), sending_ips=("192.0.2.10",), dkim_selectors=("sel1",)))
    posture.posture_job(JobContext(sessions=store, settings=cfg, clock=lambda: NOW))
    with store() as s:
        rows = {r.check: r for r in posture.current(s)}
        assert s.scalars(select(Alert)).all() == []  # unknown is no critical alert
    assert {c: r.status for c, r in rows.items()} == {"spf": "unknown", "dmarc": "unknown", "ptr": "unknown",
                                                      "dkim:sel1": "ok", "mta_sts": "missing", "tls_rpt": "ok"}
    assert rows["spf"].summary == "spf unknown: no answer for _spf.esp.example TXT (time-out)"
    assert rows["dmarc"].summary == f"dmarc unknown: no answer for _dmarc.{D} TXT (SERVFAIL from the DNS server)"
    assert "unknown" in POSTURE_STATUSES


def test_unknown_between_two_equal_results_is_no_change(store, dns_server):
    _published(dns_server)
    ctx = _ctx(store, dns_server, NOW)
    posture.posture_job(ctx)
    dns_server.fail(f"_dmarc.{D}", "SERVFAIL")  # a bad day at the DNS
    assert posture.posture_job(_ctx(store, dns_server, NOW + timedelta(days=1))) == 1
    dns_server.zone.failures.clear()  # back, as it was
    assert posture.posture_job(_ctx(store, dns_server, NOW + timedelta(days=2))) == 1
    with store() as s:
        history = s.scalars(select(PostureCheck.status).where(PostureCheck.check == "dmarc")
                            .order_by(PostureCheck.id)).all()
        assert s.scalars(select(Alert)).all() == []  # neither the failure nor the return is news
    assert history == ["ok", "unknown", "ok"]

    dns_server.fail(f"_dmarc.{D}", "SERVFAIL")
    posture.posture_job(_ctx(store, dns_server, NOW + timedelta(days=3)))
    _published(dns_server, policy="none")  # and it came back weaker: a change from the last known result
    posture.posture_job(_ctx(store, dns_server, NOW + timedelta(days=4)))
    with store() as s:
        alerts = s.scalars(select(Alert)).all()
    assert [(a.rule, a.severity) for a in alerts] == [("posture.dmarc", "warning")]
    assert "(was ok" in alerts[0].message


def test_nxdomain_stays_missing(store, dns_server):
    cfg = Config(dns=DnsConfig(nameservers=(dns_server.address,), timeout=2.0),
                 domains=DomainsConfig(sending_domains=(D,)))
    posture.posture_job(JobContext(sessions=store, settings=cfg, clock=lambda: NOW))
    with store() as s:
        assert {r.check: r.status for r in posture.current(s)} == {
            "spf": "missing", "dmarc": "missing", "mta_sts": "missing", "tls_rpt": "missing"}
