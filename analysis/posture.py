"""Authentication posture: the DNS records that decide whether receivers trust our mail.

For each sending domain: SPF (analysis/spf.py), DMARC, the DKIM key of each selector in use
(configured, or seen in DMARC aggregate reports), the MTA-STS and TLS-RPT records; for each
sending IP its PTR and whether that name resolves back to it. Every result is stored; a new
row only when it differs from the last one, and a difference raises an alert.

A check the DNS did not answer (a time-out, SERVFAIL) is `unknown`: it says nothing about the
record, so it neither raises nor resolves an alert, and the next known result is compared
with the last known one. NXDOMAIN, or no record of the type, is `missing`.

MTA-STS: only the `_mta-sts` TXT record is checked. The policy file itself
(https://mta-sts.DOMAIN/.well-known/mta-sts.txt) needs an HTTPS fetch from the internet,
which postwatch does not do.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dns.exception
import dns.resolver
import dns.reversename
from sqlalchemy import select
from sqlalchemy.orm import Session

from analysis.dns import failure
from analysis.jobs import JobContext, job
from analysis.spf import DnsTrouble, addresses, check_spf, txt_records
from store.addresses import domain_of
from store.alerts import Alert, raise_alert, resolve_alert
from store.checks import PostureCheck
from store.models import DmarcAggregateReport, DmarcRecord
from store.suppressions import utc

log = logging.getLogger(__name__)

SELECTOR_LOOKBACK = timedelta(days=30)
OPTIONAL = ("mta_sts", "tls_rpt")  # good practice, not a reason to wake anyone


@dataclass
class Result:
    subject: str
    check: str
    status: str  # ok | warning | error | missing | unknown
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        blob = json.dumps({"status": self.status, "detail": self.detail}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def record_tags(record: str) -> dict[str, str]:
    """The `tag=value` pairs of a DKIM, DMARC or TLS-RPT record, tags lower-cased."""
    tags = {}
    for part in record.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            tags[name.strip().lower()] = value.strip()
    return tags


def _problems(errors: list[str], warnings: list[str]) -> str:
    return "error" if errors else "warning" if warnings else "ok"


# ---------------------------------------------------------------- the checks

def spf(resolver, domain: str, sending_ips: tuple[str, ...]) -> Result:
    r = check_spf(resolver, domain, sending_ips)
    if r.record is None:
        return Result(domain, "spf", "missing", f"{domain} has no SPF record")
    detail = {"record": r.record, "lookups": r.lookups, "void_lookups": r.void_lookups, "includes": r.includes,
              "all": r.all_qualifier, "networks": r.networks, "errors": r.errors, "warnings": r.warnings}
    first = (r.errors or r.warnings or [f"{r.lookups} of 10 look-ups, ends with {r.all_qualifier}all"])[0]
    return Result(domain, "spf", r.status, f"SPF {r.status}: {first}", detail)


def dmarc(resolver, domain: str) -> Result:
    name = f"_dmarc.{domain}"
    records = [t for t in txt_records(resolver, name) or [] if t.lower().startswith("v=dmarc1")]
    inherited = None
    if not records and domain.count(".") > 1:  # a subdomain falls back to its organisational domain
        org = ".".join(domain.split(".")[-2:])
        records = [t for t in txt_records(resolver, f"_dmarc.{org}") or [] if t.lower().startswith("v=dmarc1")]
        inherited = org if records else None
    if not records:
        return Result(domain, "dmarc", "missing", f"{domain} has no DMARC record at {name}")
    errors, warnings = [], []
    if len(records) > 1:
        errors.append(f"{len(records)} DMARC records: receivers ignore them all")
    tags = record_tags(records[0])
    policy = tags.get("sp", tags.get("p")) if inherited else tags.get("p")
    if tags.get("p") not in ("none", "quarantine", "reject"):
        errors.append(f"p={tags.get('p')!r} is not none, quarantine or reject")
    elif policy == "none":
        warnings.append("p=none: monitoring only, spoofed mail is delivered")
    pct = tags.get("pct", "100")
    if not pct.isdigit() or not 0 <= int(pct) <= 100:
        errors.append(f"pct={pct!r} is not a number from 0 to 100")
    elif int(pct) < 100:
        warnings.append(f"pct={pct}: the policy applies to {pct}% of failing mail")
    for tag in ("adkim", "aspf"):
        if tags.get(tag, "r") not in ("r", "s"):
            errors.append(f"{tag}={tags[tag]!r} is not r or s")
    rua = [u.strip() for u in tags.get("rua", "").split(",") if u.strip()]
    ruf = [u.strip() for u in tags.get("ruf", "").split(",") if u.strip()]
    if not rua:
        warnings.append("no rua: nobody receives the aggregate reports")
    for uri in rua + ruf:
        if not uri.lower().startswith("mailto:"):
            errors.append(f"report address {uri!r} is not a mailto: URI")
            continue
        mailbox = uri[7:].split("!")[0]
        target = domain_of(mailbox) if "@" in mailbox else mailbox.lower()
        if target and target != domain and not target.endswith("." + domain) and target != inherited:
            # RFC 7489 7.1: another domain must agree to receive our reports
            auth = txt_records(resolver, f"{domain}._report._dmarc.{target}") or []
            if not any(a.lower().startswith("v=dmarc1") for a in auth):
                warnings.append(f"{target} has not authorised reports for {domain} "
                                f"({domain}._report._dmarc.{target})")
    detail = {"record": records[0], "inherited_from": inherited, "p": tags.get("p"), "sp": tags.get("sp"),
              "pct": pct, "adkim": tags.get("adkim", "r"), "aspf": tags.get("aspf", "r"), "rua": rua, "ruf": ruf,
              "fo": tags.get("fo"), "errors": errors, "warnings": warnings}
    status = _problems(errors, warnings)
    first = (errors or warnings or [f"p={tags.get('p')}, pct={pct}, adkim={detail['adkim']}, "
                                    f"aspf={detail['aspf']}"])[0]
    return Result(domain, "dmarc", status, f"DMARC {status}: {first}", detail)


def dkim(resolver, domain: str, selector: str) -> Result:
    name = f"{selector}._domainkey.{domain}"
    check = f"dkim:{selector}"
    records = txt_records(resolver, name)
    if not records:
        return Result(domain, check, "missing", f"no DKIM key at {name}")
    record = next((r for r in records if "p=" in r), records[0])
    tags = record_tags(record)
    errors, warnings = [], []
    if "v" in tags and tags["v"] != "DKIM1":
        errors.append(f"v={tags['v']!r} is not DKIM1")
    key_type = tags.get("k", "rsa").lower()
    bits = None
    p = "".join(tags.get("p", "").split())
    if "p" not in tags:
        errors.append("no p= tag (the public key)")
    elif not p:
        errors.append("p= is empty: the key is revoked")
    else:
        try:
            der = base64.b64decode(p, validate=True)
        except ValueError:
            errors.append("p= is not base64")
            der = b""
        if der and key_type == "rsa":
            bits = _rsa_bits(der)
            if bits is None:
                errors.append("p= is not an RSA public key")
            elif bits < 1024:
                errors.append(f"{bits}-bit RSA key: receivers reject keys under 1024 bits")
            elif bits < 2048:
                warnings.append(f"{bits}-bit RSA key: 2048 bits is the current advice")
        elif der and key_type == "ed25519" and len(der) != 32:
            errors.append("an ed25519 key is 32 bytes")
        elif key_type not in ("rsa", "ed25519"):
            errors.append(f"k={key_type!r}: unknown key type")
    if "y" in tags.get("t", "").split(":"):
        warnings.append("t=y: the domain says it is testing DKIM")
    status = _problems(errors, warnings)
    detail = {"record": record, "key_type": key_type, "bits": bits, "errors": errors, "warnings": warnings}
    first = (errors or warnings or [f"{key_type} key" + (f", {bits} bits" if bits else "")])[0]
    return Result(domain, check, status, f"DKIM {selector} {status}: {first}", detail)


def _rsa_bits(der: bytes) -> int | None:
    try:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        key = load_der_public_key(der)
    except Exception:  # not a key at all; the check says so
        return None
    return key.key_size if isinstance(key, rsa.RSAPublicKey) else None


def mta_sts(resolver, domain: str) -> Result:
    records = [t for t in txt_records(resolver, f"_mta-sts.{domain}") or [] if t.lower().startswith("v=stsv1")]
    if not records:
        return Result(domain, "mta_sts", "missing", f"{domain} has no MTA-STS record (_mta-sts.{domain})")
    tags = record_tags(records[0])
    errors = [] if tags.get("id") else ["no id= in the MTA-STS record"]
    if len(records) > 1:
        errors.append("several MTA-STS records")
    detail = {"record": records[0], "id": tags.get("id"), "errors": errors,
              "note": "the policy file (https://mta-sts.DOMAIN/.well-known/mta-sts.txt) is not fetched"}
    status = _problems(errors, [])
    return Result(domain, "mta_sts", status, f"MTA-STS {status}: " + (errors[0] if errors else f"id={tags['id']}"),
                  detail)


def tls_rpt(resolver, domain: str) -> Result:
    records = [t for t in txt_records(resolver, f"_smtp._tls.{domain}") or [] if t.lower().startswith("v=tlsrptv1")]
    if not records:
        return Result(domain, "tls_rpt", "missing", f"{domain} has no TLS-RPT record (_smtp._tls.{domain})")
    rua = [u.strip() for u in record_tags(records[0]).get("rua", "").split(",") if u.strip()]
    errors = [] if rua else ["no rua= in the TLS-RPT record"]
    errors += [f"report address {u!r} is neither mailto: nor https:" for u in rua
               if not u.lower().startswith(("mailto:", "https:"))]
    status = _problems(errors, [])
    return Result(domain, "tls_rpt", status, f"TLS-RPT {status}: " + (errors[0] if errors else ", ".join(rua)),
                  {"record": records[0], "rua": rua, "errors": errors})


def ptr(resolver, ip: str) -> Result:
    name = dns.reversename.from_address(ip)
    try:
        names = sorted(str(r.target).rstrip(".").lower() for r in resolver.resolve(name, "PTR"))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return Result(ip, "ptr", "missing", f"{ip} has no PTR record: many receivers refuse such mail")
    except dns.exception.DNSException as exc:
        raise DnsTrouble(f"no answer for {name} PTR ({failure(exc)})") from None
    confirmed = [n for n in names if ip in addresses(resolver, n)]
    errors = [] if confirmed else [f"{', '.join(names)} does not resolve back to {ip} (not forward-confirmed)"]
    if len(names) > 1:
        errors.append(f"{len(names)} PTR records; use one")
    status = _problems(errors, [])
    return Result(ip, "ptr", status, f"PTR {status}: " + (errors[0] if errors else f"{names[0]}, forward-confirmed"),
                  {"names": names, "forward_confirmed": confirmed, "errors": errors})


def selectors_in_use(session: Session, domain: str, since: datetime, limit: int = 20000) -> set[str]:
    """DKIM selectors that signed mail of `domain` in DMARC aggregate reports since `since`."""
    found: set[str] = set()
    rows = session.scalars(select(DmarcRecord.dkim_results)
                           .join(DmarcAggregateReport, DmarcRecord.report_id == DmarcAggregateReport.id)
                           .where(DmarcAggregateReport.domain == domain, DmarcRecord.interval_begin >= since)
                           .order_by(DmarcRecord.id.desc()).limit(limit))
    for results in rows:
        for r in results or []:
            if isinstance(r, dict) and r.get("selector") and (r.get("domain") or "").lower().rstrip(".") == domain:
                found.add(str(r["selector"]).strip().lower())
    return found


def run_all(resolver, session: Session, domains_cfg, now: datetime) -> list[Result]:
    """Every check of every configured domain and IP; a check the DNS did not answer is `unknown`."""
    checks: list[tuple[str, str, Any]] = []
    for raw in domains_cfg.sending_domains:
        domain = raw.strip().lower().rstrip(".")
        checks.append((domain, "spf", lambda d=domain: spf(resolver, d, domains_cfg.sending_ips)))
        checks.append((domain, "dmarc", lambda d=domain: dmarc(resolver, d)))
        selectors = {s.strip().lower() for s in domains_cfg.dkim_selectors if s.strip()}
        selectors |= selectors_in_use(session, domain, now - SELECTOR_LOOKBACK)
        for sel in sorted(selectors):
            checks.append((domain, f"dkim:{sel}", lambda d=domain, s=sel: dkim(resolver, d, s)))
        checks.append((domain, "mta_sts", lambda d=domain: mta_sts(resolver, d)))
        checks.append((domain, "tls_rpt", lambda d=domain: tls_rpt(resolver, d)))
    for ip in domains_cfg.sending_ips:
        checks.append((ip.strip(), "ptr", lambda i=ip.strip(): ptr(resolver, i)))
    results = []
    for subject, check, fn in checks:
        try:
            results.append(fn())
        except DnsTrouble as exc:
            results.append(Result(subject, check, "unknown", f"{check} unknown: {exc}", {"dns_error": str(exc)}))
        except ValueError as exc:  # e.g. a sending IP that is not an address: the configuration's error
            results.append(Result(subject, check, "error", f"{check} not checked: {exc}", {"dns_error": str(exc)}))
    return results


# ---------------------------------------------------------------- storing, and telling

def severity(result: Result) -> str:
    if result.status == "ok":
        return "info"
    if result.status == "warning" or (result.status == "missing" and result.check in OPTIONAL):
        return "warning"
    return "critical"


def record(session: Session, results: list[Result], now: datetime) -> int:
    """Store what changed; raise an alert per change (and per problem seen the first time).

    An `unknown` result is stored (it is the current state) but raises nothing; a known result
    after it is judged against the last known one.
    """
    written = 0
    for r in results:
        history = select(PostureCheck).where(PostureCheck.subject == r.subject, PostureCheck.check == r.check)
        last = session.scalars(history.order_by(PostureCheck.id.desc()).limit(1)).first()
        dimension = "sending_ip" if r.check == "ptr" else "sending_domain"
        rule = "posture." + r.check
        if last is not None and last.fingerprint == r.fingerprint:
            last.checked_at = now
            _settle(session, rule, dimension, r, now)
            continue
        session.add(PostureCheck(subject=r.subject, check=r.check, status=r.status, summary=r.summary,
                                 detail=r.detail, fingerprint=r.fingerprint, first_seen_at=now, checked_at=now))
        written += 1
        if r.status == "unknown":
            continue  # the DNS did not answer: nothing is known to have changed
        if last is not None and last.status == "unknown":
            last = session.scalars(history.where(PostureCheck.status != "unknown", PostureCheck.id < last.id)
                                   .order_by(PostureCheck.id.desc()).limit(1)).first()
            if last is not None and last.fingerprint == r.fingerprint:
                continue  # the same as before the DNS failed
        sev = severity(r)
        if last is None and sev != "critical":
            continue  # the first look: only real problems are news
        what = "changed" if last is not None else "found"
        before = f" (was {last.status}: {last.summary})" if last is not None else ""
        raise_alert(session, rule=rule, dimension=dimension, key=r.subject, severity=sev,
                    message=f"{r.check} of {r.subject} {what}: {r.summary}{before}", now=now,
                    details={"status": r.status, "previous_status": last.status if last else None,
                             "detail": r.detail})
    session.flush()
    return written


def _settle(session: Session, rule: str, dimension: str, r: Result, now: datetime) -> None:
    """An unchanged result that is not a problem closes the change's alert after a day (an
    unknown one closes nothing)."""
    if r.status not in ("ok", "warning"):
        return
    alert = session.scalars(select(Alert).where(Alert.status == "open", Alert.rule == rule,
                                                Alert.dimension == dimension, Alert.key == r.subject)).first()
    if alert is not None and now - utc(alert.opened_at) >= timedelta(days=1):
        resolve_alert(session, alert, now)


def current(session: Session) -> list[PostureCheck]:
    """The newest result of every (subject, check)."""
    rows = session.scalars(select(PostureCheck).order_by(PostureCheck.subject, PostureCheck.check,
                                                         PostureCheck.id.desc())).all()
    seen, out = set(), []
    for row in rows:
        if (row.subject, row.check) not in seen:
            seen.add((row.subject, row.check))
            out.append(row)
    return out


@job("posture", every=timedelta(days=1), order=60)
def posture_job(ctx: JobContext) -> int:
    """Check SPF, DKIM, DMARC, MTA-STS, TLS-RPT and PTR of the sending domains and IPs; alert on changes."""
    from analysis.dns import make_resolver

    cfg = ctx.settings
    if not cfg.domains.sending_domains and not cfg.domains.sending_ips:
        return 0
    now = ctx.clock()
    resolver = make_resolver(cfg.dns)
    with ctx.sessions() as session:  # DNS first, with no write lock held
        results = run_all(resolver, session, cfg.domains, now)
    with ctx.sessions.begin() as session:
        return record(session, results, now)
