"""DMARC records written in bulk (COPY on PostgreSQL, executemany on SQLite) hold exactly what
the ORM objects they replaced held, column by column, as the database keeps them."""
from __future__ import annotations

import gzip
import os
import logging

import pytest
from sqlalchemy import func, select, text

from ingest.envelope import Envelope
from ingest.parse import parse_bytes
from store import models as m
from store.timeparse import parse_when
from tests.conftest import ROOT
from tests.ingest.test_aggregate_reader import TWO, feedback

SAMPLES = ROOT / "sample_reports"
RECORD_COLUMNS = [c.name for c in m.DmarcRecord.__table__.columns if c.name not in ("id", "report_id")]
REPORT_COLUMNS = [c.name for c in m.DmarcAggregateReport.__table__.columns if c.name not in ("id", "report_id")]


@pytest.fixture(autouse=True)
def quiet():
    logging.getLogger("parsedmarc").setLevel(logging.CRITICAL)


def orm_report(message_id: int, rep: dict, report_id: str) -> m.DmarcAggregateReport:
    """How aggregate reports were written before the bulk path: one ORM object per record."""
    meta, pol = rep["report_metadata"], rep["policy_published"]
    begin, end = parse_when(meta["begin_date"]), parse_when(meta["end_date"])
    report = m.DmarcAggregateReport(
        message_id=message_id, org_name=meta["org_name"], org_email=meta.get("org_email"), report_id=report_id,
        domain=pol["domain"], begin=begin, end=end, policy=dict(pol), errors=meta.get("errors") or None,
        record_count=len(rep["records"]), message_count=sum(r["count"] for r in rep["records"]))
    report.records = []
    for r in rep["records"]:
        src, ident = r.get("source") or {}, r.get("identifiers") or {}
        align, pe = r.get("alignment") or {}, r.get("policy_evaluated") or {}
        auth = r.get("auth_results") or {}
        report.records.append(m.DmarcRecord(
            interval_begin=parse_when(r.get("interval_begin")) or begin,
            interval_end=parse_when(r.get("interval_end")) or end,
            source_ip=src.get("ip_address") or "", source_country=cut(src.get("country"), 2),
            source_reverse_dns=cut(src.get("reverse_dns"), 255), source_base_domain=cut(src.get("base_domain"), 255),
            count=int(r.get("count") or 0), disposition=pe.get("disposition") or r.get("disposition"),
            dkim_aligned=bool(align.get("dkim")), spf_aligned=bool(align.get("spf")),
            dmarc_pass=bool(align.get("dmarc")), header_from=cut(ident.get("header_from"), 255),
            envelope_from=cut(ident.get("envelope_from"), 255), envelope_to=cut(ident.get("envelope_to"), 255),
            dkim_results=auth.get("dkim") or None, spf_results=auth.get("spf") or None,
            policy_override_reasons=pe.get("policy_override_reasons") or None))
    return report


def cut(value, n):
    return None if value is None else str(value)[:n]


def as_stored(session, table: str, columns: list[str], key: str) -> dict[str, list[tuple]]:
    """Every row of `table` as the database keeps it (each column cast to text), by report id."""
    cols = ", ".join(f"CAST(t.{c} AS TEXT)" for c in columns)
    if table == "dmarc_records":
        sql = (f"SELECT r.report_id, {cols} FROM dmarc_records t "
               f"JOIN dmarc_aggregate_reports r ON r.id = t.report_id ORDER BY t.id")
    else:
        sql = f"SELECT t.report_id, {cols} FROM {table} t ORDER BY t.id"
    out: dict[str, list[tuple]] = {}
    for row in session.execute(text(sql)):
        out.setdefault(row[0].removeprefix(key), []).append(tuple(row[1:]))
    return out


def edge_report() -> bytes:
    """Values the columns cut, a country, no auth results, override reasons, envelope_to."""
    long = "x" * 300 + ".example.com"
    records = TWO.replace("<header_from>Example.COM</header_from>",
                          f"<header_from>{long}</header_from><envelope_from>{long}</envelope_from>"
                          f"<envelope_to>{long}</envelope_to>", 1)
    records = records.replace("<spf>fail</spf></policy_evaluated>",
                              "<spf>fail</spf><reason><type>forwarded</type><comment>via list</comment></reason>"
                              "</policy_evaluated>", 1)
    records += ("<record><row><source_ip>8.8.8.8</source_ip><count>123456789012</count><policy_evaluated>"
                "<disposition>reject</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>"
                "<identifiers><header_from>example.com</header_from></identifiers><auth_results/></record>")
    return feedback(records, meta="<error>partial</error>").replace("r-1", "edge-1").encode()


def inputs(tmp_path) -> list[bytes]:
    from bench.dmarc import generate

    raws = [p.read_bytes() for p in generate(tmp_path / "gen", reports=6, records=600, seed=5)]
    raws += [p.read_bytes() for p in sorted((SAMPLES / "dmarc").iterdir()) if "failure" not in p.name]
    raws.append(edge_report())
    return raws


