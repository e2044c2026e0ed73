"""The digest's figures, charts, HTML, plain text and CSV attachments, on a hand-built fortnight."""
from __future__ import annotations

import csv
import email
import io
import re
from dataclasses import replace
from datetime import date, datetime, timezone
from email import policy

import pytest

from analysis.digest.figures import gather
from analysis.digest.message import build, message, table_csv, write_preview
from analysis.digest.schedule import Period, Scope, ScheduleError, parse_schedules, period_for
from postwatch.config import Config, ConfigError, load
from tests.analysis.digest_history import BEFORE, DOMAINS, NOW, WEEK, expected, fortnight_store


@pytest.fixture(scope="module")
def fortnight(tmp_path_factory, database_factory):
    """Read only by these tests: built once."""
    return fortnight_store(database_factory(tmp_path_factory.mktemp("digest")))


def _digest(sessions, period=WEEK, scope=Scope(), settings=None):
    with sessions() as s:
        return gather(s, settings or Config(), period, scope, NOW)


def test_headline_figures_equal_the_store_for_the_period(fortnight):
    d = _digest(fortnight)
    want, was = expected(fortnight, WEEK), expected(fortnight, BEFORE)
    assert d.has_data and want["sent"] > 0
    f = {x.name: x for x in d.figures}
    assert (f["sent"].value, f["sent"].previous) == (want["sent"], was["sent"])
    assert f["complaints"].value == want["complaints"]
    assert f["complaint_rate"].value == pytest.approx(want["complaints"] / want["sent_fbl"])
    assert f["complaint_rate"].previous == pytest.approx(was["complaints"] / was["sent_fbl"])
    assert f["hard_bounce_rate"].value == pytest.approx(want["hard"] / want["sent"])
    assert f["bounce_rate"].value == pytest.approx(want["bounced"] / want["sent"])
    assert f["block_rate"].value == pytest.approx(want["blocked"] / want["sent"])
    assert f["delivery_rate"].value == pytest.approx(want["delivered"] / want["sent"])
    assert f["complaint_rate"].lines == (0.001, 0.003)
    assert f["complaint_rate"].status == ("critical" if want["complaints"] / want["sent_fbl"] >= 0.003 else
                                          "warning" if want["complaints"] / want["sent_fbl"] >= 0.001 else "ok")
    assert f["dmarc_messages"].value == 900 * 2 + 40 * 2 and f["dmarc_messages"].previous == 900
    assert f["tls_failure_rate"].value == pytest.approx(50 / 1000)
    # day by day adds up to the headline
    assert sum(r[1] for r in d.volume.rows) == want["sent"]
    assert [r[0] for r in d.volume.rows] == [date(2026, 6, 8 + i) for i in range(7)]


def test_a_domain_scope_counts_that_domain_only(fortnight):
    d = _digest(fortnight, scope=Scope(domains=(DOMAINS[1],)))
    want = expected(fortnight, WEEK, domain=DOMAINS[1])
    f = {x.name: x for x in d.figures}
    assert f["sent"].value == want["sent"] and f["complaints"].value == want["complaints"]
    assert f["hard_bounce_rate"].value == pytest.approx(want["hard"] / want["sent"])
    assert d.dmarc.rows == []  # DMARC reports name only the other domain
    assert "domain=news.example.org" in d.dashboard_url and "start=2026-06-08" in d.dashboard_url


