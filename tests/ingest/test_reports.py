"""DMARC aggregate / failure and SMTP TLS reports, read through parsedmarc offline."""
from __future__ import annotations

import base64
import gzip
import io
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ingest.config import IngestConfig
from ingest.parse import parse_bytes
from ingest.parsers.reports import report_key

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_reports"
CORPUS = Path(os.environ.get("POSTWATCH_CORPUS", ROOT.parent / "shared" / "corpus"))
GOOGLE_ZIP = SAMPLES / "dmarc/google.com!example.com!1704758400!1704844799.zip"
MS_GZ = SAMPLES / "dmarc/enterprise.protection.outlook.com!example.com!1704758400!1704844800.xml.gz"
GOOGLE_TLS = SAMPLES / "tls/google.com!example.com!1704758400!1704844799!001.json.gz"


def _xml(path: Path) -> bytes:
    return zipfile.ZipFile(path).read(zipfile.ZipFile(path).namelist()[0])


def _mail(*attachments: tuple[str, str, bytes]) -> bytes:
    parts = []
    for ctype, name, data in attachments:
        body = "\n".join(base64.encodebytes(data).decode().splitlines())
        parts.append(f"--b\nContent-Type: {ctype}; name=\"{name}\"\nContent-Transfer-Encoding: base64\n"
                     f"Content-Disposition: attachment; filename=\"{name}\"\n\n{body}\n")
    return ("From: noreply-dmarc-support@google.com\nTo: dmarc@example.com\n"
            "Subject: Report domain: example.com\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nreports\n"
            + "".join(parts) + "--b--\n").encode()


