"""Raw feedback messages in the shapes real systems send, for the demo history.

Every builder returns the bytes of one message as it would arrive at a report address:
a Postfix DSN (RFC 3464, with the returned headers), Gmail's and Yahoo's own bounce notices,
ARF complaints in Yahoo's CFL and Microsoft's JMRP shapes, DMARC aggregate reports (gzip'd XML
attached to a mail, as Google, Microsoft and Yahoo send them) and SMTP TLS reports (gzip'd
JSON). The pipeline reads them like any other input: nothing here knows about the store.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime
from xml.sax.saxutils import escape

from store.addresses import domain_of, split_address


@dataclass(frozen=True)
class Sent:
    """The original message a bounce or complaint returns (its headers, as the sender wrote them)."""

    recipient: str
    from_address: str  # news@news.example.com
    from_name: str
    subject: str
    campaign: str
    message_id: str  # <...@news.example.com>
    sending_ip: str
    sent_at: datetime
    return_path_domain: str

    @property
    def from_domain(self) -> str:
        return domain_of(self.from_address)

    @property
    def return_path(self) -> str:
        # classic VERP (DESIGN.md): the recipient, readable without the send log
        local, domain = split_address(self.recipient)
        return f"bounces+{local}={domain}@{self.return_path_domain}"

    def headers(self) -> str:
        unsub = self.message_id.strip("<>").split("@")[0]
        return (
            f"Return-Path: <{self.return_path}>\n"
            f"Received: from out-{self.sending_ip.rsplit('.', 1)[1]}.{self.from_domain} "
            f"(out-{self.sending_ip.rsplit('.', 1)[1]}.{self.from_domain} [{self.sending_ip}])\n"
            f"\tby mx.{domain_of(self.recipient)}; {_date(self.sent_at)}\n"
            f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={self.from_domain}; s=pw1;\n"
            f"\th=from:to:subject:date:message-id:list-unsubscribe; bh=Zm9vYmFy; b=YmFyYmF6\n"
            f"From: {self.from_name} <{self.from_address}>\n"
            f"To: {self.recipient}\n"
            f"Subject: {self.subject}\n"
            f"Date: {_date(self.sent_at)}\n"
            f"Message-ID: {self.message_id}\n"
            f"List-Unsubscribe: <mailto:unsubscribe+{unsub}@{self.return_path_domain}>, "
            f"<https://{self.from_domain}/u/{unsub}>\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\n"
            f"Feedback-ID: {self.campaign}:demo:bulk:postwatch\n"
            f"X-Postwatch-Campaign: {self.campaign}\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 7bit\n")


def _date(when: datetime) -> str:
    return format_datetime(when.astimezone(timezone.utc))


def _stamp(when: datetime) -> str:
    return when.strftime("%Y%m%d%H%M%S")


def postfix_dsn(sent: Sent, *, when: datetime, queue_id: str, remote_mta: str, remote_ip: str,
                status: str, diagnostic: str, command: str = "RCPT TO") -> bytes:
    """Postfix's bounce: the human part, message/delivery-status, the returned headers."""
    reporting = f"smtp-out.{sent.from_domain}"
    boundary = f"{queue_id}.{int(when.timestamp())}/{reporting}"
    wrapped = _wrap(diagnostic, 70, "    ")
    action = "delayed" if status.startswith("4") else "failed"
    return (
        "Return-Path: <>\n"
        f"Received: by {reporting} (Postfix)\n"
        f"\tid {queue_id}; {_date(when)}\n"
        f"Date: {_date(when)}\n"
        f"From: MAILER-DAEMON@{reporting} (Mail Delivery System)\n"
        f"Subject: {'Delayed Mail (still being retried)' if action == 'delayed' else 'Undelivered Mail Returned to Sender'}\n"
        f"To: {sent.return_path}\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status;\n"
        f"\tboundary=\"{boundary}\"\n"
        "Content-Transfer-Encoding: 8bit\n"
        f"Message-Id: <{_stamp(when)}.{queue_id}@{reporting}>\n"
        "\n"
        "This is a MIME-encapsulated message.\n"
        "\n"
        f"--{boundary}\n"
        "Content-Description: Notification\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        f"This is the mail system at host {reporting}.\n"
        "\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n"
        "\n"
        "For further assistance, please send mail to postmaster.\n"
        "\n"
        "                   The mail system\n"
        "\n"
        f"<{sent.recipient}>: host {remote_mta}[{remote_ip}] said: {wrapped} (in reply to {command}\n"
        "    command)\n"
        "\n"
        f"--{boundary}\n"
        "Content-Description: Delivery report\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        f"Reporting-MTA: dns; {reporting}\n"
        f"X-Postfix-Queue-ID: {queue_id}\n"
        f"X-Postfix-Sender: rfc822; {sent.return_path}\n"
        f"Arrival-Date: {_date(sent.sent_at)}\n"
        "\n"
        f"Final-Recipient: rfc822; {sent.recipient}\n"
        f"Original-Recipient: rfc822;{sent.recipient}\n"
        f"Action: {action}\n"
        f"Status: {status}\n"
        f"Remote-MTA: dns; {remote_mta}\n"
        f"Diagnostic-Code: smtp; {wrapped}\n"
        f"Last-Attempt-Date: {_date(when)}\n"
        "\n"
        f"--{boundary}\n"
        "Content-Description: Undelivered Message Headers\n"
        "Content-Type: text/rfc822-headers\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        f"{sent.headers()}"
        "\n"
        f"--{boundary}--\n").encode()


