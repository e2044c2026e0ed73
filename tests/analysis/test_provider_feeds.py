"""The providers' own figures in a real store: imported (idempotent, unreadable records
reported), fetched from a local HTTP server that plays Google's token endpoint, the Postmaster
Tools API v2 and SNDS (and checks the credentials sent), judged by the alert rules at their
lines, shown beside postwatch's own rates, and named in the score's explanation."""
from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import func, select

from analysis.alerts import apply, evaluate
from analysis.config import AlertsConfig, PostmasterConfig, ScoresConfig, SndsConfig
from analysis.jobs import JobContext
from analysis.provider_feeds import (FeedError, fetch_postmaster, fetch_snds, import_postmaster, import_snds,
                                     provider_feeds_job, store_postmaster, store_snds)
from analysis.provider_view import compliance_rows, snds_rows, spam_rates
from analysis.scores import score_pending
from store.alerts import Alert
from store.checks import PostureCheck
from store.provider_stats import PostmasterCompliance, PostmasterStat, SndsActivity, SndsIpStatus
from store.rollups import Rollup, Score, ScorePending

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "providers"
NOW = datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc)
D1, D2 = date(2026, 12, 1), date(2026, 12, 2)
CFG = AlertsConfig()
SCOPE = "https://www.googleapis.com/auth/postmaster.readonly"
SNDS_KEY = "a1b2c3d4-snds-key"


def count(store, model):
    with store() as s:
        return s.scalar(select(func.count()).select_from(model))


def judge(store, day, now=NOW):
    with store.begin() as s:
        apply(s, evaluate(s, CFG, day), now, CFG)
    with store() as s:
        return {(a.rule, a.key): a for a in s.scalars(select(Alert).where(Alert.status == "open"))}


# ---------------------------------------------------------------- import

def test_postmaster_import_is_idempotent_and_reads_the_values(store):
    for _ in range(2):
        with store.begin() as s:
            stored = import_postmaster(s, str(EXAMPLES / "domain-stats.json"), now=NOW)
            import_postmaster(s, str(EXAMPLES / "compliance-status.json"), now=NOW, day=D2)
        assert stored.stats == 9 and stored.errors == []
    assert count(store, PostmasterStat) == 9
    assert count(store, PostmasterCompliance) == 11
    with store() as s:
        spam = dict(s.execute(select(PostmasterStat.day, PostmasterStat.value)
                              .where(PostmasterStat.metric == "spam_rate")).all())
        assert spam == {D1: 0.0008, D2: 0.0034}
    # a corrected figure for a day replaces the stored one
    doc = {"domainStats": [{"name": "domains/example.com/domainStats/x", "metric": "spam_rate",
                            "date": {"year": 2026, "month": 12, "day": 2}, "value": {"doubleValue": 0.0021}}]}
    from ingest.feeds.postmaster import read
    with store.begin() as s:
        store_postmaster(s, read(doc), now=NOW, day=D2)
    with store() as s:
        assert s.scalar(select(PostmasterStat.value).where(PostmasterStat.day == D2,
                                                           PostmasterStat.metric == "spam_rate")) == 0.0021
    assert count(store, PostmasterStat) == 9


def test_snds_import_is_idempotent_and_a_status_list_replaces_the_days_list(store, tmp_path):
    for _ in range(2):
        with store.begin() as s:
            assert import_snds(s, str(EXAMPLES / "snds-data.csv"), now=NOW).activity == 3
            assert import_snds(s, str(EXAMPLES / "snds-ipstatus.csv"), now=NOW, day=D2).status == 2
    assert count(store, SndsActivity) == 3 and count(store, SndsIpStatus) == 2
    with store() as s:
        red = s.scalars(select(SndsActivity).where(SndsActivity.day == D2)).one()
        assert (red.ip, red.filter_result, red.trap_hits, red.recipients) == ("192.0.2.11", "RED", 11, 9100)
    unblocked = tmp_path / "status.csv"
    unblocked.write_text("192.0.2.11,192.0.2.11,No,\n")
    with store.begin() as s:
        import_snds(s, str(unblocked), now=NOW, day=D2)
    with store() as s:
        assert [(r.first_ip, r.blocked) for r in s.scalars(select(SndsIpStatus))] == [("192.0.2.11", False)]