def test_the_sections_read_the_store(fortnight):
    d = _digest(fortnight)
    reasons = {r[0]: r for r in d.reasons.rows}
    assert reasons["userunknown"][1:3] == ("hygiene", 21)
    assert reasons["blocked"][2] == sum((i % 4) + 1 for i in range(7, 14))
    # the same text counts together; the user-unknown texts name their recipient, so each is one
    assert d.diagnostics.rows[0][0] == "blocked" and d.diagnostics.rows[0][2] == reasons["blocked"][2]
    assert "5.7.515" in d.diagnostics.rows[0][1] and len(d.diagnostics.rows) == 10
    assert {r[0] for r in d.campaigns.rows} <= {"spring", "summer"}
    assert sum(r[2] for r in d.campaigns.rows) == expected(fortnight, WEEK)["complaints"]
    assert d.dmarc.rows == [("send.example.com", 1880, 1800, 1800, 80, round(1800 / 1880, 4))]
    assert [(r[1], r[3], r[4]) for r in d.sources.rows] == [("203.0.113.66", "unknown", "new")]
    assert d.sources.rows[0][5] == d.dmarc.rows[0][4] == 80  # its mail of the period, not of all time
    assert d.impact.rows[0][:3] == ("send.example.com", date(2026, 6, 11), "none")
    assert d.tls.rows == [("send.example.com", "certificate-expired", "mx1.send.example.com", 50)]
    assert d.blocklists.rows == [("ip", "192.0.2.10", "bl.example.net", "listed", 1, date(2026, 6, 10))]
    assert sorted(d.suppressions.rows) == [("add", "abuse", 1, 0), ("add", "userunknown", 1, 1)]
    assert [(a.rule, a.key) for a in d.alerts] == [("complaint_rate", "summer")] and d.alerts_opened == 1
    assert {p.provider for p in d.providers} == {"google", "microsoft"}
    assert all(p.grade in ("good", "watch", "critical") and p.moved_by for p in d.providers)


def test_the_html_is_built_for_mail_clients(fortnight, tmp_path):
    rendered = build(_digest(fortnight))
    assert [c.name for c in rendered.charts] == ["volume", "complaint_rate", "bounce_reasons", "dmarc_compliance"]
    html = rendered.html(lambda c: f"cid:{c.name}")
    assert "<script" not in html.lower() and "javascript:" not in html.lower()
    assert "<link" not in html.lower() and "@import" not in html  # no external stylesheet
    widths = [int(w) for w in re.findall(r'\bwidth="(\d+)"', html)]
    widths += [int(w) for w in re.findall(r"max-width:\s*(\d+)px", html)]
    widths += [int(w) for w in re.findall(r"(?<![-\w])width:\s*(\d+)px", html)]
    assert widths and max(widths) <= 640
    assert 'name="color-scheme" content="light dark"' in html and "prefers-color-scheme: dark" in html
    imgs = re.findall(r"<img [^>]*>", html)
    assert len(imgs) == 4 and all('alt="Chart: ' in i and 'src="cid:' in i for i in imgs)
    assert re.search(r'<td[^>]*style="[^"]*"', html)  # inline styles on the cells
    want = expected(fortnight, WEEK)
    assert re.search(rf'data-figure="sent">{want["sent"]:,}<', html)
    files = write_preview(rendered, tmp_path / "out")
    assert {p.name for p in files} == {"digest.html", "digest.txt"} | {f"{c.name}.{x}" for c in rendered.charts
                                                                        for x in ("png", "csv")}
    assert all((tmp_path / "out" / f"{c.name}.png").read_bytes().startswith(b"\x89PNG") for c in rendered.charts)


def test_the_plain_text_alternative_carries_the_figures(fortnight):
    rendered = build(_digest(fortnight))
    text = rendered.text()
    want = expected(fortnight, WEEK)
    assert text.startswith("Weekly digest, 2026-06-08 to 2026-06-14")
    assert re.search(rf"Sent\s+{want['sent']:,}\s+previous {expected(fortnight, BEFORE)['sent']:,}", text)
    assert f"{want['complaints'] / want['sent_fbl'] * 100:.3f}%" in text
    for heading in ("TOP BOUNCE REASONS", "DMARC COMPLIANCE PER DOMAIN", "IMPACT IF P=REJECT", "TLS FAILURES",
                    "BLOCKLIST LISTINGS", "SUPPRESSION CHANGES", "OPEN ALERTS: 1 open now"):
        assert heading in text
    assert "<" not in text.replace("<r", "")  # no markup (diagnostics quote <recipient>)


