#!/usr/bin/env python3
"""Parse time of feedback whose text holds one very long line: it must grow linearly.

Each shape (a Postfix DSN, a qmail and an Exim plain-text bounce, a Sendmail transcript, an
ARF complaint, a DMARC aggregate report mail) is built with one line of SIZE characters in
its human-readable part, made of one material repeated (words, addresses, "<<< 550 ",
spaces, dots, digits, ...). For each shape and size, the CPU time of the slowest material's
`parse_bytes` is printed, then the ratio time(1 MB) ÷ time(100 KB): about 10 when parsing is
linear (the goal is at most 30, to leave room for the machine's noise).

    python bench/long_lines.py [--sizes 100000,1000000] [--shape NAME ...] [--material NAME ...]
"""
from __future__ import annotations

import argparse
import base64
import gzip
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path[0] = str(ROOT)  # not bench/, whose ingest.py would hide the ingest package

GOAL_RATIO = 30.0  # time(1 MB) ÷ time(100 KB), at most (10 is linear)
SMALL, LARGE = 100_000, 1_000_000

# What a long line is made of: real bounces repeat these (a reply quoted over and over, a
# list of addresses, padding).
MATERIALS: dict[str, str] = {
    "words": "mailbox unavailable user unknown quota exceeded ",
    "addresses": "a@b.example ",
    "bracketed": "<a@b.example>... ",
    "replies": "<<< 550 ",
    "codes": "550 5.1.1 ",
    "spaces": " ",
    "dots": ".",
    "digits": "0123456789",
    "ips": "192.0.2.1 ",
    "dashes": "-",
    "colons": "rcpt to: ",
}