def yahoo_arf(sent: Sent, *, when: datetime, report_id: str) -> bytes:
    """A complaint in Yahoo's complaint feedback loop (CFL) shape: the recipient is kept."""
    boundary = f"----=_Part_{report_id}"
    return (
        "Return-Path: <feedback@arf.mail.yahoo.com>\n"
        "Received: from mta1003.mail.gq1.yahoo.com (mta1003.mail.gq1.yahoo.com [98.136.100.50])\n"
        f"\tby mx.{sent.return_path_domain}; {_date(when)}\n"
        "From: Yahoo! Mail AntiSpam Feedback <feedback@arf.mail.yahoo.com>\n"
        f"To: fbl@{sent.return_path_domain}\n"
        f"Subject: FW: {sent.subject}\n"
        f"Date: {_date(when)}\n"
        f"Message-ID: <{report_id}.arf@mta1003.mail.gq1.yahoo.com>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=feedback-report;\n"
        f"\tboundary=\"{boundary}\"\n"
        "\n"
        f"--{boundary}\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "Content-Transfer-Encoding: 7bit\n"
        "\n"
        f"This is an email abuse report for an email message received from IP {sent.sending_ip} on "
        f"{_date(sent.sent_at)}.\n"
        "For more information about this format please see http://www.mipassoc.org/arf/.\n"
        "\n"
        f"--{boundary}\n"
        "Content-Type: message/feedback-report\n"
        "\n"
        "Feedback-Type: abuse\n"
        "User-Agent: Yahoo!-Mail-Feedback/2.0\n"
        "Version: 0.1\n"
        f"Original-Mail-From: <{sent.return_path}>\n"
        f"Original-Rcpt-To: {sent.recipient}\n"
        f"Arrival-Date: {_date(when)}\n"
        f"Received-Date: {_date(sent.sent_at)}\n"
        f"Source-IP: {sent.sending_ip}\n"
        f"Reported-Domain: {sent.from_domain}\n"
        f"Authentication-Results: mta1003.mail.gq1.yahoo.com  from={sent.from_domain}; "
        "domainkeys=neutral (no sig);\n"
        f"  from={sent.from_domain}; dkim=pass (ok)\n"
        "\n"
        f"--{boundary}\n"
        "Content-Type: message/rfc822\n"
        "\n"
        f"{sent.headers()}"
        "\n"
        "Hello, here is this week's news.\n"
        "\n"
        f"--{boundary}--\n").encode()


