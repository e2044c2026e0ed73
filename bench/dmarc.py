#!/usr/bin/env python3
"""DMARC aggregate report ingest against parsedmarc's own CLI, on the same report files.

Generates (seeded, so every run sees the same bytes) --reports realistic RFC 7489 aggregate
reports holding --records records in all, a third each as .xml, .xml.gz and .zip, named the
way receivers name them (receiver!domain!begin!end). Then, in the same run:
- ingests the folder into a fresh store through the pipeline `postwatch ingest` runs
  (parse + store, every core), on --backend postgresql (BENCH_POSTGRES_URL) or sqlite;
- times `parsedmarc --offline FOLDER` (one process, its defaults: parse and print JSON);
- compares every stored record with parsedmarc's JSON output, field by field.
Prints records/s for both and the ratio; the goal is postwatch's parse + store at no less
than parsedmarc's parse-only rate (ratio >= 1.0), with the stored records equal.

    python bench/dmarc.py [--backend postgresql] [--reports 200] [--records 100000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path[0] = str(ROOT)  # this folder holds ingest.py, which must not shadow the package

from bench.benchlib import add_backend_argument, database_url, report  # noqa: E402

# --- the reports -----------------------------------------------------------------------

# (org_name, email, extra_contact_info, style): the shapes real receivers send
REPORTERS = [
    ("google.com", "noreply-dmarc-support@google.com", "https://support.google.com/a/answer/2466580", "google"),
    ("Enterprise Outlook", "dmarcreport@microsoft.com", None, "microsoft"),
    ("Outlook.com", "dmarcreport@microsoft.com", None, "microsoft"),
    ("Yahoo", "dmarchelp@yahooinc.com", None, "yahoo"),
    ("Mail.Ru", "dmarc_support@corp.mail.ru", "http://help.mail.ru/mail-help", "plain"),
    ("comcast.net", "dmarc_rua@comcast.net", None, "plain"),
    ("AMAZON-SES", "postmaster@amazonses.com", None, "plain"),
    ("Fastmail Pty Ltd", "dmarc-reports@fastmail.com", None, "plain"),
    ("zoho.com", "noreply-dmarc@zoho.com", None, "plain"),
    ("Seznam.cz a.s.", "dmarc@seznam.cz", None, "plain"),
    ("GMX", "dmarc_agg@gmx.net", None, "plain"),
    ("WEB.DE", "dmarc_agg@web.de", None, "plain"),
    ("Proofpoint", "dmarc_rua@emaildefense.proofpoint.com", None, "plain"),
    ("Mimecast", "dmarc-reports@mimecast.org", None, "plain"),
    ("t-online.de", "noreply-dmarc@t-online.de", None, "plain"),
    ("Orange", "dmarc.rua@orange.fr", None, "plain"),
]
DOMAINS = ["example.com", "example.net", "example.org", "news.example.com", "mail.example.org",
           "Example.COM"]
# first octets of ranges real senders use, and some the world sends from at random
SENDER_NETS = ["209.85", "74.125", "40.92", "40.107", "52.100", "54.240", "167.89", "198.2",
               "149.72", "168.245", "192.0.2", "198.51.100", "203.0.113", "185.70", "93.184",
               "81.169", "212.227", "217.72", "77.88", "5.45"]
SELECTORS = ["google", "selector1", "selector2", "s1", "s2", "k1", "20230601", "dkim", "mail", "pm"]
DKIM_RESULTS = ["pass"] * 12 + ["fail"] * 3 + ["neutral", "none", "temperror", "permerror", "policy", "Pass"]
SPF_RESULTS = ["pass"] * 10 + ["fail"] * 2 + ["softfail"] * 2 + ["neutral", "none", "temperror", "permerror"]
REASONS = [("forwarded", "looks forwarded, downgrade to none"), ("local_policy", "arc=pass"),
           ("mailing_list", "list detected"), ("sampled_out", None), ("trusted_forwarder", ""),
           ("local_policy", "arc=pass as.1.google.com=pass ams.1.google.com=pass"), ("other", "bulk")]


def _ip_pool(rnd: random.Random, n: int) -> list[str]:
    pool = set()
    while len(pool) < n:
        if rnd.random() < 0.08:
            pool.add(f"2a00:1450:{rnd.randrange(0x4000, 0x4fff):x}:{rnd.randrange(0x800, 0x80f):x}::"
                     f"{rnd.randrange(1, 0xffff):x}")
        elif rnd.random() < 0.7:
            net = rnd.choice(SENDER_NETS)
            rest = 4 - net.count(".") - 1
            pool.add(net + "".join(f".{rnd.randrange(1, 255)}" for _ in range(rest)))
        else:
            pool.add(f"{rnd.randrange(1, 224)}." + ".".join(str(rnd.randrange(256)) for _ in range(3)))
    return sorted(pool)


def _sizes(rnd: random.Random, reports: int, records: int) -> list[int]:
    """Records per report: most reports are small, a few receivers send thousands of rows."""
    weights = [rnd.lognormvariate(0, 1.1) for _ in range(reports)]
    total = sum(weights)
    sizes = [max(1, int(w / total * records)) for w in weights]
    i = 0
    while sum(sizes) != records:  # exact total, spread over the reports
        step = 1 if sum(sizes) < records else -1
        if sizes[i % reports] + step >= 1:
            sizes[i % reports] += step
        i += 1
    return sizes


def _record(rnd: random.Random, ips: list[str], domain: str, style: str) -> str:
    # a few addresses send much of the mail, the rest of the world a little each
    ip = ips[int(rnd.paretovariate(1.2)) % min(100, len(ips))] if rnd.random() < 0.4 else rnd.choice(ips)
    count = max(1, int(rnd.paretovariate(1.1)))
    dom = domain.lower()
    dkim_ok, spf_ok = rnd.random() < 0.8, rnd.random() < 0.75
    disposition = "none" if (dkim_ok or spf_ok) or rnd.random() < 0.6 else rnd.choice(["quarantine", "reject"])
    pe = [f"<disposition>{disposition}</disposition>",
          f"<dkim>{'pass' if dkim_ok else 'fail'}</dkim>", f"<spf>{'pass' if spf_ok else 'fail'}</spf>"]
    for _ in range(rnd.choice([0] * 8 + [1, 1, 2])):
        rtype, comment = rnd.choice(REASONS)
        if comment is None:
            pe.append(f"<reason><type>{rtype}</type></reason>")
        else:
            pe.append(f"<reason><type>{rtype}</type><comment>{escape(comment)}</comment></reason>")
    header_from = rnd.choice([dom] * 6 + [domain, f"bounce.{dom}", "example.net"])
    ident = [f"<header_from>{header_from}</header_from>"]
    env_from = rnd.random()
    if env_from < 0.6:
        ident.insert(0 if style == "microsoft" else 1, f"<envelope_from>{rnd.choice([dom, 'mail.' + dom, 'bounces.example.net'])}</envelope_from>")
    elif env_from < 0.75:
        ident.insert(0, "<envelope_from></envelope_from>")
    if style == "microsoft":
        ident.insert(0, f"<envelope_to>{rnd.choice(['outlook.com', 'hotmail.com', 'contoso.example'])}</envelope_to>")
    auth = []
    for _ in range(rnd.choice([0, 1, 1, 1, 2, 2, 3])):
        d = rnd.choice([dom, "example.net", f"{rnd.choice(['esp', 'mta', 'em'])}{rnd.randrange(9)}.example.org"])
        parts = [f"<domain>{d}</domain>"]
        if rnd.random() < 0.93:
            parts.append(f"<selector>{rnd.choice(SELECTORS)}</selector>")
        parts.append(f"<result>{rnd.choice(DKIM_RESULTS)}</result>")
        if rnd.random() < 0.05:
            parts.append("<human_result>signature verified</human_result>")
        auth.append("<dkim>" + "".join(parts) + "</dkim>")
    for _ in range(rnd.choice([1, 1, 1, 1, 2])):
        parts = [f"<domain>{rnd.choice([dom, 'mail.' + dom, 'bounces.example.net', 'relay.example.org'])}</domain>"]
        if rnd.random() < 0.85:
            parts.append(f"<scope>{rnd.choice(['mfrom'] * 5 + ['helo'])}</scope>")
        parts.append(f"<result>{rnd.choice(SPF_RESULTS)}</result>")
        auth.append("<spf>" + "".join(parts) + "</spf>")
    nl = "\n      " if style != "google" else ""
    return (f"<record><row><source_ip>{ip}</source_ip><count>{count}</count>"
            f"<policy_evaluated>{''.join(pe)}</policy_evaluated></row>{nl}"
            f"<identifiers>{''.join(ident)}</identifiers>{nl}"
            f"<auth_results>{''.join(auth)}</auth_results></record>\n")


def _report(rnd: random.Random, n: int, serial: int, ips: list[str]) -> tuple[str, str]:
    org, mail, extra, style = rnd.choice(REPORTERS)
    domain = rnd.choice(DOMAINS)
    day = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp() + 86400 * rnd.randrange(120)
    begin = int(day)
    end = begin + (86400 if style == "microsoft" else 86399)
    report_id = {"google": str(rnd.randrange(10 ** 19, 10 ** 20)),
                 "microsoft": f"{rnd.getrandbits(128):032x}",
                 "yahoo": f"{begin}.{rnd.randrange(10 ** 5, 10 ** 6)}"}.get(style, f"{serial}.{begin}@{org.lower().replace(' ', '')}")
    head = '<?xml version="1.0" encoding="UTF-8" ?>\n'
    if style == "microsoft":
        head += ('<feedback xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
                 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n  <version>1.0</version>\n')
    else:
        head += "<feedback>\n"
    meta = [f"<org_name>{escape(org)}</org_name>", f"<email>{mail}</email>"]
    if extra:
        meta.append(f"<extra_contact_info>{escape(extra)}</extra_contact_info>")
    meta += [f"<report_id>{escape(report_id)}</report_id>",
             f"<date_range><begin>{begin}</begin><end>{end}</end></date_range>"]
    if rnd.random() < 0.03:
        meta.append("<error>some records were dropped: source_ip not parseable</error>")
    p = rnd.choice(["none", "none", "quarantine", "reject"])
    pol = [f"<domain>{domain}</domain>", f"<adkim>{rnd.choice('rs')}</adkim>", f"<aspf>{rnd.choice('rs')}</aspf>",
           f"<p>{p}</p>", f"<sp>{rnd.choice([p, 'none', 'reject'])}</sp>", f"<pct>{rnd.choice([100] * 5 + [25, 50])}</pct>"]
    if style in ("microsoft", "yahoo"):
        pol.append(f"<fo>{rnd.choice(['0', '1', 'd:s'])}</fo>")
    if rnd.random() < 0.3:
        pol = [x for x in pol if not x.startswith(("<adkim", "<aspf"))]
    body = (f"  <report_metadata>{''.join(meta)}</report_metadata>\n"
            f"  <policy_published>{''.join(pol)}</policy_published>\n")
    records = "".join(_record(rnd, ips, domain, style) for _ in range(n))
    receiver = mail.rsplit("@", 1)[1]
    name = f"{receiver}!{domain.lower()}!{begin}!{end}" + ("" if style == "google" else f"!{serial}")
    return name, head + body + records + "</feedback>\n"


def generate(folder: Path, reports: int = 200, records: int = 100_000, seed: int = 9) -> list[Path]:
    """Write the reports into `folder`; the same arguments always give the same bytes."""
    rnd = random.Random(seed)
    ips = _ip_pool(rnd, max(50, records // 8))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, n in enumerate(_sizes(rnd, reports, records)):
        name, xml = _report(rnd, n, i, ips)
        data = xml.encode("utf-8")
        if i % 3 == 0:
            path = folder / f"{name}.xml"
            path.write_bytes(data)
        elif i % 3 == 1:
            path = folder / f"{name}.xml.gz"
            path.write_bytes(gzip.compress(data, mtime=0))
        else:
            path = folder / f"{name}.zip"
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr(zipfile.ZipInfo(f"{name}.xml", (2024, 1, 1, 0, 0, 0)), data,
                           compress_type=zipfile.ZIP_DEFLATED)
            path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths


# --- timing ------------------------------------------------------------------------------

def _run(cmd: list[str], env: dict | None = None, stdout=subprocess.PIPE) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:2])} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return secs


def time_postwatch(folder: Path, url: str) -> float:
    """`postwatch ingest FOLDER` into the store at `url`, start-up included (the store is migrated first)."""
    import os

    from store.config import DatabaseConfig
    from store.engine import forget_engine, upgrade

    upgrade(DatabaseConfig(url=url))
    forget_engine(url)
    exe = Path(sys.executable).with_name("postwatch")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "postwatch.cli"]
    env = {**os.environ, "POSTWATCH_DATABASE__URL": url}
    return _run(cmd + ["ingest", "--no-progress", "--json", str(folder)], env)


def time_parsedmarc(folder: Path, out: Path) -> float:
    """parsedmarc's CLI as its users run it: one process, offline, its JSON on stdout."""
    exe = Path(sys.executable).with_name("parsedmarc")
    if not exe.exists():
        raise SystemExit(f"parsedmarc's CLI is not at {exe}")
    with out.open("wb") as fh:
        return _run([str(exe), "--offline", str(folder)], stdout=fh)


