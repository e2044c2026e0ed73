"""The readers of the providers' own reports: each documented shape read to its values, and a
record that cannot be read reported with where it is while the others are still read."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

from ingest.feeds import postmaster, snds

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "providers"


def test_domain_stats_read_through_the_requests_metric_definitions():
    read = postmaster.read_text((EXAMPLES / "domain-stats.json").read_text())
    assert read.errors == []
    got = {(s.domain, s.day, s.metric): s.value for s in read.stats}
    assert got[("example.com", date(2026, 12, 1), "spam_rate")] == 0.0008
    assert got[("example.com", date(2026, 12, 1), "auth_success_rate.spf")] == 0.998
    assert got[("example.com", date(2026, 12, 1), "auth_success_rate.dmarc")] == 0.997
    assert got[("example.com", date(2026, 12, 1), "tls_encryption_rate.inbound")] == 0.999
    assert got[("example.com", date(2026, 12, 1),
                "delivery_error_rate.temporary_error.rate_limit_exceeded")] == 0.004
    assert got[("example.com", date(2026, 12, 2), "spam_rate")] == 0.0034
    assert len(got) == 9


def test_postwatchs_own_names_need_no_definitions_and_int_values_are_strings():
    doc = {"domainStats": [
        {"name": "domains/Mail.Example.ORG/domainStats/x", "metric": "spam_rate",
         "date": {"year": 2026, "month": 11, "day": 30}, "value": {"floatValue": 0.002}},
        {"name": "domains/mail.example.org/domainStats/y", "metric": "delivery_error_count",
         "date": {"year": 2026, "month": 11, "day": 30}, "value": {"intValue": "42"}}]}
    read = postmaster.read(doc)
    assert read.errors == []
    assert [(s.domain, s.metric, s.value) for s in read.stats] == [
        ("mail.example.org", "spam_rate", 0.002), ("mail.example.org", "delivery_error_count", 42.0)]


def test_malformed_domain_stats_are_reported_one_by_one():
    doc = {"domainStats": [
        {"name": "domains/example.com/domainStats/a", "metric": "spam_rate",
         "date": {"year": 2026, "month": 12, "day": 1}, "value": {"doubleValue": 0.001}},
        {"name": "domains/example.com/domainStats/b", "metric": "my_custom_name",
         "date": {"year": 2026, "month": 12, "day": 1}, "value": {"doubleValue": 0.5}},
        {"name": "domains/example.com/domainStats/c", "metric": "spam_rate",
         "date": {"year": 2026, "month": 13, "day": 1}, "value": {"doubleValue": 0.001}},
        {"name": "domains/example.com/domainStats/d", "metric": "spam_rate",
         "date": {"year": 2026, "month": 12, "day": 2}, "value": {"doubleValue": 12.5}},
        {"name": "nothing/here", "metric": "spam_rate", "date": {"year": 2026, "month": 12, "day": 3},
         "value": {"doubleValue": 0.001}},
        {"name": "domains/example.com/domainStats/e", "metric": "spam_rate",
         "date": {"year": 2026, "month": 12, "day": 4}, "value": {"stringValue": "high"}}]}
    read = postmaster.read(doc, "f.json")
    assert [(s.day, s.value) for s in read.stats] == [(date(2026, 12, 1), 0.001)]
    assert len(read.errors) == 5
    assert read.errors[0].startswith("f.json domainStats[1]: the metric 'my_custom_name'")
    assert "domainStats[2]" in read.errors[1]
    assert "between 0 and 1" in read.errors[2]
    assert "names no domain" in read.errors[3]
    assert "no numeric value" in read.errors[4]


def test_compliance_status_with_its_verdicts():
    read = postmaster.read_text((EXAMPLES / "compliance-status.json").read_text())
    assert read.errors == []
    states = {c.requirement: (c.state, c.reason) for c in read.compliance}
    assert states["spf"] == ("compliant", None)
    assert states["user_reported_spam_rate"] == ("needs_work", None)
    assert states["one_click_unsubscribe"] == ("needs_work", "no_unsub_promo_spam_reports")
    assert states["honor_unsubscribe"] == ("compliant", None)
    assert len(states) == 11 and {c.domain for c in read.compliance} == {"example.com"}


def test_compliance_rows_that_cannot_be_read_and_a_batch_response():
    doc = [{"name": "domains/sub.example.com/complianceStatus",
            "complianceData": {"domainId": "example.com", "rowData": [
                {"requirement": "SPF", "status": {"status": "MAYBE"}},
                {"requirement": "TELEPATHY", "status": {"status": "COMPLIANT"}},
                {"requirement": "DKIM", "status": {"status": "NEEDS_WORK"}}]},
            "subdomainComplianceData": {"domainId": "sub.example.com", "rowData": [
                {"requirement": "DKIM", "status": {"status": "COMPLIANT"}}]}},
           {"results": [{"response": {"domainStats": [
               {"name": "domains/example.com/domainStats/a", "metric": "spam_rate",
                "date": {"year": 2026, "month": 12, "day": 1}, "value": {"doubleValue": 0.001}}]}},
               {"error": {"code": 7, "message": "PERMISSION_DENIED"}}]},
           {"something": "else"}]
    read = postmaster.read(doc, "f")
    assert [(c.domain, c.requirement, c.state, c.subdomain) for c in read.compliance] == [
        ("example.com", "dkim", "needs_work", False), ("sub.example.com", "dkim", "compliant", True)]
    assert len(read.stats) == 1
    assert len(read.errors) == 4
    assert "unknown compliance state 'MAYBE'" in read.errors[0]
    assert "TELEPATHY" in read.errors[1]
    assert "PERMISSION_DENIED" in read.errors[2]
    assert "neither domainStats" in read.errors[3]
    assert postmaster.read_text("{not json", "x").errors[0].startswith("x: not JSON")


def test_the_metrics_postwatch_asks_for_are_named_as_it_reads_them():
    defs = postmaster.metric_definitions()
    names = {d["name"] for d in defs}
    assert {"spam_rate", "auth_success_rate.spf", "auth_success_rate.dkim", "auth_success_rate.dmarc",
            "tls_encryption_rate.inbound", "delivery_error_rate", "delivery_error_rate.permanent_error",
            "delivery_error_rate.suspected_spam"} <= names
    for d in defs:  # read back through the request, each definition gives its own name
        assert postmaster.metric_name(d["baseMetric"]["standardMetric"], d.get("filter", "")) == d["name"]


def test_snds_data_export():
    read = snds.read_text((EXAMPLES / "snds-data.csv").read_text())
    assert read.kind == snds.DATA and read.errors == []
    first, yellow, red = read.activity
    assert first.ip == "192.0.2.10" and first.filter_result == "GREEN"
    assert first.activity_start == datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)
    assert first.activity_end == datetime(2026, 12, 1, 23, 59, tzinfo=timezone.utc)
    assert (first.rcpt_commands, first.data_commands, first.recipients) == (12045, 11980, 12010)
    assert first.complaint_rate == 0.001 and first.complaint_rate_text == "< 0.1%"
    assert first.trap_start is None and first.trap_hits == 0
    assert (first.sample_helo, first.sample_mail_from) == ("mta1.example.com", "news@example.com")
    assert yellow.filter_result == "YELLOW" and yellow.complaint_rate == 0.004 and yellow.trap_hits == 3
    assert yellow.trap_start == datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)
    assert red.filter_result == "RED" and red.comments == "Sampled"


def test_snds_malformed_rows_are_errors_with_their_line_and_the_rest_is_read():
    text = ("IP Address,Activity start,Activity end,RCPT commands,DATA commands,Message recipients,Filter result,"
            "Complaint rate,Trap message period start,Trap message period end,Trap hits,Sample HELO,"
            "Sample MAIL FROM,Comments\n"
            "192.0.2.10,12/1/2026 12:00 AM,12/1/2026 11:59 PM,10,10,10,GREEN,< 0.1%,,,0,h,m,\n"
            "192.0.2.300,12/1/2026 12:00 AM,12/1/2026 11:59 PM,10,10,10,GREEN,< 0.1%,,,0,h,m,\n"
            "192.0.2.11,12/1/2026 12:00 AM,12/1/2026 11:59 PM,10,10,10,PURPLE,< 0.1%,,,0,h,m,\n"
            "192.0.2.12,yesterday,12/1/2026 11:59 PM,10,10,10,GREEN,< 0.1%,,,0,h,m,\n"
            "192.0.2.13,12/1/2026 12:00 AM,12/1/2026 11:59 PM,ten,10,10,GREEN,< 0.1%,,,0,h,m,\n"
            "192.0.2.14,12/1/2026 12:00 AM,12/1/2026 11:59 PM,10,10,10,RED,lots,,,0,h,m,\n"
            "192.0.2.15,12/1/2026\n"
            "\n"
            "192.0.2.16,12/2/2026 12:00 AM,12/2/2026 11:59 PM,5,5,5,red,2%,,,1,h,m,\n")
    read = snds.read_text(text, "data.csv")
    assert [(a.ip, a.filter_result) for a in read.activity] == [("192.0.2.10", "GREEN"), ("192.0.2.16", "RED")]
    assert [e.split(":")[0] for e in read.errors] == [f"data.csv line {n}" for n in (3, 4, 5, 6, 7, 8)]
    assert "not an IP address" in read.errors[0] and "PURPLE" in read.errors[1]
    assert "'lots'" in read.errors[4] and "columns" in read.errors[5]


def test_snds_ip_status():
    read = snds.read_text((EXAMPLES / "snds-ipstatus.csv").read_text())
    assert read.kind == snds.STATUS and read.errors == []
    assert [(s.first_ip, s.last_ip, s.blocked) for s in read.status] == [
        ("192.0.2.11", "192.0.2.11", True), ("192.0.2.16", "192.0.2.31", False)]
    assert read.status[0].details.startswith("Blocked due to user complaints")
    bad = snds.read_text("First IP,Last IP,Blocked,Details\n192.0.2.9,192.0.2.1,Yes,x\n192.0.2.1,192.0.2.1,Maybe,x\n"
                         "192.0.2.5,192.0.2.5,No,fine\n", "s.csv")
    assert [s.first_ip for s in bad.status] == ["192.0.2.5"]
    assert len(bad.errors) == 2 and "not a range" in bad.errors[0] and "'Maybe'" in bad.errors[1]
    assert json.dumps([e for e in bad.errors])