def microsoft_jmrp(sent: Sent, *, when: datetime, report_id: str) -> bytes:
    """A complaint from Microsoft's JMRP: the recipient is redacted in the report, kept inside."""
    boundary = f"--JMRP_BOUNDARY_{report_id}"
    rdomain = domain_of(sent.recipient)
    return (
        f"Return-Path: <staff@{rdomain}>\n"
        "Received: from BN8NAM12HT123.eop-nam12.prod.protection.outlook.com (40.92.0.1)\n"
        f"\tby mx.{sent.return_path_domain}; {_date(when)}\n"
        f"From: staff@{rdomain}\n"
        f"To: fbl@{sent.return_path_domain}\n"
        f"Subject: complaint about message from {sent.sending_ip}\n"
        f"Date: {_date(when)}\n"
        f"Message-ID: <JMRP.{report_id}@{rdomain}>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=feedback-report;\n"
        f"\tboundary=\"{boundary}\"\n"
        "\n"
        f"--{boundary}\n"
        "Content-Type: text/plain; charset=\"us-ascii\"\n"
        "\n"
        f"This is an email abuse report for an email message received from IP {sent.sending_ip} on "
        f"{_date(sent.sent_at)}.\n"
        "For more information about this format please see http://www.mipassoc.org/arf/.\n"
        "\n"
        f"--{boundary}\n"
        "Content-Type: message/feedback-report\n"
        "\n"
        "Feedback-Type: abuse\n"
        "User-Agent: Hotmail FBL\n"
        "Version: 0.1\n"
        f"Original-Mail-From: <{sent.return_path}>\n"
        f"Arrival-Date: {_date(when)}\n"
        f"Source-IP: {sent.sending_ip}\n"
        f"Original-Rcpt-To: {sent.recipient}\n"
        f"Reported-Domain: {sent.from_domain}\n"
        "\n"
        f"--{boundary}\n"
        "Content-Type: message/rfc822\n"
        "\n"
        f"X-HmXmrOriginalRecipient: <{sent.recipient}>\n"
        f"Authentication-Results: {rdomain}; spf=pass (sender IP is {sent.sending_ip}) "
        f"smtp.mailfrom={sent.return_path_domain}; dkim=pass header.d={sent.from_domain}\n"
        f"{sent.headers()}"
        "\n"
        "Hello, here is this week's news.\n"
        "\n"
        f"--{boundary}--\n").encode()


@dataclass(frozen=True)
class DmarcRow:
    """One row of an aggregate report: a source, its count, and what the receiver saw."""

    source_ip: str
    count: int
    dkim_pass: bool
    spf_pass: bool
    header_from: str
    dkim_domain: str
    dkim_selector: str
    spf_domain: str
    disposition: str = "none"
    override: str | None = None  # forwarded, mailing_list, ...


@dataclass(frozen=True)
class Reporter:
    org_name: str
    email: str
    extra_contact: str
    file_prefix: str  # the file name's first part: google.com, enterprise.protection.outlook.com


def dmarc_aggregate(reporter: Reporter, *, domain: str, policy: str, begin: datetime, rows: list[DmarcRow],
                    report_id: str, sent_at: datetime) -> bytes:
    """A DMARC aggregate report (RFC 7489 appendix C) as gzip'd XML attached to a mail."""
    end = begin + timedelta(days=1) - timedelta(seconds=1)
    records = []
    for r in rows:
        dkim = "pass" if r.dkim_pass else "fail"
        spf = "pass" if r.spf_pass else "fail"
        reason = (f"<reason><type>{r.override}</type><comment></comment></reason>" if r.override else "")
        records.append(
            "<record><row>"
            f"<source_ip>{r.source_ip}</source_ip><count>{r.count}</count>"
            f"<policy_evaluated><disposition>{r.disposition}</disposition><dkim>{dkim}</dkim>"
            f"<spf>{spf}</spf>{reason}</policy_evaluated></row>"
            f"<identifiers><header_from>{escape(r.header_from)}</header_from></identifiers>"
            "<auth_results>"
            f"<dkim><domain>{escape(r.dkim_domain)}</domain><selector>{escape(r.dkim_selector)}</selector>"
            f"<result>{dkim}</result></dkim>"
            f"<spf><domain>{escape(r.spf_domain)}</domain><scope>mfrom</scope><result>{spf}</result></spf>"
            "</auth_results></record>")
    xml = (
        '<?xml version="1.0" encoding="UTF-8" ?>\n<feedback>'
        "<version>1.0</version>"
        f"<report_metadata><org_name>{escape(reporter.org_name)}</org_name><email>{reporter.email}</email>"
        f"<extra_contact_info>{escape(reporter.extra_contact)}</extra_contact_info>"
        f"<report_id>{report_id}</report_id>"
        f"<date_range><begin>{int(begin.timestamp())}</begin><end>{int(end.timestamp())}</end></date_range>"
        "</report_metadata>"
        f"<policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>{policy}</p>"
        f"<sp>{policy}</sp><pct>100</pct><np>{policy}</np></policy_published>"
        + "".join(records) + "</feedback>\n")
    name = f"{reporter.file_prefix}!{domain}!{int(begin.timestamp())}!{int(end.timestamp())}.xml.gz"
    msg = MIMEMultipart()
    msg["From"] = f"{reporter.org_name} <{reporter.email}>"
    msg["To"] = f"dmarc-reports@{domain}"
    msg["Subject"] = f"Report domain: {domain} Submitter: {reporter.file_prefix} Report-ID: <{report_id}>"
    msg["Date"] = _date(sent_at)
    msg["Message-ID"] = f"<{report_id}@{reporter.file_prefix}>"
    msg.attach(MIMEText(f"This is an aggregate report from {reporter.org_name}.\n"))
    part = MIMEApplication(gzip.compress(xml.encode(), mtime=0), "gzip", name=name)
    part.add_header("Content-Disposition", "attachment", filename=name)
    msg.attach(part)
    msg.set_boundary(f"==_demo_{report_id[:40]}")  # the same bytes on every run
    return msg.as_bytes()