# --- comparing ---------------------------------------------------------------------------

FIELDS = ("interval_begin", "interval_end", "source_ip", "source_country", "source_reverse_dns",
          "source_base_domain", "count", "disposition", "dkim_aligned", "spf_aligned", "dmarc_pass",
          "header_from", "envelope_from", "envelope_to", "dkim_results", "spf_results",
          "policy_override_reasons")


def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


def expected_records(rep: dict) -> list[dict]:
    """What the store should hold for each of parsedmarc's records (an empty list is stored as null)."""
    out = []
    for r in rep["records"]:
        src, pe, al, ident = r["source"], r["policy_evaluated"], r["alignment"], r["identifiers"]
        out.append({"interval_begin": _utc(r["interval_begin"]), "interval_end": _utc(r["interval_end"]),
                    "source_ip": src["ip_address"], "source_country": src["country"],
                    "source_reverse_dns": src["reverse_dns"], "source_base_domain": src["base_domain"],
                    "count": r["count"], "disposition": pe["disposition"], "dkim_aligned": al["dkim"],
                    "spf_aligned": al["spf"], "dmarc_pass": al["dmarc"], "header_from": ident["header_from"],
                    "envelope_from": ident["envelope_from"], "envelope_to": ident["envelope_to"],
                    "dkim_results": r["auth_results"]["dkim"] or None, "spf_results": r["auth_results"]["spf"] or None,
                    "policy_override_reasons": pe["policy_override_reasons"] or None})
    return out