def test_malformed_rows_are_reported_and_the_rest_stored(store, tmp_path):
    bad = tmp_path / "data.csv"
    bad.write_text("192.0.2.10,12/1/2026 12:00 AM,12/1/2026 11:59 PM,10,10,10,GREEN,< 0.1%,,,0,h,m,\n"
                   "192.0.2.11,12/1/2026 12:00 AM,12/1/2026 11:59 PM,10,10,10,BLUE,< 0.1%,,,0,h,m,\n")
    with store.begin() as s:
        stored = import_snds(s, str(bad), now=NOW)
    assert stored.activity == 1
    assert stored.errors == [f"{bad} line 2: filter result 'BLUE' is not GREEN, YELLOW or RED"]


# ---------------------------------------------------------------- fetch, against a local server

class Provider(BaseHTTPRequestHandler):
    """Google's token endpoint, the Postmaster Tools API v2 and SNDS, as documented."""

    public_key = None
    client_email = ""
    seen: list = []

    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/token":
            form = urllib.parse.parse_qs(body.decode())
            assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
            header, claims, signature = form["assertion"][0].split(".")
            pad = lambda x: base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))  # noqa: E731
            self.public_key.verify(pad(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
            claims = json.loads(pad(claims))
            self.seen.append(("token", claims))
            if claims["iss"] != self.client_email or claims["scope"] != SCOPE:
                return self._send(400, {"error": "invalid_grant"})
            return self._send(200, {"access_token": "ya29.local-token", "expires_in": 3600, "token_type": "Bearer"})
        if self.headers.get("Authorization") != "Bearer ya29.local-token":
            self.seen.append(("refused", self.path))
            return self._send(401, {"error": {"code": 401, "message": "Request had invalid authentication"}})
        request = json.loads(body)
        self.seen.append(("query", url.path, request))
        if url.path != "/v2/domains/example.com/domainStats:query":
            return self._send(403, {"error": {"code": 403, "message": "PERMISSION_DENIED"}})
        names = {d["name"] for d in request["metricDefinitions"]}
        assert {"spam_rate", "auth_success_rate.dkim"} <= names
        stat = lambda day, metric, v: {  # noqa: E731
            "name": f"domains/example.com/domainStats/{day}-{metric}", "metric": metric,
            "date": {"year": 2026, "month": 12, "day": day}, "value": {"doubleValue": v}}
        if request.get("pageToken") != "page-2":
            return self._send(200, {"domainStats": [stat(1, "spam_rate", 0.0009), stat(1, "auth_success_rate.dkim", 0.99)],
                                    "nextPageToken": "page-2"})
        return self._send(200, {"domainStats": [stat(2, "spam_rate", 0.0031)]})

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path.startswith("/snds/"):
            self.seen.append(("snds", url.path, query))
            if query.get("key") != [SNDS_KEY]:
                return self._send(403, "", "text/plain")
            if url.path == "/snds/data.aspx":
                return self._send(200, (EXAMPLES / "snds-data.csv").read_text(), "text/csv")
            if url.path == "/snds/ipStatus.aspx":
                return self._send(200, (EXAMPLES / "snds-ipstatus.csv").read_text(), "text/csv")
            return self._send(404, "", "text/plain")
        if self.headers.get("Authorization") != "Bearer ya29.local-token":
            return self._send(401, {"error": {"code": 401, "message": "Request had invalid authentication"}})
        if url.path == "/v2/domains/example.com/complianceStatus":
            return self._send(200, json.loads((EXAMPLES / "compliance-status.json").read_text()))
        return self._send(404, {"error": {"code": 404, "message": "NOT_FOUND"}})


@pytest.fixture
def provider(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    Provider.public_key = key.public_key()
    Provider.client_email = "postwatch@test-project.iam.gserviceaccount.com"
    Provider.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps({
        "type": "service_account", "project_id": "test-project", "private_key_id": "k1", "private_key": pem,
        "client_email": Provider.client_email, "client_id": "1",
        "token_uri": "https://oauth2.invalid/token"}))  # never asked: postmaster.token_url points elsewhere
    yield base, key_file
    server.shutdown()
    server.server_close()


def postmaster_cfg(base, key_file, **kw):
    return PostmasterConfig(service_account_file=str(key_file), domains=("example.com",), api_url=f"{base}/v2",
                            token_url=f"{base}/token", **kw)


def test_fetch_postmaster_with_the_service_accounts_token(store, provider):
    base, key_file = provider
    read = fetch_postmaster(postmaster_cfg(base, key_file), NOW.date())
    assert read.errors == []
    assert sorted((s.day, s.metric, s.value) for s in read.stats) == [
        (D1, "auth_success_rate.dkim", 0.99), (D1, "spam_rate", 0.0009), (D2, "spam_rate", 0.0031)]
    assert {c.requirement: c.state for c in read.compliance}["one_click_unsubscribe"] == "needs_work"
    tokens = [e[1] for e in Provider.seen if e[0] == "token"]
    assert len(tokens) == 1  # asked of postmaster.token_url, not of the key file's token_uri
    assert tokens[0]["iss"] == Provider.client_email and tokens[0]["scope"] == SCOPE
    queries = [e for e in Provider.seen if e[0] == "query"]
    assert len(queries) == 2 and queries[1][2]["pageToken"] == "page-2"
    first = queries[0][2]
    assert first["aggregationGranularity"] == "DAILY"
    assert first["timeQuery"]["dateRanges"][0]["end"] == {"year": 2026, "month": 12, "day": 2}
    assert not [e for e in Provider.seen if e[0] == "refused"]
    with store.begin() as s:
        store_postmaster(s, read, now=NOW, day=NOW.date(), source="fetch")
    assert count(store, PostmasterStat) == 3 and count(store, PostmasterCompliance) == 11


def test_fetch_postmaster_a_domain_refused_is_an_error_and_a_wrong_scope_stops(store, provider):
    base, key_file = provider
    cfg = PostmasterConfig(service_account_file=str(key_file), domains=("example.com", "not-mine.example"),
                           api_url=f"{base}/v2", token_url=f"{base}/token")
    read = fetch_postmaster(cfg, NOW.date())
    assert len(read.stats) == 3
    assert read.errors == ["Postmaster Tools domainStats:query for not-mine.example: HTTP 403: PERMISSION_DENIED"]
    with pytest.raises(FeedError, match="refused the service account"):
        fetch_postmaster(postmaster_cfg(base, key_file, scope="https://www.googleapis.com/auth/gmail"), NOW.date())
    with pytest.raises(FeedError, match="service_account_file is not set"):
        fetch_postmaster(PostmasterConfig(domains=("example.com",)), NOW.date())


def test_fetch_snds_with_the_key_in_the_query(store, provider):
    base, _ = provider
    data, status = fetch_snds(SndsConfig(key=SNDS_KEY, base_url=f"{base}/snds"))
    assert [e[1] for e in Provider.seen] == ["/snds/data.aspx", "/snds/ipStatus.aspx"]
    assert all(e[2]["key"] == [SNDS_KEY] for e in Provider.seen)
    assert len(data.activity) == 3 and len(status.status) == 2
    with pytest.raises(FeedError, match="HTTP 403"):
        fetch_snds(SndsConfig(key="wrong", base_url=f"{base}/snds"))
    with pytest.raises(FeedError, match="snds.key is not set"):
        fetch_snds(SndsConfig())


def test_the_daily_job_fetches_both_and_stores_them(store, provider):
    base, key_file = provider

    class Settings:
        postmaster = postmaster_cfg(base, key_file)
        snds = SndsConfig(key=SNDS_KEY, base_url=f"{base}/snds")
    ctx = JobContext(sessions=store, settings=Settings(), clock=lambda: NOW)
    assert provider_feeds_job(ctx) == 3 + 11 + 3 + 2
    assert provider_feeds_job(ctx) == 3 + 11 + 3 + 2  # asked again: replaced, not doubled
    assert count(store, PostmasterStat) == 3 and count(store, SndsActivity) == 3
    with store() as s:
        assert {r.source for r in s.scalars(select(SndsActivity))} == {"fetch"}
    from analysis.jobs import all_jobs
    job = {j.name: j for j in all_jobs()}["provider_feeds"]
    assert job.cron and not job.in_analyze


# ---------------------------------------------------------------- alerts

def spam(store, day, rate, domain="example.com"):
    from ingest.feeds.postmaster import read
    doc = {"domainStats": [{"name": f"domains/{domain}/domainStats/x", "metric": "spam_rate",
                            "date": {"year": day.year, "month": day.month, "day": day.day},
                            "value": {"doubleValue": rate}}]}
    with store.begin() as s:
        store_postmaster(s, read(doc), now=NOW, day=day)


@pytest.mark.parametrize("rate, severity", [(0.00099, None), (0.001, "warning"), (0.00299, "warning"),
                                            (0.003, "critical"), (0.012, "critical")])
def test_gmail_spam_rate_alert_at_its_lines_and_not_below(store, rate, severity):
    spam(store, D1, rate)
    got = judge(store, D1).get(("gmail_spam_rate", "example.com"))
    assert (got.severity if got else None) == severity
    if got:
        assert "Google Postmaster Tools" in got.message and got.details["rate"] == rate


def test_gmail_spam_rate_alert_resolves_when_the_rate_falls(store):
    spam(store, D1, 0.004)
    assert judge(store, D1)[("gmail_spam_rate", "example.com")].severity == "critical"
    spam(store, D2, 0.0005)
    assert ("gmail_spam_rate", "example.com") not in judge(store, D2)


def snds_day(store, day, colour, ip="192.0.2.11"):
    from ingest.feeds.snds import read_text
    text = f"{ip},{day:%m/%d/%Y} 12:00 AM,{day:%m/%d/%Y} 11:59 PM,100,100,100,{colour},0.2%,,,0,h,m,\n"
    with store.begin() as s:
        store_snds(s, read_text(text), now=NOW, day=day)


def test_snds_colours_alert_yellow_and_red_not_green(store):
    snds_day(store, D1, "GREEN")
    assert ("snds_filter", "192.0.2.11") not in judge(store, D1)
    snds_day(store, D1, "YELLOW")
    assert judge(store, D1)[("snds_filter", "192.0.2.11")].severity == "warning"
    snds_day(store, D2, "RED")
    alert = judge(store, D2)[("snds_filter", "192.0.2.11")]
    assert alert.severity == "critical" and "RED" in alert.message
    snds_day(store, D2 + timedelta(days=1), "GREEN")
    assert ("snds_filter", "192.0.2.11") not in judge(store, D2 + timedelta(days=1))


def test_an_ip_blocked_in_the_status_list_alerts_until_a_list_no_longer_blocks_it(store, tmp_path):
    with store.begin() as s:
        import_snds(s, str(EXAMPLES / "snds-ipstatus.csv"), now=NOW, day=D1)
    opened = judge(store, D1)
    assert opened[("snds_blocked", "192.0.2.11")].severity == "critical"
    assert ("snds_blocked", "192.0.2.16-192.0.2.31") not in opened  # listed, but not blocked
    assert ("snds_blocked", "192.0.2.11") in judge(store, D2)  # the list as last read still blocks it
    clean = tmp_path / "clean.csv"
    clean.write_text("192.0.2.16,192.0.2.31,No,\n")
    with store.begin() as s:
        import_snds(s, str(clean), now=NOW, day=D2 + timedelta(days=1))
    assert ("snds_blocked", "192.0.2.11") not in judge(store, D2 + timedelta(days=1))


def test_a_compliance_requirement_moving_to_needs_work_alerts(store, tmp_path):
    def status(day, state):
        f = tmp_path / f"c-{day}.json"
        f.write_text(json.dumps({"name": "domains/example.com/complianceStatus", "complianceData": {
            "domainId": "example.com", "rowData": [{"requirement": "DMARC_ALIGNMENT", "status": {"status": state}},
                                                   {"requirement": "SPF", "status": {"status": "COMPLIANT"}}]}}))
        with store.begin() as s:
            import_postmaster(s, str(f), now=NOW, day=day)

    status(D1, "COMPLIANT")
    assert not [k for k in judge(store, D1) if k[0] == "gmail_compliance"]
    status(D2, "NEEDS_WORK")
    alert = judge(store, D2)[("gmail_compliance", "example.com dmarc_alignment")]
    assert alert.severity == "warning" and "was compliant" in alert.message
    assert ("gmail_compliance", "example.com spf") not in judge(store, D2)
    status(D2 + timedelta(days=1), "COMPLIANT")
    assert not [k for k in judge(store, D2 + timedelta(days=1)) if k[0] == "gmail_compliance"]


# ---------------------------------------------------------------- side by side, and the score

def rollups(store, day, dimension, key, **metrics):
    with store.begin() as s:
        for metric, value in metrics.items():
            s.add(Rollup(day=day, dimension=dimension, key=key, metric=metric.replace("__", "."), value=value))
        s.merge(ScorePending(day=day, dimension=dimension, key=key))  # as the rollup job marks what it counts


def test_spam_rates_side_by_side_per_day(store):
    with store.begin() as s:
        import_postmaster(s, str(EXAMPLES / "domain-stats.json"), now=NOW)
    rollups(store, D1, "sending_domain", "example.com", sent=20000, sent__fbl=4000, complaints=2)
    rollups(store, D1, "sending_domain", "news.example.com", sent=1000, sent__fbl=1000, complaints=2)
    rollups(store, D1, "sending_domain", "other.org", sent=500, complaints=5)
    rollups(store, D2, "sending_domain", "example.com", sent=10000, complaints=0)
    rollups(store, D1, "provider", "google", sent=9000, complaints=0)
    with store() as s:
        rows = {r["day"]: r for r in spam_rates(s, D1, D2)}
    assert set(rows) == {D1, D2}
    one = rows[D1]
    assert one["gmail_spam_rate"] == 0.0008 and one["gmail_dkim"] == 1.0
    assert (one["our_complaints"], one["our_base"], one["our_basis"]) == (4, 5000, "sent.fbl")
    assert one["our_complaint_rate"] == pytest.approx(4 / 5000)
    assert one["our_google_complaint_rate"] == 0.0 and one["our_google_sent"] == 9000
    assert rows[D2]["gmail_spam_rate"] == 0.0034 and rows[D2]["our_complaint_rate"] == 0.0


def test_snds_colour_beside_our_block_rate(store):
    with store.begin() as s:
        import_snds(s, str(EXAMPLES / "snds-data.csv"), now=NOW)
        import_snds(s, str(EXAMPLES / "snds-ipstatus.csv"), now=NOW, day=D2)
    rollups(store, D2, "sending_ip", "192.0.2.11", sent=2000, bounced__reputation=30, bounced__policy=10)
    with store() as s:
        rows = {(r["day"], r["ip"]): r for r in snds_rows(s, D1, D2)}
    red = rows[(D2, "192.0.2.11")]
    assert red["snds_colour"] == "RED" and red["snds_blocked"] is True
    assert (red["our_blocks"], red["our_sent"], red["our_block_rate"]) == (40, 2000, 0.02)
    assert rows[(D1, "192.0.2.11")]["snds_blocked"] is False  # no status list read by then
    assert rows[(D1, "192.0.2.10")]["our_block_rate"] is None


def test_compliance_beside_our_posture_checks(store):
    with store.begin() as s:
        import_postmaster(s, str(EXAMPLES / "compliance-status.json"), now=NOW, day=D2)
        for subject, check, status in (("example.com", "spf", "ok"), ("example.com", "dkim:s1", "ok"),
                                       ("example.com", "dkim:s2", "error"), ("example.com", "dmarc", "warning")):
            s.add(PostureCheck(subject=subject, check=check, status=status, summary=f"{check} {status}",
                               fingerprint=check + status, first_seen_at=NOW, checked_at=NOW))
    with store() as s:
        rows = {r["requirement"]: r for r in compliance_rows(s, D2)}
    assert rows["spf"]["google_state"] == "compliant" and rows["spf"]["our_status"] == "ok"
    assert rows["dkim"]["our_status"] == "error" and len(rows["dkim"]["our_checks"]) == 2
    assert rows["dmarc_policy"]["our_status"] == "warning"
    assert rows["one_click_unsubscribe"]["google_state"] == "needs_work"
    assert rows["one_click_unsubscribe"]["our_status"] is None and rows["one_click_unsubscribe"]["note"]


def test_the_score_explanation_names_gmails_rate_and_the_snds_colour(store):
    rollups(store, D2, "sending_domain", "example.com", sent=5000, complaints=0)
    rollups(store, D2, "sending_ip", "192.0.2.11", sent=5000)
    rollups(store, D2, "sending_ip", "192.0.2.10", sent=5000)
    rollups(store, D2, "all", "", sent=10000)
    spam(store, D2, 0.0035)
    snds_day(store, D2, "YELLOW")
    with store.begin() as s:
        score_pending(s, now=NOW, config=ScoresConfig())
    with store() as s:
        scores = {(r.dimension, r.key): r for r in s.scalars(select(Score).where(Score.day == D2))}
    domain = scores[("sending_domain", "example.com")]
    assert domain.components["providers"]["gmail_spam_rate"] == {"rate": 0.0035, "domain": "example.com"}
    assert domain.grade == "critical"
    assert domain.components["caps"][0]["rule"] == "gmail_spam_rate_at_or_above_bad"
    ip = scores[("sending_ip", "192.0.2.11")]
    assert ip.components["providers"]["snds_colour"]["colour"] == "YELLOW" and ip.grade == "watch"
    assert "providers" not in scores[("sending_ip", "192.0.2.10")].components
    assert scores[("sending_ip", "192.0.2.10")].grade == "good"
