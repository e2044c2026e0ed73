"""Google Postmaster Tools API v2 responses: `domains.domainStats.query` (and its batch form)
and `domains.getComplianceStatus`.

The shapes are those of Google's v2 reference as we read it: a DomainStat is
`{"name": "domains/D/domainStats/...", "metric": NAME, "date": {"year", "month", "day"},
"value": {"doubleValue" | "floatValue" | "intValue": ...}}`, where NAME is the name the
request's `metricDefinitions` gave the metric. postwatch's own requests name each metric by
its standard metric and filter values (`spam_rate`, `auth_success_rate.spf`,
`tls_encryption_rate.inbound`, `delivery_error_rate.permanent_error`); a file from another
client is read through the `metricDefinitions` it carries beside its `domainStats`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

# The standard metrics of the v2 API that postwatch reads (StandardMetric, lower case).
STANDARD_METRICS = ("spam_rate", "auth_success_rate", "tls_encryption_rate", "tls_encryption_message_count",
                    "delivery_error_rate", "delivery_error_count", "delivery_message_rate",
                    "delivery_message_count", "feedback_loop_spam_rate", "feedback_loop_id")
SPAM_RATE = "spam_rate"
AUTH_TYPES = ("spf", "dkim", "dmarc")
ERROR_CLASSES = ("permanent_error", "temporary_error")
ERROR_TYPES = ("rate_limit_exceeded", "suspected_spam", "content_spammy", "bad_attachment", "bad_dmarc_policy",
               "low_ip_reputation", "low_domain_reputation", "ip_in_rbl", "domain_in_rbl", "bad_ptr_record")

# The bulk-sender requirements (ComplianceRequirement, lower case) and their states.
REQUIREMENTS = ("spf", "dkim", "spf_and_dkim", "dmarc_policy", "dmarc_alignment", "message_formatting",
                "dns_records", "encryption", "user_reported_spam_rate", "one_click_unsubscribe",
                "honor_unsubscribe")
STATES = {"COMPLIANT": "compliant", "NEEDS_WORK": "needs_work", "STATE_UNSPECIFIED": "unspecified"}
VERDICTS = {"oneClickUnsubscribeVerdict": "one_click_unsubscribe", "honorUnsubscribeVerdict": "honor_unsubscribe"}

_FILTER_TERM = re.compile(r'\s*(\w+)\s*=\s*"([^"]*)"\s*')
_DOMAIN = re.compile(r"(?:^|/)domains/([^/]+)")


@dataclass(frozen=True)
class DomainStat:
    domain: str
    day: date
    metric: str
    value: float


@dataclass(frozen=True)
class ComplianceRow:
    domain: str
    requirement: str
    state: str  # compliant | needs_work | unspecified
    reason: str | None = None
    subdomain: bool = False


@dataclass
class PostmasterRead:
    stats: list[DomainStat] = field(default_factory=list)
    compliance: list[ComplianceRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def metric_name(standard: str, filter_text: str = "") -> str:
    """postwatch's name of a metric: the standard metric, then each filter value (lower case)."""
    values = []
    for term in filter(None, re.split(r"\s+AND\s+", filter_text or "", flags=re.I)):
        match = _FILTER_TERM.fullmatch(term)
        if not match:
            raise ValueError(f"cannot read the metric filter {filter_text!r}")
        values.append(match.group(2).strip().lower())
    return ".".join([standard.strip().lower(), *values])


def metric_definitions() -> list[dict[str, Any]]:
    """The metrics postwatch asks for, each named by `metric_name` of its definition."""
    defs = [(SPAM_RATE.upper(), "")]
    defs += [("AUTH_SUCCESS_RATE", f'auth_type = "{t}"') for t in AUTH_TYPES]
    defs += [("TLS_ENCRYPTION_RATE", 'traffic_direction = "inbound"')]
    defs += [("DELIVERY_ERROR_RATE", "")]
    defs += [("DELIVERY_ERROR_RATE", f'error_class = "{c.upper()}"') for c in ERROR_CLASSES]
    defs += [("DELIVERY_ERROR_RATE", f'error_type = "{t.upper()}"') for t in ERROR_TYPES]
    out = []
    for standard, filter_text in defs:
        d: dict[str, Any] = {"name": metric_name(standard, filter_text), "baseMetric": {"standardMetric": standard}}
        if filter_text:
            d["filter"] = filter_text
        out.append(d)
    return out


def _names(definitions: list[Any] | None) -> dict[str, str]:
    """A request's own metric names -> postwatch's names."""
    out = {}
    for d in definitions or []:
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            continue
        standard = (d.get("baseMetric") or {}).get("standardMetric")
        if isinstance(standard, str):
            out[d["name"]] = metric_name(standard, d.get("filter") or "")
    return out


def _known(name: str) -> bool:
    return name.split(".", 1)[0] in STANDARD_METRICS


def _value(value: Any) -> float:
    if not isinstance(value, dict):
        raise ValueError("no value object")
    for key in ("doubleValue", "floatValue", "intValue"):
        if key in value:
            number = float(value[key])  # intValue is an int64, written as a string
            if number != number:
                raise ValueError(f"{key} is not a number")
            return number
    raise ValueError(f"no numeric value (has {', '.join(sorted(value)) or 'nothing'})")