def compare(url: str, parsedmarc_json: Path) -> tuple[int, int, str]:
    """(records compared, records differing, an example) between the store and parsedmarc's output."""
    from sqlalchemy import select

    from store import models as m
    from store.config import DatabaseConfig
    from store.engine import forget_engine, session_factory
    from store.timeparse import utc

    theirs = {(r["report_metadata"]["org_name"], r["report_metadata"]["report_id"]): r
              for r in json.loads(parsedmarc_json.read_bytes())["aggregate_reports"]}
    compared = differing = 0
    example = ""
    with session_factory(DatabaseConfig(url=url))() as session:
        reports = session.execute(select(m.DmarcAggregateReport)).scalars().all()
        rows = session.execute(select(m.DmarcRecord).order_by(m.DmarcRecord.id)).scalars().all()
        by_report: dict[int, list] = {}
        for row in rows:
            by_report.setdefault(row.report_id, []).append(row)
        ours = {(r.org_name, r.report_id): (r, by_report.get(r.id, [])) for r in reports}
        for key in sorted(set(ours) | set(theirs)):
            if key not in ours or key not in theirs:
                n = len(theirs[key]["records"]) if key in theirs else len(ours[key][1])
                differing += n
                compared += n
                example = example or f"report {key} is only in {'parsedmarc' if key in theirs else 'the store'}"
                continue
            report, stored = ours[key]
            want = expected_records(theirs[key])
            meta = theirs[key]["report_metadata"]
            head = {"org_email": meta["org_email"], "domain": theirs[key]["policy_published"]["domain"],
                    "begin": _utc(meta["begin_date"]), "end": _utc(meta["end_date"]),
                    "policy": theirs[key]["policy_published"], "record_count": len(want),
                    "message_count": sum(w["count"] for w in want)}
            got_head = {k: getattr(report, k) for k in head}
            got_head["begin"], got_head["end"] = utc(report.begin), utc(report.end)
            if got_head != head:
                example = example or f"report {key}: stored {got_head} != parsedmarc {head}"
            compared += max(len(want), len(stored))
            differing += abs(len(want) - len(stored))
            for row, w in zip(stored, want):
                got = {f: getattr(row, f) for f in FIELDS}
                got["interval_begin"], got["interval_end"] = utc(row.interval_begin), utc(row.interval_end)
                if got != w:
                    differing += 1
                    if not example:
                        bad = {f: (got[f], w[f]) for f in FIELDS if got[f] != w[f]}
                        example = f"report {key}, record {row.id}: (stored, parsedmarc) {bad}"
    forget_engine(url)
    if example and not differing:
        differing = 1  # a report's own fields differ
    return compared, differing, example


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_backend_argument(ap)
    ap.set_defaults(backend="postgresql")
    ap.add_argument("--reports", type=int, default=200)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--keep", type=Path, help="write the reports and parsedmarc's output here and keep them")
    a = ap.parse_args()
    logging.getLogger("parsedmarc").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        work = a.keep or Path(tmp)
        folder = work / "reports"
        if folder.exists():
            for old in folder.iterdir():
                old.unlink()
        paths = generate(folder, a.reports, a.records, a.seed)
        size = sum(p.stat().st_size for p in paths)
        print(f"reports             {len(paths)} files ({size / 1048576:.1f} MB: xml, xml.gz, zip), "
              f"{a.records} records")
        with database_url(a.backend) as url:
            ours = time_postwatch(folder, url)
            theirs = time_parsedmarc(folder, work / "parsedmarc.json")
            compared, differing, example = compare(url, work / "parsedmarc.json")
    ours_rate, theirs_rate = a.records / ours, a.records / theirs
    ratio = ours_rate / theirs_rate
    equal = differing == 0 and compared == a.records
    print(f"postwatch ingest    {ours_rate:8.0f} records/s  ({ours:.1f} s: parse + store into {a.backend}, "
          "start-up included)")
    print(f"parsedmarc --offline{theirs_rate:8.0f} records/s  ({theirs:.1f} s: parse only, one process)")
    print(f"ratio               {ratio:8.2f}x  (goal: at least 1.0x)")
    print("records equal: yes" if equal else
          f"records equal: no, {differing} of {compared} differ; e.g. {example}")
    report("dmarc", a.backend, "DMARC report ingest vs parsedmarc --offline", round(ratio, 2), "×", "≥ 1.0×",
           ratio >= 1.0, f"postwatch {ours_rate:.0f} records/s, parsedmarc {theirs_rate:.0f} records/s")
    report("dmarc", a.backend, "stored DMARC records differing from parsedmarc", differing, "records", "0",
           equal, f"{compared} records compared")


if __name__ == "__main__":
    main()
