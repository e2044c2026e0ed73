"""What a returned message says about where it came from.

Bounces and complaints carry the original message (or its headers) as a `message/rfc822`
or `text/rfc822-headers` part; its Message-ID, From, List-Id, Feedback-ID and campaign
headers tie the event back to a send.
"""
from __future__ import annotations

import email
import email.message
import ipaddress
import re

from ingest.config import DomainsConfig
from ingest.headers import addresses
from ingest.message import IndexedMessage, header_text
from ingest.mimesplit import message_from_bytes
from ingest.types import Attribution
from store.addresses import domain_of

RETURNED_TYPES = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers",
                  "text/rfc822", "message/partial")
CAMPAIGN_HEADERS = ("X-Campaign", "X-Campaign-ID", "X-CampaignID", "X-Mailgun-Campaign-Id",
                    "X-Campaign-Name", "X-MC-Campaign", "X-Postwatch-Campaign")


# An address of atoms and dots, alone or in angle brackets after a display name without
# comments or escapes: the common From, whose address getaddresses() reads as written.
_ATOMS = r'[^\s"()<>@,:;.\[\]\\]+(?:\.[^\s"()<>@,:;.\[\]\\]+)*'
_PLAIN_FROM = re.compile(rf'(?:"[^"\\\r\n]*"|[^"()<>@,:;\[\]\\\r\n])*<({_ATOMS}@{_ATOMS})>[ \t]*'
                         rf'|[ \t]*({_ATOMS}@{_ATOMS})[ \t]*').fullmatch


def first_address(value: str) -> str | None:
    """The first address with an "@" that `email.utils.getaddresses([value])` finds."""
    m = _PLAIN_FROM(value)
    if m:
        return m.group(1) or m.group(2)
    addrs = [a for _, a in addresses(value) if "@" in a]
    return addrs[0] if addrs else None


def returned_message(msg: email.message.Message) -> email.message.Message | None:
    """The returned original message (or its headers) inside a bounce or report."""
    for part in msg.walk():
        if part is msg:
            continue
        ctype = part.get_content_type()
        if ctype not in RETURNED_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            inner = payload[0] if payload and isinstance(payload[0], email.message.Message) else None
            if inner is not None:
                return inner
            continue
        if isinstance(payload, str) and payload.strip():
            raw = (part.get_payload(decode=True) or payload.encode("utf-8", "replace")).lstrip()
            return message_from_bytes(raw, IndexedMessage) or email.message_from_bytes(raw, _class=IndexedMessage)
    return None


def attribution_from(original: email.message.Message | None) -> Attribution:
    if original is None:
        return {}
    out: Attribution = {}
    mid = header_text(original, "Message-ID")
    if mid:
        out["message_id"] = mid.strip()
    sender = header_text(original, "From")
    if sender:
        address = first_address(sender)
        if address:
            out["from_address"] = address.lower()
            out["from_domain"] = domain_of(address)
    for key, name in (("subject", "Subject"), ("list_id", "List-Id"), ("feedback_id", "Feedback-ID")):
        value = header_text(original, name)
        if value:
            out[key] = value  # type: ignore[literal-required]
    for name in CAMPAIGN_HEADERS:
        value = header_text(original, name)
        if value:
            out["campaign"] = value
            break
    return out


# "from HOST (HOST [192.0.2.10])" / "from [IPv6:2001:db8::1]": the client an MTA took the
# message from, in the part of a Received header before " by ".
_RECEIVED_FROM = re.compile(r"^\s*from\s(.*?)(?:\sby\s|;|$)", re.I | re.S)
RECEIVED_TEXT = 1000  # a Received header's "from" clause is short: read no further
_BRACKETED = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]{3,45})\]")
# An IP address literal anywhere in a receiver's reply ("[192.0.2.11]", "192.0.2.11", "(2001:db8::1)").
_IP_LITERAL = re.compile(r"(?<![\w.:])(\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![\w.:])")


def received_ips(original: email.message.Message | None) -> list[str]:
    """The client IPs of the returned message's Received headers, newest hop first."""
    if original is None:
        return []
    out: list[str] = []
    for value in original.get_all("Received") or []:
        m = _RECEIVED_FROM.match(str(value)[:RECEIVED_TEXT])
        if not m:
            continue
        for ip in _BRACKETED.findall(m.group(1)):
            ip = _ip(ip)
            if ip and ip not in out:
                out.append(ip)
    return out


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


class OwnIps:
    """Our sending IPs ([domains] sending_ips, IPs or CIDR ranges) and our MTAs' names
    ([domains] mta_ips): what a bounce or complaint can be attributed to."""

    def __init__(self, domains: DomainsConfig | None = None) -> None:
        domains = domains or DomainsConfig()
        self.networks = []
        for entry in domains.sending_ips:
            try:
                self.networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                continue  # the blocklist and posture checks say so; attribution skips it
        self.mtas = {host.strip().lower().rstrip("."): _ip(ip) for host, _, ip in
                     (e.partition("=") for e in domains.mta_ips)}

    def ours(self, ip: str | None) -> bool:
        if not ip or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.networks)

    def in_text(self, text: str | None) -> str | None:
        """The first of our IPs a receiver's reply names (S3150, Spamhaus, Yahoo TSS, Gmail 4.7.0)."""
        if not text or not self.networks:
            return None
        for literal in _IP_LITERAL.findall(text):
            ip = _ip(literal)
            if ip and self.ours(ip):
                return ip
        return None

    def of_mta(self, reporting_mta: str | None) -> str | None:
        if not reporting_mta or not self.mtas:
            return None
        host = reporting_mta.partition(";")[2] if ";" in reporting_mta else reporting_mta
        host = host.strip().strip("[]").lower().rstrip(".")
        return self.mtas.get(host.split()[0]) if host else None


# Where an event's sending IP came from, in the order they are tried (DESIGN.md: attribution).
SOURCES = ("send_log", "source_ip", "received", "diagnostic", "reporting_mta")


def sending_ip(own: OwnIps, *, send_log_ip: str | None = None, source_ip: str | None = None,
               received: list[str] | tuple[str, ...] = (), diagnostic: str | None = None,
               reporting_mta: str | None = None) -> tuple[str | None, str | None]:
    """(our IP that sent the message an event reports on, the source that said so), or (None, None).

    The send log (through the VERP token) knows; an ARF report's Source-IP names the IP the
    provider took the message from (ours, when [domains] sending_ips does not say otherwise);
    the returned message's Received headers, the receiver's reply and the Reporting-MTA
    count only where they show one of our IPs or MTAs.
    """
    if send_log_ip:
        return send_log_ip, "send_log"
    ip = _ip(source_ip) if source_ip else None
    if ip and (not own.networks or own.ours(ip)):
        return ip, "source_ip"
    for ip in received:
        if own.ours(ip):
            return ip, "received"
    ip = own.in_text(diagnostic)
    if ip:
        return ip, "diagnostic"
    ip = own.of_mta(reporting_mta)
    if ip:
        return ip, "reporting_mta"
    return None, None