def line_of(material: str, size: int) -> str:
    unit = MATERIALS[material]
    return (unit * (size // len(unit) + 1))[:size]


def _headers(subject: str, sender: str, ctype: str) -> str:
    return (f"Return-Path: <>\nFrom: {sender}\nTo: bounces@sender.example\nSubject: {subject}\n"
            f"Date: Mon, 11 Feb 2019 11:23:41 +0100\nMessage-ID: <x1@mx.example.org>\n"
            f"MIME-Version: 1.0\nContent-Type: {ctype}\n")


_RETURNED = ("Content-Type: message/rfc822\n\nFrom: news@sender.example\nTo: user@example.org\n"
             "Subject: hello\nMessage-ID: <m1@sender.example>\n\nHello.\n")


def postfix(long: str) -> bytes:
    return (_headers("Undelivered Mail Returned to Sender", "MAILER-DAEMON@mx.example.org (Mail Delivery System)",
                     'multipart/report; report-type=delivery-status; boundary="B"')
            + "\n--B\nContent-Type: text/plain\n\n"
              "This is the mail system at host mx.example.org.\n\n"
              "I'm sorry to have to inform you that your message could not\nbe delivered to one or more "
              "recipients.\n\n"
              "<user@example.org>: host mx.example.org[192.0.2.5] said: 550 5.1.1\n"
              f"    <user@example.org>: Recipient address rejected: {long}\n\n"
              "--B\nContent-Type: message/delivery-status\n\n"
              "Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; user@example.org\n"
              "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\n\n"
              "--B\n" + _RETURNED + "\n--B--\n").encode()


def qmail(long: str) -> bytes:
    return (_headers("failure notice", "MAILER-DAEMON@mx.example.org", "text/plain")
            + "\nHi. This is the qmail-send program at mx.example.org.\n"
              "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
              "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
              f"<user@example.org>:\n192.0.2.5 does not like recipient.\nRemote host said: {long}\n\n"
              "--- Below this line is a copy of the message.\n\nFrom: news@sender.example\n\nHello.\n").encode()


def exim(long: str) -> bytes:
    return (_headers("Mail delivery failed: returning message to sender",
                     "Mail Delivery System <Mailer-Daemon@mx.example.org>", "text/plain")
            + "X-Failed-Recipients: user@example.org\n\n"
              "This message was created automatically by mail delivery software.\n\n"
              "A message that you sent could not be delivered to one or more of its\n"
              "recipients. This is a permanent error. The following address(es) failed:\n\n"
              f"  user@example.org\n    host mx.example.org [192.0.2.5]\n    SMTP error from remote mail server "
              f"after RCPT TO:<user@example.org>:\n    {long}\n\n"
              "------ This is a copy of the message, including all the headers. ------\n\n"
              "From: news@sender.example\n\nHello.\n").encode()


def sendmail(long: str) -> bytes:
    return (_headers("Returned mail: see transcript for details",
                     "Mail Delivery Subsystem <MAILER-DAEMON@mx.example.org>",
                     'multipart/report; report-type=delivery-status; boundary="B"')
            + "\n--B\n\nThe original message was received at Mon, 11 Feb 2019 11:23:41 +0100\n"
              "from localhost [127.0.0.1]\n\n"
              "   ----- The following addresses had permanent fatal errors -----\n<user@example.org>\n"
              "    (reason: 550 5.1.1 <user@example.org>... User unknown)\n\n"
              "   ----- Transcript of session follows -----\n"
              "... while talking to mx.example.org.:\n>>> RCPT To:<user@example.org>\n"
              f"<<< {long}\n550 5.1.1 <user@example.org>... User unknown\n\n"
              "--B\nContent-Type: message/delivery-status\n\n"
              "Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: RFC822; user@example.org\n"
              "Action: failed\nStatus: 5.1.1\nRemote-MTA: DNS; mx.example.org\n"
              "Diagnostic-Code: SMTP; 550 5.1.1 <user@example.org>... User unknown\n\n"
              "--B\n" + _RETURNED + "\n--B--\n").encode()


def arf(long: str) -> bytes:
    return (_headers("complaint about message from 192.0.2.1", "staff@hotmail.example",
                     'multipart/report; report-type=feedback-report; boundary="B"')
            + "\n--B\nContent-Type: text/plain\n\n"
              f"This is an email abuse report for an email message received from IP 192.0.2.1.\n{long}\n\n"
              "--B\nContent-Type: message/feedback-report\n\n"
              "Feedback-Type: abuse\nUser-Agent: SomeGenerator/1.0\nVersion: 1\n"
              "Original-Mail-From: <news@sender.example>\nOriginal-Rcpt-To: <user@example.org>\n"
              "Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT\nSource-IP: 192.0.2.1\n"
              "Reported-Domain: sender.example\n\n"
              "--B\n" + _RETURNED + "\n--B--\n").encode()


_AGGREGATE = b"""<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata><org_name>google.com</org_name><email>noreply-dmarc-support@google.com</email>
    <report_id>949348866075514174</report_id>
    <date_range><begin>1549756800</begin><end>1549843199</end></date_range>
  </report_metadata>
  <policy_published><domain>sender.example</domain><adkim>r</adkim><aspf>r</aspf>
    <p>none</p><sp>none</sp><pct>100</pct></policy_published>
  <record>
    <row><source_ip>192.0.2.1</source_ip><count>2</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>sender.example</header_from></identifiers>
    <auth_results><dkim><domain>sender.example</domain><result>pass</result></dkim>
      <spf><domain>sender.example</domain><result>pass</result></spf></auth_results>
  </record>
</feedback>
"""


def dmarc(long: str) -> bytes:
    attachment = base64.encodebytes(gzip.compress(_AGGREGATE, mtime=0)).decode()
    return (_headers("Report domain: sender.example Submitter: google.com Report-ID: 949348866075514174",
                     "noreply-dmarc-support@google.com", 'multipart/mixed; boundary="B"')
            + f"\n--B\nContent-Type: text/plain\n\nThis is an aggregate report from google.com.\n{long}\n\n"
              "--B\nContent-Type: application/gzip\nContent-Transfer-Encoding: base64\n"
              "Content-Disposition: attachment; filename=\"google.com!sender.example!1549756800!1549843199.xml.gz\"\n\n"
              + attachment + "\n--B--\n").encode()


SHAPES: dict[str, Callable[[str], bytes]] = {
    "postfix": postfix, "qmail": qmail, "exim": exim, "sendmail": sendmail, "arf": arf, "dmarc": dmarc,
}


def message(shape: str, material: str, size: int) -> bytes:
    return SHAPES[shape](line_of(material, size))


# Other layouts of SIZE characters that once cost their square: many lines rather than one
# long line (each within the line cut), a folded field, a tag left open.
def _blank_lines(size: int) -> bytes:
    return qmail("550 5.1.1 user unknown\n" + " \n" * (size // 2))


def _address_lines(size: int) -> bytes:
    line = ("a@b.example " * 170)[:2000]  # no recipient's position: every address is judged
    return qmail("550 5.1.1 user unknown\n" + (line + "\n") * (size // 2001))


def _recipient_lines(size: int) -> bytes:
    return qmail("".join(f"<u{i}@example.org>: 550 5.1.1 user unknown\n" for i in range(size // 44)))


def _folded_field(size: int) -> bytes:
    return postfix("x").replace(b"Diagnostic-Code: smtp; 550 5.1.1 user unknown",
                                b"Diagnostic-Code: smtp; 550 5.1.1 user unknown" + b"\n x" * (size // 3))


def _folded_arf_field(size: int) -> bytes:
    return arf("x").replace(b"Source-IP: 192.0.2.1", b"Source-IP: 192.0.2.1" + b"\n x" * (size // 3))


def _open_tags(size: int) -> bytes:
    return (_headers("Undeliverable", "postmaster@mx.example.org", "text/html")
            + "\n<html><body><p>Delivery has failed to these recipients</p><p>user@example.org</p>"
              "<p>550 5.1.1 user unknown</p>" + "<<< 550 " * (size // 8) + "\n").encode()


RECORDS = 1000  # under the 2,000 MIME parts a message may hold (each DSN record counts as one)


def _repeated_records(size: int) -> bytes:
    """One recipient named in RECORDS delivery-status records and as often in the text, whose
    lines grow with SIZE: each record points at the same block of text (read once, not per
    record: RECORDS times the block was the square of the message)."""
    record = "Final-Recipient: rfc822; user@example.org\nAction: failed\nStatus: 5.1.1\n\n"
    words = "x" * max(1, size // RECORDS - 90)
    said = f"<user@example.org>: host mx.example.org[192.0.2.5] said: 550 5.1.1 {words}\n"
    raw = postfix("user unknown").decode()
    raw = raw.replace("<user@example.org>: host", said * RECORDS + "<user@example.org>: host", 1)
    return raw.replace("Final-Recipient:", record * RECORDS + "Final-Recipient:", 1).encode()


def _unknown_shape(size: int) -> bytes:
    """A bounce of no shape the readers know (flufl.bounce's detectors are the last resort)."""
    return (_headers("Returned mail", "postmaster@mx.example.org", "text/plain")
            + "\n" + "Your message to somebody could not be handled at this time, sorry\n" * (size // 66)).encode()


LAYOUTS: dict[str, Callable[[int], bytes]] = {
    "blank lines": _blank_lines, "address lines": _address_lines, "recipient lines": _recipient_lines,
    "folded DSN field": _folded_field, "folded ARF field": _folded_arf_field, "open HTML tags": _open_tags,
    "repeated records": _repeated_records, "unknown shape": _unknown_shape,
}


def cpu_seconds(raw: bytes, config=None, least: float = 0.2) -> float:
    """CPU time of one `parse_bytes` of `raw`: the best of the runs made in `least` seconds
    (one run when it takes more than 50 ms)."""
    from ingest.parse import parse_bytes

    best = None
    total = 0.0
    while total < least:  # enough runs to see past the clock's grain, never more than needed
        t0 = time.process_time()
        parse_bytes(raw, config, detail=False)
        took = time.process_time() - t0
        total += took + 1e-4
        best = took if best is None else min(best, took)
        if took > 0.05:
            break
    return best or 0.0


def measure(build: Callable[[int], bytes], sizes: list[int], config=None) -> list[float]:
    """CPU seconds of one parse of what `build` makes at each size."""
    return [cpu_seconds(build(size), config) for size in sizes]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=f"{SMALL},{LARGE}", help="line lengths, comma-separated (first and last "
                                                                "give the ratio)")
    ap.add_argument("--shape", action="append", choices=sorted(SHAPES), help="only these shapes")
    ap.add_argument("--material", action="append", choices=sorted(MATERIALS), help="only these materials")
    ap.add_argument("--no-layouts", action="store_true", help="only the one-long-line shapes")
    args = ap.parse_args(argv)
    from bench import benchlib
    from ingest.config import IngestConfig
    from ingest.parse import prepare

    config = IngestConfig(parse_timeout=0)  # measured whole, however long it takes
    prepare(config)
    sizes = [int(s) for s in args.sizes.split(",")]
    grow = sizes[-1] / sizes[0]
    rows: list[tuple[str, list[float], str, float]] = []  # (what, seconds per size, slowest material, ratio)
    for shape in args.shape or list(SHAPES):
        per_material = {m: measure(lambda size: message(shape, m, size), sizes, config)
                        for m in args.material or list(MATERIALS)}
        slowest = max(per_material, key=lambda m: per_material[m][-1])
        ratio = max(t[-1] / max(t[0], 1e-6) for t in per_material.values())
        rows.append((shape, per_material[slowest], slowest, ratio))
    for name, build in ({} if args.no_layouts or args.shape else LAYOUTS).items():
        t = measure(build, sizes, config)
        rows.append((name, t, "-", t[-1] / max(t[0], 1e-6)))

    print(f"{'shape':18}" + "".join(f"{_size(size):>12}" for size in sizes)
          + f"   {'slowest material':16}   {_size(sizes[-1])} ÷ {_size(sizes[0])}")
    for name, t, material, ratio in rows:
        print(f"{name:18}" + "".join(f"{x * 1000:>9.1f} ms" for x in t) + f"   {material:16}   {ratio:6.1f}")
    print(f"(linear: {grow:.0f}; goal: at most {GOAL_RATIO / 10 * grow:.0f})")
    slowest_line = max(t[-1] for name, t, material, _ in rows if name in SHAPES)
    worst = max(ratio for *_, ratio in rows)
    benchlib.report("long_lines", "-", f"{_size(sizes[-1])} line, slowest shape", round(slowest_line * 1000, 1),
                    "ms", "≤ 1000 ms", slowest_line <= 1.0)
    benchlib.report("long_lines", "-", f"{_size(sizes[-1])} ÷ {_size(sizes[0])}", round(worst, 1), "×",
                    f"≤ {GOAL_RATIO / 10 * grow:.0f}×", worst <= GOAL_RATIO / 10 * grow, f"{grow:.0f}× is linear")
    return 0


def _size(n: int) -> str:
    return f"{n / 1_000_000:g} MB" if n >= 1_000_000 else f"{n / 1000:g} KB"


if __name__ == "__main__":
    sys.exit(main())