@pytest.fixture
def no_network(monkeypatch):
    """Any connection or name lookup fails the test: parsing is offline."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network used while parsing: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "gethostbyaddr", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_google_zip(no_network):
    r = parse_bytes(GOOGLE_ZIP.read_bytes())
    assert r.kind == "dmarc_aggregate" and r.error is None
    assert r.report == {"report_id": "13579246801357924680", "org_name": "google.com", "domain": "example.com",
                        "begin": "2024-01-09T00:00:00Z", "end": "2024-01-09T23:59:59Z",
                        "records": 3, "messages": 1795}
    assert r.detail["report_metadata"]["org_name"] == "google.com"  # parsedmarc's full report
    assert len(r.detail["records"]) == 3


def test_microsoft_xml_gz(no_network):
    r = parse_bytes(MS_GZ.read_bytes())
    assert (r.kind, r.report["org_name"], r.report["records"], r.report["messages"]) == \
        ("dmarc_aggregate", "Enterprise Outlook", 4, 992)


def test_same_report_as_xml_zip_gzip_and_mail_has_one_key(no_network):
    xml = _xml(GOOGLE_ZIP)
    inputs = [xml, GOOGLE_ZIP.read_bytes(), gzip.compress(xml),
              _mail(("application/zip", "r.zip", GOOGLE_ZIP.read_bytes())),
              _mail(("application/gzip", "r.xml.gz", gzip.compress(xml))),
              _mail(("text/xml", "r.xml", xml))]
    keys = set()
    for raw in inputs:
        r = parse_bytes(raw)
        assert r.kind == "dmarc_aggregate", r.error
        assert r.report["messages"] == 1795
        keys.add(report_key("dmarc_aggregate", r.detail))
        keys.add(report_key("dmarc_aggregate", r.report))
    assert len(keys) == 1


def test_inline_xml_body():
    xml = _xml(GOOGLE_ZIP).decode()
    raw = f"From: dmarc@example.org\nTo: dmarc@example.com\nSubject: DMARC\nContent-Type: text/plain\n\n{xml}"
    r = parse_bytes(raw.encode())
    assert r.kind == "dmarc_aggregate" and r.report["records"] == 3


def test_several_reports_in_one_mail():
    tls = gzip.decompress(GOOGLE_TLS.read_bytes())
    raw = _mail(("application/zip", "g.zip", GOOGLE_ZIP.read_bytes()),
                ("application/gzip", "m.xml.gz", MS_GZ.read_bytes()))
    r = parse_bytes(raw)
    assert r.kind == "dmarc_aggregate"
    assert r.report["org_name"] == "google.com"
    assert [x["org_name"] for x in r.reports] == ["google.com", "Enterprise Outlook"]
    assert [x["detail"]["report_metadata"]["org_name"] for x in r.reports] == ["google.com", "Enterprise Outlook"]
    assert {x["kind"] for x in r.reports} == {"dmarc_aggregate"}
    assert "reports" not in r.as_json()  # the contract prints the first report only
    assert tls  # the TLS one is read on its own below


def test_keys_differ_between_reports():
    g = parse_bytes(GOOGLE_ZIP.read_bytes())
    m = parse_bytes(MS_GZ.read_bytes())
    assert report_key("dmarc_aggregate", g.detail) != report_key("dmarc_aggregate", m.detail)


def test_tls_reports(no_network):
    r = parse_bytes(GOOGLE_TLS.read_bytes())
    assert r.kind == "smtp_tls"
    assert r.report == {"organization_name": "Google Inc.", "report_id": "2024-01-09T00:00:00Z_example.com",
                        "begin": "2024-01-09T00:00:00Z", "end": "2024-01-09T23:59:59Z", "policies": 1,
                        "successful_sessions": 4127, "failed_sessions": 3}
    r2 = parse_bytes((SAMPLES / "tls/microsoft-tlsrpt-example.com-2024-01-09.json").read_bytes())
    assert (r2.report["policies"], r2.report["successful_sessions"], r2.report["failed_sessions"]) == (2, 2298, 5)
    mail = parse_bytes((SAMPLES / "tls/google-tls-report-mail.eml").read_bytes())
    assert mail.kind == "smtp_tls" and mail.report["successful_sessions"] == 3988
    assert report_key("smtp_tls", r.detail) == report_key("smtp_tls", r.report)
    assert report_key("smtp_tls", r.detail) != report_key("smtp_tls", mail.detail)


def test_failure_report(no_network):
    raw = (SAMPLES / "dmarc/dmarc-failure-report.eml").read_bytes()
    r = parse_bytes(raw)
    assert r.kind == "dmarc_failure"
    rep = r.report
    assert (rep["feedback_type"], rep["source_ip"], rep["reported_domain"], rep["arrival_date"]) == \
        ("auth-failure", "203.0.113.66", "example.com", "2024-01-11T07:44:58Z")
    assert rep["auth_failure"] == "dmarc" and rep["delivery_result"] == "spam"
    assert rep["original_from"] == "billing@example.com"
    assert rep["original_subject"] == "Invoice 2024-0117 overdue"
    key = report_key("dmarc_failure", r.detail)
    assert key == report_key("dmarc_failure", parse_bytes(raw.replace(b"\n", b"\r\n")).detail)


def test_plain_text_failure_report_without_arf_part(no_network):
    path = CORPUS / "parsedmarc/failure__exim_plain_text_only_no_arf_part.eml"
    if not path.exists():
        pytest.skip("corpus not present")
    r = parse_bytes(path.read_bytes())
    assert r.kind == "dmarc_failure" and r.report["source_ip"] == "203.0.113.68"


def test_corpus_dmarc_files_offline(no_network):
    folder = CORPUS / "parsedmarc"
    if not folder.exists():
        pytest.skip("corpus not present")
    for path in sorted(folder.iterdir()):
        r = parse_bytes(path.read_bytes())
        if path.name == "empty.xml":
            assert r.error
        else:
            assert r.error is None, (path.name, r.error)


def test_offline_is_passed_to_parsedmarc():
    from ingest.parsers.reports import _Parsedmarc

    parse_bytes(GOOGLE_ZIP.read_bytes(), IngestConfig(offline=True))
    _, cfg = _Parsedmarc.get(True)
    assert cfg.offline is True and cfg.always_use_local_files is True


def test_bounces_do_not_import_parsedmarc():
    code = ("import sys; from ingest.parse import parse_bytes; "
            f"parse_bytes(open({str(SAMPLES / 'bounces/postfix-user-unknown.eml')!r}, 'rb').read()); "
            f"parse_bytes(open({str(SAMPLES / 'broken/binary-garbage.bin')!r}, 'rb').read()); "
            "print('parsedmarc' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_invalid_reports_give_reasons():
    r = parse_bytes(b'<?xml version="1.0"?><feedback><report_metadata></feedback>')
    assert r.error.startswith("not a valid DMARC aggregate report")
    r = parse_bytes(b'{"organization-name": "x"}')
    assert r.error.startswith("not a valid SMTP TLS report")
    r = parse_bytes(io.BytesIO(b"\x00\x01binary").getvalue())
    assert r.error == "not a DMARC aggregate (XML) or SMTP TLS (JSON) report"


def test_report_key_rejects_other_kinds():
    with pytest.raises(ValueError):
        report_key("bounce", {})
