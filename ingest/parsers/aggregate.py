"""DMARC aggregate report XML, read fast into exactly the report parsedmarc makes of it.

parsedmarc turns the XML into dictionaries with xmltodict, twice, in pure Python: that is
most of its time. This reads the XML once with ElementTree's C parser (the same expat, so it
accepts the same documents) and applies parsedmarc's own rules to the result: the org name's
base domain, the report id, the dates, the policy defaults, and per record the IP address
enrichment (parsedmarc's `get_ip_address_info`, with the configuration's cache), alignment,
override reasons, identifiers and auth results.

It reads the shape reports have: elements without attributes, namespace prefixes, comments
or text mixed with elements, and a time span parsedmarc does not split by day. Anything
else, and anything parsedmarc would warn about or refuse, raises `NotPlain`, and the caller
hands the report to parsedmarc itself; so the result is always parsedmarc's.
tests/ingest/test_aggregate_reader.py compares the two readers on every sample and corpus
report. The rules are those of the parsedmarc release in READS_LIKE; with another release
installed, every report goes to parsedmarc.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

READS_LIKE = ("11.1.",)  # the parsedmarc releases whose aggregate rules are mirrored here

_PROLOG = re.compile(r"\s*(<\?xml\s+version\s*=\s*[\"']1\.0[\"'][^<>?]*\?>)?\s*")


class NotPlain(Exception):
    """This report is not of the plain shape read here: parsedmarc must read it."""


def mirrors(parsedmarc_module: Any) -> bool:
    """Whether the installed parsedmarc applies the rules mirrored here."""
    return str(getattr(parsedmarc_module, "__version__", "")).startswith(READS_LIKE)


def read_aggregate(text: str, pm: Any, cfg: Any, sources: dict[str, Any] | None = None) -> dict[str, Any]:
    """parsedmarc's `parse_aggregate_report_xml(text, config=cfg)`, for a plain report.

    `pm` is the parsedmarc module; raises NotPlain when parsedmarc must read it instead.
    `sources` (offline only) keeps each IP address's enrichment for the next report: offline,
    parsedmarc's answer for an address never changes, but it looks up again the many that
    its own cache leaves out.
    """
    start = text.find("<feedback")
    if start < 0 or not _PROLOG.fullmatch(text, 0, start):
        raise NotPlain("no plain <feedback> root")
    root_end = text.find(">", start)
    if text.find("<!", start) >= 0 or text.find("<?", start) >= 0 or text.find("xmlns", root_end) >= 0:
        raise NotPlain("comments, CDATA, processing instructions or namespaces inside the report")
    try:
        root = ET.fromstring(text)
    except (ET.ParseError, ValueError) as exc:
        raise NotPlain(str(exc)) from exc
    ns = root.tag[:-len("feedback")]
    if ns:
        # xmltodict keeps prefixes: only a default namespace, declared on the root, reads the same
        if not (ns[0] == "{" and ns[-1] == "}" and root.tag.endswith("}feedback")):
            raise NotPlain("root element is not <feedback>")
        uri = re.escape(ns[1:-1])
        if re.search(rf"xmlns:[^\s=]+\s*=\s*[\"']{uri}[\"']", text[start:root_end]):
            raise NotPlain("a namespace prefix names the report's own namespace")
    try:
        report = _children(root, ns)
        return _report(report, text[:root_end + 1], pm, cfg, sources if cfg.offline else None)
    except NotPlain:
        raise
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, OverflowError) as exc:
        # parsedmarc reads it, or says why not (a date past what the platform holds...)
        raise NotPlain(f"{type(exc).__name__}: {exc}") from exc


# --- the XML as xmltodict gives it (for the plain shape) ---------------------------------

def _children(el: ET.Element, ns: str) -> dict[str, Any]:
    """An element with children as xmltodict makes it: a repeated name becomes a list."""
    text = el.text
    if text and not text.isspace():
        raise NotPlain("text mixed with elements")
    out: dict[str, Any] = {}
    cut = len(ns)
    for child in el:
        tag = child.tag
        if cut:
            if not tag.startswith(ns):
                raise NotPlain("element outside the report's namespace")
            tag = tag[cut:]
        elif tag[0] == "{":
            raise NotPlain("namespaced element")
        if child.attrib:
            raise NotPlain(f"<{tag}> has attributes")
        tail = child.tail
        if tail and not tail.isspace():
            raise NotPlain("text mixed with elements")
        if len(child):
            value: Any = _children(child, ns)
        else:
            value = child.text
            if value is not None:
                value = value.strip() or None
        if tag in out:
            have = out[tag]
            if type(have) is list:
                have.append(value)
            else:
                out[tag] = [have, value]
        else:
            out[tag] = value
    return out


# --- parsedmarc's rules ---------------------------------------------------------------------

def _str(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    raise NotPlain("an element parsedmarc reads as text has children")


def _word(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _report(report: dict[str, Any], head: str, pm: Any, cfg: Any, sources: dict | None) -> dict[str, Any]:
    from parsedmarc.utils import get_base_domain, human_timestamp_to_datetime, timestamp_to_human

    found = pm.xml_namespace_regex.search(head)  # the text up to the root's start tag holds every xmlns
    meta = report["report_metadata"]
    if type(meta) is not dict:
        raise NotPlain("report_metadata")
    email = _str(meta["email"])
    new: dict[str, Any] = {"xml_schema": report["version"] if "version" in report else "draft",
                           "xml_namespace": found.group(1) if found else None}
    org_name = _str(meta["org_name"])
    if org_name is None and email is not None:
        org_name = email.split("@")[-1]
    if org_name is not None and " " not in org_name:
        base = get_base_domain(org_name)
        if base is not None:
            org_name = base
    if not org_name:
        raise NotPlain("no org_name")
    date_range = meta["date_range"]
    begin_ts = int(_str(date_range["begin"]).split(".")[0])
    end_ts = int(_str(date_range["end"]).split(".")[0])
    span = end_ts - begin_ts
    if span > cfg.normalize_timespan_threshold_hours * 3600:
        raise NotPlain("parsedmarc splits this report's records by day")
    begin, end = timestamp_to_human(begin_ts), timestamp_to_human(end_ts)
    errors = meta["error"] if "error" in meta else []
    if type(errors) is not list:
        errors = [errors]
    new["report_metadata"] = {
        "org_name": org_name, "org_email": email,
        "org_extra_contact_info": _str(meta.get("extra_contact_info")),
        "report_id": _str(meta["report_id"]).replace("<", "").replace(">", "").split("@")[0],
        "begin_date": begin, "end_date": end, "timespan_requires_normalization": False,
        "original_timespan_seconds": span, "errors": [e for e in map(_str, errors) if e],
        "generator": _str(meta.get("generator"))}
    new["policy_published"] = _policy(report["policy_published"])
    interval = {"normalized_timespan": False,
                "interval_begin": human_timestamp_to_datetime(begin, to_utc=True).strftime("%Y-%m-%d %H:%M:%S"),
                "interval_end": human_timestamp_to_datetime(end, to_utc=True).strftime("%Y-%m-%d %H:%M:%S")}
    records = report["record"]
    if type(records) is not list:
        records = [records]
    lookup = _ip_lookup(cfg, sources)
    out = []
    for record in records:
        rec = _record(record, lookup)
        rec.update(interval)
        out.append(rec)
    new["records"] = out
    return new


def _policy(pol: Any) -> dict[str, Any]:
    if type(pol) is list:
        pol = pol[0]
    if type(pol) is not dict:
        raise NotPlain("policy_published")
    p = pol["p"]

    def get(key: str, default: Any) -> Any:
        value = pol.get(key)
        return default if value is None else value

    return {"domain": pol["domain"], "adkim": get("adkim", "r"), "aspf": get("aspf", "r"), "p": p,
            "sp": get("sp", p), "pct": pol.get("pct"), "fo": pol.get("fo"), "np": pol.get("np"),
            "testing": pol.get("testing"), "discovery_method": pol.get("discovery_method")}


def _ip_lookup(cfg: Any, sources: dict | None):
    from parsedmarc.utils import get_ip_address_info

    def lookup(ip: str) -> dict[str, Any]:
        if sources is not None:
            info = sources.get(ip)
            if info is None:
                if len(sources) >= 50_000:  # about 40 MB
                    sources.clear()
                info = sources[ip] = enrich(ip)
            return info
        return enrich(ip)

    def enrich(ip: str) -> dict[str, Any]:
        return get_ip_address_info(
            ip, cache=cfg.ip_address_cache, ip_db_path=cfg.ip_db_path,
            always_use_local_files=cfg.always_use_local_files, reverse_dns_map_path=cfg.reverse_dns_map_path,
            reverse_dns_map_url=cfg.reverse_dns_map_url, reverse_dns_map=cfg.reverse_dns_map,
            offline=cfg.offline, nameservers=cfg.nameservers, timeout=cfg.dns_timeout,
            retries=cfg.dns_retries, psl_overrides_path=cfg.psl_overrides_path,
            psl_overrides_url=cfg.psl_overrides_url)
    return lookup


def _record(record: dict[str, Any], lookup) -> dict[str, Any]:
    row = record["row"]
    ip = _str(row["source_ip"])
    if ip is None:
        raise NotPlain("record without source_ip")
    pe = row["policy_evaluated"]
    if type(pe) is not dict:
        raise NotPlain("policy_evaluated")
    spf, dkim = _str(pe["spf"]), _str(pe["dkim"])
    spf_ok = spf is not None and spf.lower() == "pass"
    dkim_ok = dkim is not None and dkim.lower() == "pass"
    reasons = pe["reason"] if "reason" in pe else []
    if type(reasons) is not list:
        reasons = [reasons]
    for reason in reasons:
        if type(reason) is not dict:
            raise NotPlain("reason")
        reason["comment"] = _str(reason.get("comment"))
    ident = record["identities"] if "identities" in record else record["identifiers"]
    if type(ident) is not dict:
        raise NotPlain("identifiers")
    ident = dict(ident)
    header_from = ident["header_from"]
    ident["header_from"] = header_from.lower() if type(header_from) is str else ""
    auth = record["auth_results"]
    raw_dkim, raw_spf = (auth.get("dkim", []), auth.get("spf", [])) if isinstance(auth, dict) else ([], [])
    if type(raw_dkim) is not list:
        raw_dkim = [raw_dkim]
    if type(raw_spf) is not list:
        raw_spf = [raw_spf]
    dkim_results = _auth_results(raw_dkim, "dkim", "selector", "none")
    spf_results = _auth_results(raw_spf, "spf", "scope", "mfrom")
    if ident.get("envelope_from") is None:
        envelope_from = raw_spf[-1].get("domain") if raw_spf else None
        ident["envelope_from"] = None if envelope_from is None else str(envelope_from).lower()
    ident["envelope_to"] = ident.pop("envelope_to", None)
    return {"source": lookup(ip), "count": int(row["count"]),
            "alignment": {"spf": spf_ok, "dkim": dkim_ok, "dmarc": spf_ok or dkim_ok},
            "policy_evaluated": {"disposition": _word(pe["disposition"]) if "disposition" in pe else "none",
                                 "dkim": _word(pe["dkim"]), "spf": _word(pe["spf"]),
                                 "policy_override_reasons": reasons},
            "identifiers": ident, "auth_results": {"dkim": dkim_results, "spf": spf_results}}


def _auth_results(raw: list[Any], kind: str, key: str, default: str) -> list[dict[str, Any]]:
    """The dkim or spf auth results with a domain; `key` is the selector or scope, `default` its value if absent."""
    out = []
    for result in raw:
        if type(result) is not dict:
            raise NotPlain(f"{kind} result")
        if result.get("domain") is not None:
            extra, value = result.get(key), result.get("result")
            out.append({"domain": result["domain"], key: default if extra is None else extra,
                        "result": "none" if value is None else _word(value),
                        "human_result": _str(result.get("human_result"))})
    return out