def test_bulk_records_equal_what_orm_objects_stored(tmp_path, store, pipeline):
    raws = inputs(tmp_path)
    outs = list(pipeline.ingest_many([(raw, Envelope("file", f"r{i}")) for i, raw in enumerate(raws)]))
    assert all(o.kind == "dmarc_aggregate" and o.status == "parsed" for o in outs), [o.error for o in outs]
    with store.begin() as session:  # the same reports again, the way they were written before
        for out, raw in zip(outs, raws):
            result = parse_bytes(raw)
            for rep in [x["detail"] for x in result.reports] or [result.detail]:
                session.add(orm_report(out.message_id, rep, "old:" + str(rep["report_metadata"]["report_id"])))
    with store() as session:
        records = as_stored(session, "dmarc_records", RECORD_COLUMNS, "old:")
        reports = as_stored(session, "dmarc_aggregate_reports", REPORT_COLUMNS, "old:")
        total = session.scalar(text("SELECT count(*) FROM dmarc_records"))
    assert total == sum(len(rows) for rows in records.values()) > 1200
    for table in (records, reports):
        for report_id, rows in table.items():
            bulk, orm = rows[:len(rows) // 2], rows[len(rows) // 2:]
            assert len(bulk) == len(orm) and bulk == orm, report_id
    edge = records["edge-1"][:3]
    assert [r[RECORD_COLUMNS.index("count")] for r in edge] == ["3", "1", "123456789012"]
    assert len(edge[0][RECORD_COLUMNS.index("header_from")]) == 255
    assert edge[2][RECORD_COLUMNS.index("dkim_results")] == "null"  # JSON null, as the ORM wrote it


def test_a_batch_with_copies_and_a_broken_report(store, pipeline):
    """Copies inside one batch and across batches are stored once; a broken report is
    quarantined with its reason while the others of its batch are stored."""
    good = feedback(TWO).replace("r-1", "good-1").encode()
    other = feedback(TWO).replace("r-1", "good-2").encode()
    broken = (SAMPLES / "broken/aggregate-not-wellformed.xml").read_bytes()
    items = [(good, Envelope("file", "a")), (gzip.compress(good), Envelope("file", "b")), (broken, Envelope("file", "c")),
             (other, Envelope("file", "d"))]
    outs = {o.origin: o for o in pipeline.ingest_many(items)}
    again = pipeline.ingest(gzip.compress(other, mtime=1), Envelope("file", "e"))
    first, copy = sorted((outs["a"], outs["b"]), key=lambda o: o.status != "parsed")
    assert (first.status, copy.status, outs["d"].status) == ("parsed", "ignored", "parsed")
    assert f"from message {first.message_id}" in copy.error
    assert again.status == "ignored" and f"from message {outs['d'].message_id}" in again.error
    assert outs["c"].status == "quarantined" and outs["c"].error.startswith("not a valid DMARC aggregate report")
    with store() as session:
        stored = session.execute(select(m.DmarcAggregateReport.report_id, m.DmarcAggregateReport.message_id,
                                        m.DmarcAggregateReport.record_count)).all()
        records = session.execute(select(m.DmarcRecord.report_id, m.DmarcRecord.source_ip)).all()
        reason = session.scalar(select(m.Quarantine.reason).where(m.Quarantine.message_id == outs["c"].message_id))
    assert sorted(stored) == [("good-1", first.message_id, 2), ("good-2", outs["d"].message_id, 2)]
    assert len(records) == 4 and reason == outs["c"].error


def test_large_report_files_are_parsed_by_the_workers_a_few_at_a_time(tmp_path, store, monkeypatch):
    """Fewer than PARALLEL_MIN inputs still go to the worker processes when they are large, in
    chunks of about CHUNK_BYTES, and come back in input order, each stored once."""
    from bench.dmarc import generate
    from ingest import pipeline as pipeline_module

    assert [len(c) for c in pipeline_module._chunks(iter([(b"x" * 400_000,)] * 5), 64)] == [3, 2]
    assert [len(c) for c in pipeline_module._chunks(iter([(b"x",)] * 130), 64)] == [64, 64, 2]
    paths = generate(tmp_path / "gen", reports=8, records=800, seed=7)
    pids = tmp_path / "pids"
    real = pipeline_module.parse_bytes

    def parse_and_tell(raw, *args):
        with pids.open("a") as fh:
            fh.write(f"{os.getpid()}\n")
        return real(raw, *args)

    monkeypatch.setattr(pipeline_module, "parse_bytes", parse_and_tell)
    monkeypatch.setattr(pipeline_module, "PARALLEL_MIN_BYTES", sum(p.stat().st_size for p in paths) - 1)
    monkeypatch.setattr(pipeline_module, "CHUNK_BYTES", 1)
    items = [(p.read_bytes(), Envelope("file", p.name)) for p in paths]
    outs = list(pipeline_module.Pipeline(store).ingest_many(items, workers=2))
    assert [o.origin for o in outs] == [p.name for p in paths]
    assert all(o.status == "parsed" and o.events == 1 for o in outs)
    seen = pids.read_text().split()
    assert len(seen) == 8 and str(os.getpid()) not in seen
    with store() as session:
        assert session.scalar(select(func.count()).select_from(m.DmarcRecord)) == 800
