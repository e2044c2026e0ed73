"""What `postwatch doctor` checks: the configuration in effect, the secrets postwatch generated,
and what production still lacks (DNS of the sending domains, TLS certificates, the published
DKIM key, MX of the report addresses), each finding with the key or DNS record to set.

It changes nothing: the DNS look-ups go through the configured resolver (analysis/dns.py), the
SPF, DMARC and DKIM records are judged by analysis/posture.py, the DKIM key read by sender/dkim.py.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
import os
import socket
import ssl
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from postwatch.config import GENERATED_SECRETS, SECTIONS, Config

BLOCKING, WARNING, OK = "blocking", "warning", "ok"
SHOWN_AS_SET = ("secret", "password", "salt", "tokens", "users", "mailboxes")  # never printed


@dataclass(frozen=True)
class Finding:
    check: str  # secrets | sender | smtp | web | dns | dkim | mx
    severity: str  # blocking | warning | ok
    subject: str  # what was looked at: a key, a domain, a file
    message: str  # a sentence
    fix: str = ""  # the configuration key or DNS record to set; empty when nothing is to be done

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- what is configured

def configured(config: Config) -> dict[str, dict[str, Any]]:
    """Each section's keys that differ from the defaults; secrets and passwords as "(set)"."""
    out: dict[str, dict[str, Any]] = {}
    for name, cls in SECTIONS.items():
        section, default = getattr(config, name), cls()
        for f in dataclasses.fields(cls):
            value = getattr(section, f.name)
            key = f"{name}.{f.name}"
            if value == getattr(default, f.name) or key in config.generated:
                continue
            if any(word in f.name for word in SHOWN_AS_SET):
                value = "(set)"
            out.setdefault(name, {})[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def secret_states(config: Config) -> list[dict[str, str]]:
    """Each generated-secret key: set (by the operator), generated (in the secrets file) or missing."""
    rows = []
    for key in GENERATED_SECRETS:
        section, name = key.split(".", 1)
        state = ("generated" if key in config.generated else
                 "set" if getattr(getattr(config, section), name) else "missing")
        rows.append({"key": key, "state": state, "file": config.secrets_file if state == "generated" else ""})
    return rows


# ---------------------------------------------------------------- the checks

def run_checks(config: Config, *, offline: bool = False, now: datetime | None = None) -> list[Finding]:
    now = now or datetime.now(timezone.utc)
    findings = secrets(config) + sender(config) + collector(config, now)
    if offline:
        findings.append(Finding("dns", WARNING, "DNS", "not checked (--offline): SPF, DMARC, the DKIM key, "
                                "the MX of the report addresses and the web server's certificate"))
        return findings
    from analysis.dns import make_resolver

    try:
        resolver = make_resolver(config.dns)
    except ValueError as exc:
        return findings + [Finding("dns", BLOCKING, "dns.nameservers", str(exc), "dns.nameservers")]
    return findings + dns_records(config, resolver) + web_certificate(config, resolver, now)


def secrets(config: Config) -> list[Finding]:
    out = []
    shared = not config.database.url.startswith("sqlite")
    for row in secret_states(config):
        key = row["key"]
        env = "POSTWATCH_" + key.replace(".", "__").upper()
        if row["state"] == "set":
            out.append(Finding("secrets", OK, key, "set in the configuration"))
        elif row["state"] == "generated" and shared:
            out.append(Finding("secrets", WARNING, key, f"generated into {row['file']} on this machine, but the "
                               "store is a database server that other machines may share: their secrets must "
                               "agree", f"{key} ({env}), the same value on every machine"))
        elif row["state"] == "generated":
            out.append(Finding("secrets", OK, key, f"generated into {row['file']}; set it yourself before a "
                               "second machine shares the store"))
        else:
            out.append(Finding("secrets", WARNING, key, "not set: the first `postwatch send`, `serve`, `web` or "
                               f"`collect` generates it into {config.secrets_file}", f"{key} ({env})"))
    path = Path(config.secrets_file)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return out
    if mode & 0o077:
        out.append(Finding("secrets", WARNING, str(path), f"{path} can be read by other users (mode {mode:04o})",
                           f"chmod 600 {path}"))
    if not os.access(path, os.R_OK):
        out.append(Finding("secrets", WARNING, str(path), f"{path} cannot be read by this user: the secrets it "
                           "keeps are not used by this command", "run as the user that owns it"))
    return out


def sender(config: Config) -> list[Finding]:
    from store.addresses import domain_of

    out = []
    s = config.sender
    domain = domain_of(s.from_address)
    if domain == "localhost" or "." not in domain:
        out.append(Finding("sender", BLOCKING, "sender.from_address", f"campaigns come from {s.from_address}, "
                           "which no receiver accepts", "sender.from_address"))
    if not s.dkim_key_file:
        out.append(Finding("sender", BLOCKING, "sender.dkim_key_file", "mail is not DKIM-signed (Gmail and Yahoo "
                           "refuse unsigned bulk mail): make a key with `postwatch dkim keygen`",
                           "sender.dkim_key_file"))
    else:
        try:
            dkim_public(config)
        except ValueError as exc:
            out.append(Finding("sender", BLOCKING, "sender.dkim_key_file", str(exc), "sender.dkim_key_file"))
    if s.starttls == "off":
        out.append(Finding("sender", WARNING, "sender.starttls", "mail leaves without TLS", "sender.starttls"))
    url = urlsplit(config.web.base_url)
    if url.scheme != "https" or _local(url.hostname or ""):
        out.append(Finding("web", BLOCKING, "web.base_url", f"unsubscribe links and digests point at "
                           f"{config.web.base_url}: set the public https address of the web server",
                           "web.base_url"))
    return out


def collector(config: Config, now: datetime) -> list[Finding]:
    from store.netloc import parse_hostport

    out = []
    smtp = config.smtp
    if not config.imap.mailboxes:
        try:
            host, _port = parse_hostport(smtp.listen, key="smtp.listen")
        except ValueError as exc:
            host = ""
            out.append(Finding("smtp", BLOCKING, "smtp.listen", str(exc), "smtp.listen"))
        if host and _local(host):
            out.append(Finding("smtp", WARNING, "smtp.listen", f"the collector listens on {smtp.listen}: report "
                               "mail from the internet cannot reach it (or read the report mailboxes with "
                               "imap.mailboxes)", "smtp.listen (e.g. 0.0.0.0:25)"))
    if not smtp.hostname:
        out.append(Finding("smtp", WARNING, "smtp.hostname", f"the collector greets as {socket.getfqdn()}; set "
                           "the name the report domains' MX records point at", "smtp.hostname"))
    if not smtp.starttls:
        out.append(Finding("smtp", BLOCKING, "smtp.starttls", "the collector offers no STARTTLS: reports "
                           "arrive in clear text", "smtp.starttls = true"))
    elif not smtp.tls_cert:
        out.append(Finding("smtp", BLOCKING, "smtp.tls_cert", "the collector's STARTTLS uses a self-signed "
                           f"certificate: set a certificate for {hostname(config)}", "smtp.tls_cert, smtp.tls_key"))
    else:
        out += _certificate_file(config, now)
    return out


def hostname(config: Config) -> str:
    """The collector's name: smtp.hostname, else this machine's."""
    return (config.smtp.hostname or socket.getfqdn()).lower().rstrip(".")


def _certificate_file(config: Config, now: datetime) -> list[Finding]:
    from postwatch import certificates

    smtp = config.smtp
    try:
        cert = certificates.read(smtp.tls_cert)
    except ValueError as exc:
        return [Finding("smtp", BLOCKING, "smtp.tls_cert", str(exc), "smtp.tls_cert")]
    out = certificate(cert, hostname(config), now, "smtp", "smtp.tls_cert", smtp.tls_cert)
    try:
        certificates.check_key(cert, smtp.tls_key or smtp.tls_cert, smtp.tls_cert)
    except ValueError as exc:
        out.append(Finding("smtp", BLOCKING, "smtp.tls_key", str(exc), "smtp.tls_key"))
    return out


def certificate(cert, name: str, now: datetime, check: str, key: str, where: str) -> list[Finding]:
    """A certificate's dates and names against `name`, as findings."""
    from postwatch.certificates import problems

    found = [Finding(check, BLOCKING if blocks else WARNING, key, sentence, key)
             for blocks, sentence in problems(cert, name, now, where)]
    return found or [Finding(check, OK, key, f"the certificate of {where} is valid for {name} until "
                             f"{cert.not_valid_after_utc:%Y-%m-%d}")]


def _local(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- DNS

def sending_domains(config: Config) -> list[str]:
    from store.addresses import domain_of

    found = [d.strip().lower().rstrip(".") for d in config.domains.sending_domains if d.strip()]
    return [d for d in dict.fromkeys(found + [domain_of(config.sender.from_address)]) if _public(d)]


def _public(domain: str) -> bool:
    """A name worth asking the DNS about (news@localhost, the default, is said by sender())."""
    return "." in domain and not _local(domain)


def return_path_domain(config: Config) -> str:
    from store.addresses import domain_of

    return (config.sender.return_path_domain or domain_of(config.sender.from_address)).lower().rstrip(".")


def dkim_public(config: Config) -> str:
    """The base64 public key of sender.dkim_key_file (a ValueError saying why not)."""
    from sender.dkim import DkimError, public_key

    try:
        pem = Path(config.sender.dkim_key_file).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the DKIM key {config.sender.dkim_key_file}: {exc.strerror}") from None
    try:
        return public_key(pem)
    except DkimError as exc:
        raise ValueError(f"{config.sender.dkim_key_file}: {exc}") from None


def dns_records(config: Config, resolver) -> list[Finding]:
    from analysis import posture

    rp_domain = return_path_domain(config)
    out: list[Finding] = []
    report_addresses = [f"bounces@{rp_domain}"] * _public(rp_domain)  # bounces+...@ arrive there
    for domain in list(dict.fromkeys(sending_domains(config) + [rp_domain] * _public(rp_domain))):
        out.append(_posture(lambda: posture.spf(resolver, domain, config.domains.sending_ips), "dns", domain,
                            f'TXT {domain} "v=spf1 ' + " ".join(_spf_terms(config)) + ' -all"')[0])
        if domain == rp_domain and domain not in sending_domains(config):
            continue  # the return path's domain needs SPF; DMARC is the From domain's
        dmarc, dmarc_detail = _posture(lambda: posture.dmarc(resolver, domain), "dns", f"_dmarc.{domain}",
                                       f'TXT _dmarc.{domain} "v=DMARC1; p=quarantine; rua=mailto:dmarc@{rp_domain}"')
        tls, tls_detail = _posture(lambda: posture.tls_rpt(resolver, domain), "dns", f"_smtp._tls.{domain}",
                                   f'TXT _smtp._tls.{domain} "v=TLSRPTv1; rua=mailto:tls-reports@{rp_domain}"')
        # TLS-RPT is good practice, not a reason to hold production back
        out += [dmarc, dataclasses.replace(tls, severity=WARNING) if tls.severity == BLOCKING else tls]
        for detail in (dmarc_detail, tls_detail):
            report_addresses += [u[7:].split("!")[0] for u in detail.get("rua", []) + detail.get("ruf", [])
                                 if u.lower().startswith("mailto:")]
    out += dkim_published(config, resolver)
    out += report_mx(config, resolver, report_addresses)
    return out


def _posture(check: Callable, area: str, name: str, fix: str) -> tuple[Finding, dict]:
    """One analysis/posture.py check of the record at `name` as a finding, and the record's detail."""
    from analysis.spf import DnsTrouble

    try:
        result = check()
    except DnsTrouble as exc:
        return Finding(area, WARNING, name, f"could not be checked: {exc}", fix), {}
    severity = {"ok": OK, "warning": WARNING}.get(result.status, BLOCKING)
    return Finding(area, severity, name, result.summary, "" if severity == OK else fix), result.detail


def _spf_terms(config: Config) -> list[str]:
    terms = []
    for ip in config.domains.sending_ips:
        ip = ip.strip()
        terms.append(("ip6:" if ":" in ip else "ip4:") + ip)
    return terms or ["ip4:YOUR-SENDING-IP"]


def dkim_published(config: Config, resolver) -> list[Finding]:
    from analysis import posture
    from analysis.spf import DnsTrouble
    from sender.dkim import record_name, txt_record, zone_text
    from store.addresses import domain_of

    s = config.sender
    if not s.dkim_key_file:
        return []  # said already: no key
    try:
        public = dkim_public(config)
    except ValueError:
        return []  # said already: the key cannot be read
    domain = (s.dkim_domain or domain_of(s.from_address)).lower().rstrip(".")
    name = record_name(s.dkim_selector, domain)
    publish = f"{name}. IN TXT {zone_text(txt_record(public))}"
    try:
        result = posture.dkim(resolver, domain, s.dkim_selector)
    except DnsTrouble as exc:
        return [Finding("dkim", WARNING, name, f"could not be checked: {exc}", publish)]
    if result.status == "missing":
        return [Finding("dkim", BLOCKING, name, f"the DKIM key of {s.dkim_key_file} is not published at {name}",
                        publish)]
    published = "".join(posture.record_tags(result.detail.get("record", "")).get("p", "").split())
    if published != public:
        return [Finding("dkim", BLOCKING, name, f"the TXT record at {name} holds another key than "
                        f"{s.dkim_key_file}: receivers cannot verify the signatures", publish)]
    severity = {"ok": OK, "warning": WARNING}.get(result.status, BLOCKING)
    return [Finding("dkim", severity, name, f"published, matches {s.dkim_key_file}: {result.summary}",
                    "" if severity == OK else publish)]


def report_mx(config: Config, resolver, addresses: list[str]) -> list[Finding]:
    """Each report address's domain has an MX at this collector, and the collector accepts it."""
    import dns.exception
    import dns.resolver

    from analysis.dns import failure
    from store.addresses import domain_of

    me = hostname(config)
    via_imap = bool(config.imap.mailboxes)
    out = []
    by_domain: dict[str, list[str]] = {}
    for address in dict.fromkeys(a.strip().lower() for a in addresses if "@" in a):
        by_domain.setdefault(domain_of(address), []).append(address)
    for domain, wanted in by_domain.items():
        shown = ", ".join(wanted)
        fix = f"MX {domain} -> {me} (or smtp.hostname)"
        try:
            hosts = [str(r.exchange).rstrip(".").lower() for r in resolver.resolve(domain, "MX")]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            hosts = []
        except dns.exception.DNSException as exc:
            out.append(Finding("mx", WARNING, domain, f"the MX of {domain} could not be looked up "
                               f"({failure(exc)})", fix))
            continue
        if me in hosts:
            out.append(Finding("mx", OK, domain, f"MX {me} receives {shown}"))
        elif via_imap:
            out.append(Finding("mx", WARNING, domain, f"the MX of {domain} is {', '.join(hosts) or 'missing'}, "
                               f"not {me}: fine when imap.mailboxes reads {shown}", fix))
        else:
            out.append(Finding("mx", BLOCKING, domain, f"{shown} cannot reach this collector: the MX of {domain} "
                               f"is {', '.join(hosts) or 'missing'}, not {me}", fix))
        if not via_imap:
            refused = [a for a in wanted if not any(fnmatch.fnmatchcase(a, p.lower()) for p in config.smtp.accept)]
            if refused:
                out.append(Finding("mx", BLOCKING, domain, f"the collector refuses {', '.join(refused)} "
                                   "(550 5.1.1)", "smtp.accept"))
    return out


def web_certificate(config: Config, resolver, now: datetime) -> list[Finding]:
    """The certificate the web server's public address presents (when it is https)."""
    from analysis.spf import DnsTrouble, addresses
    from postwatch.certificates import presented

    url = urlsplit(config.web.base_url)
    host = (url.hostname or "").lower()
    if url.scheme != "https" or _local(host):
        return []  # said already by sender()
    try:
        port = url.port or 443
        try:
            ips = [str(ipaddress.ip_address(host))]
        except ValueError:
            ips = addresses(resolver, host)
    except (DnsTrouble, ValueError) as exc:
        return [Finding("web", WARNING, "web.base_url", f"could not look up {host}: {exc}", "web.base_url")]
    if not ips:
        return [Finding("web", BLOCKING, "web.base_url", f"{host} has no address (A or AAAA record)",
                        f"A {host}")]
    try:
        cert = presented(ips[0], port, host, config.dns.timeout)
    except (OSError, ssl.SSLError) as exc:
        return [Finding("web", WARNING, "web.base_url", f"could not fetch the certificate of {host}:{port} "
                        f"({ips[0]}): {exc}", "web.base_url")]
    return certificate(cert, host, now, "web", "web.base_url",
                       f"{host}:{port}")