def test_csv_attachments_are_the_tables_behind_the_charts(fortnight):
    rendered = build(_digest(fortnight))
    msg = message(rendered, mail_from="reports@send.example.com", to=("ops@example.com",), now=NOW)
    parsed = email.message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    alternative = parsed.get_payload()[0]
    assert alternative.get_content_type() == "multipart/alternative"
    plain, related = alternative.get_payload()
    assert (plain.get_content_type(), related.get_content_type()) == ("text/plain", "multipart/related")
    html = related.get_payload()[0].get_content()
    images = {p["Content-ID"].strip("<>"): p for p in related.get_payload()[1:]}
    assert set(re.findall(r'src="cid:([^"]+)"', html)) == set(images)
    assert all(p.get_content_type() == "image/png" for p in images.values())
    csvs = {p.get_filename(): p.get_content() for p in parsed.get_payload()[1:]}
    assert set(csvs) == {f"{c.name}.csv" for c in rendered.charts}
    for c in rendered.charts:
        rows = list(csv.reader(io.StringIO(csvs[f"{c.name}.csv"])))
        assert tuple(rows[0]) == c.table.columns and len(rows) == len(c.table.rows) + 1
        assert csvs[f"{c.name}.csv"].replace("\r\n", "\n") == table_csv(c.table).replace("\r\n", "\n")
    reasons = list(csv.DictReader(io.StringIO(csvs["bounce_reasons.csv"])))
    assert {r["reason"]: int(r["bounces"]) for r in reasons}["userunknown"] == 21


def test_a_period_with_no_data_says_so_and_draws_no_charts(fortnight):
    empty = Period("weekly", date(2025, 1, 6), date(2025, 1, 12))
    rendered = build(_digest(fortnight, period=empty))
    assert not rendered.digest.has_data and rendered.charts == []
    html = rendered.html()
    assert "No data for this period" in html and "<img" not in html
    assert "No data for this period" in rendered.text()
    msg = message(rendered, mail_from="reports@send.example.com", to=("ops@example.com",), now=NOW)
    assert "no data" in msg["Subject"]
    types = [p.get_content_type() for p in msg.walk()]
    assert "image/png" not in types and "text/csv" not in types
    # the open alert is still worth telling
    assert "1 open now" in rendered.text()


def test_periods():
    assert period_for("daily", date(2026, 6, 15)) == Period("daily", date(2026, 6, 14), date(2026, 6, 14))
    assert period_for("weekly", date(2026, 6, 15)) == WEEK and WEEK.previous() == Period(
        "weekly", date(2026, 6, 1), date(2026, 6, 7))
    march = period_for("monthly", date(2026, 4, 1))
    assert march == Period("monthly", date(2026, 3, 1), date(2026, 3, 31))
    assert march.previous() == Period("monthly", date(2026, 2, 1), date(2026, 2, 28))
    assert march.label == "March 2026"
    assert period_for("weekly", date(2026, 1, 1), end=date(2026, 6, 14)) == WEEK


def test_schedules_are_read_and_a_bad_one_is_a_sentence():
    first, second, third = parse_schedules((
        "weekly|0 8 * * MON|Europe/Paris|ops@example.com, boss@example.com|domain:example.com",
        "daily|30 7 * * *|UTC|a@example.com|", "weekly|0 9 * * FRI||b@example.com|campaign:spring"))
    assert (first.name, first.timezone, first.recipients, first.scope.domains) == (
        "report.weekly", "Europe/Paris", ("ops@example.com", "boss@example.com"), ("example.com",))
    assert (second.name, second.scope.label) == ("report.daily", "all mail")
    assert (third.name, third.timezone, third.scope.campaigns) == ("report.weekly.2", "UTC", ("spring",))
    for bad, words in (("hourly|0 * * * *|UTC|a@example.com", "daily, weekly or monthly"),
                       ("daily|0 8 * *|UTC|a@example.com", "5 fields"),
                       ("daily|0 8 * * *|Mars/Olympus|a@example.com", "not a time zone"),
                       ("daily|0 8 * * *|UTC|nobody", "recipient"),
                       ("daily|0 8 * * *|UTC|a@example.com|domain:x.com campaign:y", "not both")):
        with pytest.raises(ConfigError, match=words):
            load(environ={"POSTWATCH_REPORTS__SCHEDULES": bad})
    with pytest.raises(ScheduleError):
        Scope.parse("team:ops")
