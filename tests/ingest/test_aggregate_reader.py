"""The fast aggregate report reader gives exactly parsedmarc's result, or hands the report over.

Every sample and corpus DMARC file, generated reports and hand-made shapes are parsed twice:
with `ingest.parsers.aggregate` and with parsedmarc alone; the results (report, detail,
several reports, quarantine reason) must be equal. The plain shapes must be read by the fast
reader itself; the others must be handed to parsedmarc.
"""
from __future__ import annotations

import json
import logging

import pytest

from ingest.config import IngestConfig
from ingest.parse import parse_bytes
from ingest.parsers import aggregate, reports
from ingest.parsers.aggregate import NotPlain, read_aggregate
from tests.conftest import CORPUS, ROOT

SAMPLES = ROOT / "sample_reports"


@pytest.fixture(autouse=True)
def quiet():
    logging.getLogger("parsedmarc").setLevel(logging.CRITICAL)


def parsedmarc_and_config():
    pm, cfg = reports._Parsedmarc.get(True)
    assert aggregate.mirrors(pm), (
        f"parsedmarc {pm.__version__} is installed, but ingest/parsers/aggregate.py mirrors the rules of "
        f"{aggregate.READS_LIKE}: compare them with the new release's parse_aggregate_report_xml, "
        "then add it to READS_LIKE")
    return pm, cfg


def both(raw: bytes, monkeypatch) -> tuple:
    """(fast result, parsedmarc's result, how many reports the fast reader read itself)."""
    used = []

    def counting(*args, **kwargs):
        out = read_aggregate(*args, **kwargs)
        used.append(out)
        return out

    config = IngestConfig(offline=True)
    with monkeypatch.context() as patch:
        patch.setattr(reports, "read_aggregate", counting)
        fast = parse_bytes(raw, config)
    with monkeypatch.context() as patch:
        patch.setattr(reports._Parsedmarc, "fast", False)
        slow = parse_bytes(raw, config)
    return fast, slow, len(used)


def same(fast, slow) -> None:
    assert (fast.kind, fast.error, fast.report, fast.reports) == (slow.kind, slow.error, slow.report, slow.reports)
    assert fast.detail == slow.detail
    assert as_json(fast.detail) == as_json(slow.detail)  # the same order too: the store keeps JSON text


def as_json(value) -> str:
    return json.dumps(value, default=str)


def test_sample_and_corpus_reports_read_the_same(monkeypatch):
    parsedmarc_and_config()
    files = sorted((SAMPLES / "dmarc").iterdir()) + sorted((SAMPLES / "broken").iterdir())
    if (CORPUS / "parsedmarc").is_dir():
        files += sorted((CORPUS / "parsedmarc").iterdir())
    fast_read = {}
    for path in files:
        fast, slow, used = both(path.read_bytes(), monkeypatch)
        same(fast, slow)
        fast_read[path.name] = used
    # the sample aggregate reports are all of the plain shape
    for path in (SAMPLES / "dmarc").iterdir():
        if "aggregate" in path.name or path.suffix in (".zip", ".gz"):
            assert fast_read[path.name] == 1, path.name
    assert sum(fast_read.values()) >= 3


def test_generated_reports_read_the_same(tmp_path, monkeypatch):
    from bench.dmarc import generate

    parsedmarc_and_config()
    for path in generate(tmp_path, reports=9, records=900, seed=3):
        fast, slow, used = both(path.read_bytes(), monkeypatch)
        assert used == 1 and fast.error is None, path.name
        same(fast, slow)


RECORD = """<record><row><source_ip>{ip}</source_ip><count>{count}</count>
  <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>
  <identifiers><header_from>Example.COM</header_from></identifiers>
  <auth_results><dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim>
  <spf><domain>Bounce.Example.com</domain><result>softfail</result></spf></auth_results></record>"""


def feedback(records: str = RECORD.format(ip="192.0.2.1", count=3), *, root: str = "<feedback>",
             meta: str = "", policy: str = "<p>none</p>", begin: str = "1704758400", end: str = "1704844799",
             head: str = '<?xml version="1.0" encoding="UTF-8"?>\n', org: str = "<org_name>google.com</org_name>") -> str:
    return (f"{head}{root}<report_metadata>{org}<email>noreply@google.com</email>"
            f"<report_id>r-1</report_id><date_range><begin>{begin}</begin><end>{end}</end></date_range>{meta}"
            f"</report_metadata><policy_published><domain>example.com</domain>{policy}</policy_published>"
            f"{records}</feedback>\n")