@dataclass(frozen=True)
class TlsFailure:
    result_type: str  # certificate-expired, starttls-not-supported, ...
    receiving_mx: str
    receiving_ip: str
    sending_ip: str
    count: int


def tls_report(reporter: Reporter, *, domain: str, mx_patterns: list[str], begin: datetime, ok: int,
               failures: list[TlsFailure], report_id: str, sent_at: datetime) -> bytes:
    """An SMTP TLS report (RFC 8460) as gzip'd JSON attached to a mail."""
    end = begin + timedelta(days=1) - timedelta(seconds=1)
    body = {
        "organization-name": reporter.org_name,
        "date-range": {"start-datetime": begin.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "end-datetime": end.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "contact-info": reporter.extra_contact,
        "report-id": report_id,
        "policies": [{
            "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: testing",
                                                              *(f"mx: {p}" for p in mx_patterns),
                                                              "max_age: 86400"],
                       "policy-domain": domain, "mx-host": mx_patterns},
            "summary": {"total-successful-session-count": ok,
                        "total-failure-session-count": sum(f.count for f in failures)},
            "failure-details": [{"result-type": f.result_type, "sending-mta-ip": f.sending_ip,
                                 "receiving-mx-hostname": f.receiving_mx, "receiving-ip": f.receiving_ip,
                                 "failed-session-count": f.count} for f in failures],
        }],
    }
    name = f"{reporter.file_prefix}!{domain}!{int(begin.timestamp())}!{int(end.timestamp())}!001.json.gz"
    msg = MIMEMultipart()
    msg["From"] = f"{reporter.org_name} <{reporter.email}>"
    msg["To"] = f"tls-reports@{domain}"
    msg["Subject"] = f"Report Domain: {domain} Submitter: {reporter.file_prefix} Report-ID: <{report_id}>"
    msg["Date"] = _date(sent_at)
    msg["Message-ID"] = f"<{report_id}@{reporter.file_prefix}>"
    msg["TLS-Report-Domain"] = domain
    msg["TLS-Report-Submitter"] = reporter.file_prefix
    msg.attach(MIMEText(f"This is an aggregate TLS report from {reporter.org_name}.\n"))
    part = MIMEApplication(gzip.compress(json.dumps(body).encode(), mtime=0), "tlsrpt+gzip", name=name)
    part.add_header("Content-Disposition", "attachment", filename=name)
    msg.attach(part)
    msg.set_boundary(f"==_demo_{report_id[:40]}")  # the same bytes on every run
    return msg.as_bytes()


def _wrap(text: str, width: int, indent: str) -> str:
    """Fold a long diagnostic the way Postfix does (continuation lines indented)."""
    words, lines, line = text.split(" "), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    lines.append(line)
    return ("\n" + indent).join(lines)
