"""Conformance: every file of the shared corpus goes through the real pipeline into SQLite.

Nothing crashes, every input gets an outcome, every invalid file is quarantined with a
reason, and every DMARC/TLS report is stored with the numbers its manifest expects.
"""
import json
import logging

from sqlalchemy import select

from ingest.envelope import Envelope
from store import models as m


def test_the_whole_corpus_ingests(corpus, store, pipeline):
    logging.getLogger("parsedmarc").setLevel(logging.ERROR)
    manifest = json.loads((corpus / "manifest.json").read_text())
    items = [((corpus / c["file"]).read_bytes(), Envelope("file", c["file"])) for c in manifest]
    outcomes = {o.origin: o for o in pipeline.ingest_many(items, batch_size=100)}
    assert set(outcomes) == {c["file"] for c in manifest}
    problems = []
    with store() as s:
        for case in manifest:
            out = outcomes[case["file"]]
            if "internal parser error" in (out.error or ""):
                problems.append(f"{case['file']}: {out.error}")
            kind, exp = case["kind"], case.get("expect")
            if kind == "invalid":
                if out.status != "quarantined" or not out.error:
                    problems.append(f"{case['file']}: invalid file stored as {out.kind}/{out.status}")
                continue
            if out.kind != kind and not (kind == "complaint" and out.kind == "dmarc_failure"):
                problems.append(f"{case['file']}: kind {out.kind}, expected {kind}")
                continue
            if kind == "dmarc_aggregate":
                rep = s.scalars(select(m.DmarcAggregateReport).where(
                    m.DmarcAggregateReport.report_id == exp["report_id"],
                    m.DmarcAggregateReport.org_name == exp["org_name"])).first()
                if rep is None:
                    problems.append(f"{case['file']}: aggregate report {exp['report_id']} not stored")
                elif (rep.domain, rep.record_count, rep.message_count) != (exp["domain"], exp["records"], exp["messages"]):
                    problems.append(f"{case['file']}: stored {rep.domain} {rep.record_count} {rep.message_count}")
            elif kind == "smtp_tls":
                rep = s.scalars(select(m.TlsReport).where(
                    m.TlsReport.organization_name == exp["organization_name"])).first()
                if rep is None or (len(rep.policies), rep.successful_sessions, rep.failed_sessions) != (
                        exp["policies"], exp["successful_sessions"], exp["failed_sessions"]):
                    problems.append(f"{case['file']}: TLS report stored wrong or not at all")
            elif kind == "dmarc_failure":
                rep = s.scalars(select(m.DmarcFailureReport).where(
                    m.DmarcFailureReport.message_id == out.message_id)).first()
                if rep is None or rep.source_ip != exp["source_ip"]:
                    problems.append(f"{case['file']}: failure report stored wrong or not at all")
        quarantined = s.scalars(select(m.Quarantine)).all()
        assert all(q.reason for q in quarantined)
    assert problems == []