TWO = RECORD.format(ip="192.0.2.1", count=3) + RECORD.format(ip="2001:db8::5", count=1)

PLAIN = {
    "one record": feedback(),
    "two records": feedback(TWO),
    "rfc 9990 namespace and fields": feedback(
        TWO.replace("<selector>s1</selector>", "").replace("<result>pass</result>",
                                                           "<result>pass</result><human_result>ok</human_result>"),
        root='<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0"><version>1.0</version>',
        meta="<generator>acme 1.2</generator>",
        policy="<p>reject</p><np>quarantine</np><testing>n</testing><discovery_method>treewalk</discovery_method>"),
    "microsoft root attributes and envelope_to": feedback(
        TWO.replace("<identifiers>", "<identifiers><envelope_to>outlook.com</envelope_to>"),
        root='<feedback xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
             'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><version>1.0</version>'),
    "identities": feedback(TWO.replace("identifiers>", "identities>")),
    "empty envelope_from is taken from spf": feedback(
        TWO.replace("<identifiers>", "<identifiers><envelope_from></envelope_from>")),
    "envelope_from given": feedback(
        TWO.replace("</header_from>", "</header_from><envelope_from>Mail.Example.com</envelope_from>")),
    "no auth results": feedback(RECORD.format(ip="192.0.2.9", count=1).split("<auth_results>")[0]
                                + "<auth_results/></record>"),
    "only dkim": feedback(RECORD.format(ip="192.0.2.9", count=1).replace(
        "<spf><domain>Bounce.Example.com</domain><result>softfail</result></spf>", "")),
    "results without domain, selector, scope or result": feedback(TWO.replace(
        "<dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim>",
        "<dkim><selector>s1</selector></dkim><dkim><domain>a.example</domain></dkim>").replace(
        "<result>softfail</result>", "")),
    "override reasons": feedback(TWO.replace(
        "<spf>fail</spf></policy_evaluated>",
        "<spf>fail</spf><reason><type>forwarded</type></reason><reason><type>local_policy</type>"
        "<comment>arc=pass</comment></reason></policy_evaluated>", 1).replace(
        "<spf>fail</spf></policy_evaluated>", "<spf>fail</spf><reason><type>mailing_list</type><comment/></reason>"
        "</policy_evaluated>")),
    "upper-case words": feedback(TWO.replace("<disposition>none", "<disposition>Quarantine").replace(
        "<dkim>pass</dkim>", "<dkim>Pass</dkim>").replace("<result>pass</result>", "<result>PASS</result>")),
    "policy published twice, defaults": feedback(policy="<p>quarantine</p></policy_published><policy_published>"
                                                 "<domain>other.example</domain><p>none</p>"),
    "full policy": feedback(policy="<adkim>s</adkim><aspf>s</aspf><p>reject</p><sp>none</sp><pct>50</pct>"
                                   "<fo>1</fo>"),
    "errors and extra contact": feedback(meta="<error>one</error><error/><error>two</error>"
                                              "<extra_contact_info>https://example.com</extra_contact_info>"),
    "org name from email": feedback(org="<org_name/>"),
    "org name with spaces": feedback(org="<org_name>Enterprise Outlook</org_name>"),
    "org name base domain": feedback(org="<org_name>Mail.Ru</org_name>"),
    "report id in brackets": feedback().replace("<report_id>r-1</report_id>",
                                                "<report_id>&lt;abc.123@mail.example&gt;</report_id>"),
    "whitespace everywhere": feedback(RECORD.format(ip="\n  192.0.2.7  ", count=" 5 ").replace("><", ">\n  <")),
    "dates with fractions and a 24 hour span": feedback(begin="1704758400.0", end="1704844800"),
    "no xml declaration": feedback(head=""),
    "empty header_from": feedback(RECORD.format(ip="192.0.2.1", count=1).replace(
        "<header_from>Example.COM</header_from>", "<header_from/>")),
    "character references": feedback(RECORD.format(ip="192.0.2.1", count=1).replace(
        "s1", "s&#49;&amp;x")),
}