def _date(d: Any) -> date:
    if isinstance(d, str):
        return date.fromisoformat(d)
    if not isinstance(d, dict):
        raise ValueError("no date")
    return date(int(d["year"]), int(d["month"]), int(d["day"]))


def _domain_stats(doc: dict[str, Any], where: str, out: PostmasterRead, names: dict[str, str]) -> None:
    names = {**names, **_names(doc.get("metricDefinitions"))}
    stats = doc.get("domainStats")
    if not isinstance(stats, list):
        out.errors.append(f"{where}: domainStats is not a list")
        return
    for i, stat in enumerate(stats):
        at = f"{where} domainStats[{i}]"
        try:
            if not isinstance(stat, dict):
                raise ValueError("not an object")
            found = _DOMAIN.search(str(stat.get("name") or ""))
            if not found:
                raise ValueError(f"its name {stat.get('name')!r} names no domain (domains/DOMAIN/...)")
            raw = stat.get("metric")
            if not isinstance(raw, str) or not raw:
                raise ValueError("it has no metric name")
            metric = names.get(raw, raw)
            if not _known(metric):
                raise ValueError(f"the metric {raw!r} is not one postwatch names, and the file has no "
                                 "metricDefinitions saying what it is")
            value = _value(stat.get("value"))
            if metric.split(".", 1)[0].endswith("_rate") and not 0 <= value <= 1:
                raise ValueError(f"the rate {value} is not a fraction between 0 and 1")
            out.stats.append(DomainStat(found.group(1).lower().rstrip("."), _date(stat.get("date")), metric, value))
        except (KeyError, TypeError, ValueError) as exc:
            out.errors.append(f"{at}: {exc}")


def _state(status: Any) -> str:
    if isinstance(status, dict):
        status = status.get("status", status.get("state"))
    if not isinstance(status, str) or status.upper() not in STATES:
        raise ValueError(f"unknown compliance state {status!r} (COMPLIANT, NEEDS_WORK)")
    return STATES[status.upper()]


def _compliance_data(data: Any, domain: str, subdomain: bool, where: str, out: PostmasterRead) -> None:
    if not isinstance(data, dict):
        out.errors.append(f"{where}: not an object")
        return
    domain = str(data.get("domainId") or domain).lower().rstrip(".")
    rows: dict[str, ComplianceRow] = {}
    for i, row in enumerate(data.get("rowData") or []):
        try:
            requirement = str(row["requirement"]).lower()
            if requirement not in REQUIREMENTS:
                raise ValueError(f"unknown requirement {row['requirement']!r}")
            rows[requirement] = ComplianceRow(domain, requirement, _state(row.get("status")), None, subdomain)
        except (KeyError, TypeError, ValueError) as exc:
            out.errors.append(f"{where} rowData[{i}]: {exc}")
    for key, requirement in VERDICTS.items():
        verdict = data.get(key)
        if verdict is None:
            continue
        try:
            reason = verdict.get("reason")
            reason = None if reason in (None, "REASON_UNSPECIFIED") else str(reason).lower()
            rows[requirement] = ComplianceRow(domain, requirement, _state(verdict.get("status")), reason, subdomain)
        except (AttributeError, TypeError, ValueError) as exc:
            out.errors.append(f"{where} {key}: {exc}")
    out.compliance.extend(rows.values())


def _compliance(doc: dict[str, Any], where: str, out: PostmasterRead) -> None:
    found = _DOMAIN.search(str(doc.get("name") or ""))
    domain = found.group(1) if found else ""
    if "complianceData" in doc:
        _compliance_data(doc["complianceData"], domain, False, f"{where} complianceData", out)
    if doc.get("subdomainComplianceData"):
        _compliance_data(doc["subdomainComplianceData"], domain, True, f"{where} subdomainComplianceData", out)


def read(doc: Any, where: str = "file", out: PostmasterRead | None = None,
         names: dict[str, str] | None = None) -> PostmasterRead:
    """Every figure of a parsed response (or a list of responses, or a batch response)."""
    out = out if out is not None else PostmasterRead()
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            read(item, f"{where}[{i}]", out, names)
        return out
    if not isinstance(doc, dict):
        out.errors.append(f"{where}: not a Postmaster Tools response (a JSON object or a list of them)")
        return out
    if "domainStats" in doc:
        _domain_stats(doc, where, out, names or {})
    elif "complianceData" in doc or "subdomainComplianceData" in doc:
        _compliance(doc, where, out)
    elif isinstance(doc.get("results"), list):  # domainStats.batchQuery
        for i, result in enumerate(doc["results"]):
            if isinstance(result, dict) and "error" in result:
                error = result["error"] or {}
                out.errors.append(f"{where} results[{i}]: the API answered an error: "
                                  f"{error.get('message') or error.get('code')}")
                continue
            response = (result or {}).get("response", (result or {}).get("queryDomainStatsResponse"))
            read(response if response is not None else {}, f"{where} results[{i}]", out, names)
    elif not doc:
        pass  # an empty answer: no data for the days asked
    else:
        out.errors.append(f"{where}: neither domainStats, complianceData nor results: not a response of "
                          "domains.domainStats.query or domains.getComplianceStatus")
    return out


def read_text(text: str, where: str = "file") -> PostmasterRead:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        out = PostmasterRead()
        out.errors.append(f"{where}: not JSON ({exc})")
        return out
    return read(doc, where)