NOT_PLAIN = {
    "span split by day": feedback(TWO, end="1705017600"),
    "comment": feedback(TWO.replace("<row>", "<row><!-- hello -->")),
    "cdata": feedback(RECORD.format(ip="<![CDATA[192.0.2.1]]>", count=1)),
    "attribute": feedback(TWO.replace(
        "<spf>fail</spf></policy_evaluated>",
        '<spf>fail</spf><reason><type>other</type><comment xml:lang="en">x</comment></reason></policy_evaluated>')),
    "prefixed elements": feedback(TWO.replace("<record>", "<d:record>").replace("</record>", "</d:record>"),
                                  root='<feedback xmlns:d="urn:x">'),
    "prefix naming the default namespace": feedback(
        TWO.replace("<record>", "<d:record>").replace("</record>", "</d:record>"),
        root='<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0" xmlns:d="urn:ietf:params:xml:ns:dmarc-2.0">'),
    "namespace declared inside": feedback(TWO.replace("<record>", '<record xmlns="urn:x">', 1)),
    "mixed text": feedback(TWO.replace("<row>", "<row>text", 1)),
    "record without source_ip": feedback(TWO.replace("192.0.2.1", "", 1)),
    "record without spf result": feedback(TWO.replace("<spf>fail</spf>", "", 1)),
    "single record without spf result": feedback(RECORD.format(ip="192.0.2.1", count=1).replace(
        "<spf>fail</spf>", "")),
    "not well-formed": feedback(TWO.replace("</count>", "</cnt>", 1)),
    "no report_metadata": feedback().replace("report_metadata>", "meta>"),
    "no records": feedback(""),
    "root is not feedback": feedback(root="<feedbacks>").replace("</feedback>", "</feedbacks>"),
    "xml 1.1": feedback(head='<?xml version="1.1"?>'),
    "processing instruction": feedback(TWO.replace("<row>", "<?pi x?><row>", 1)),
    "count not a number": feedback(RECORD.format(ip="192.0.2.1", count="many")),
}


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_shapes_are_read_fast_and_the_same(name, monkeypatch):
    pm, cfg = parsedmarc_and_config()
    text = PLAIN[name]
    assert as_json(read_aggregate(text, pm, cfg, {})) == as_json(pm.parse_aggregate_report_xml(text, config=cfg))
    fast, slow, used = both(text.encode(), monkeypatch)
    assert used == 1 and fast.error is None
    same(fast, slow)


@pytest.mark.parametrize("name", sorted(NOT_PLAIN))
def test_other_shapes_go_to_parsedmarc_with_the_same_result(name, monkeypatch):
    pm, cfg = parsedmarc_and_config()
    text = NOT_PLAIN[name]
    with pytest.raises(NotPlain):
        read_aggregate(text, pm, cfg, {})
    fast, slow, used = both(text.encode(), monkeypatch)
    assert used == 0
    same(fast, slow)


def test_an_address_is_enriched_by_parsedmarc_and_kept_offline(monkeypatch):
    from parsedmarc import utils

    pm, cfg = parsedmarc_and_config()
    calls = []
    real = utils.get_ip_address_info

    def counting(ip, **kwargs):
        calls.append(ip)
        return real(ip, **kwargs)

    monkeypatch.setattr(utils, "get_ip_address_info", counting)
    sources: dict = {}
    out = read_aggregate(feedback(TWO + TWO), pm, cfg, sources)
    assert [r["source"]["ip_address"] for r in out["records"]] == ["192.0.2.1", "2001:db8::5"] * 2
    assert calls == ["192.0.2.1", "2001:db8::5"] and set(sources) == {"192.0.2.1", "2001:db8::5"}
    read_aggregate(feedback(TWO), pm, cfg, sources)
    assert len(calls) == 2  # the next report finds them kept


def test_another_parsedmarc_release_is_left_to_parsedmarc(monkeypatch):
    class Other:
        __version__ = "99.0.0"

    assert not aggregate.mirrors(Other)
    monkeypatch.setattr(reports._Parsedmarc, "fast", False)
    monkeypatch.setattr(reports, "read_aggregate", lambda *a, **k: pytest.fail("fast reader used"))
    assert parse_bytes(PLAIN["two records"].encode(), IngestConfig(offline=True)).error is None

