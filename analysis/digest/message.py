"""The digest as one e-mail: multipart/alternative (plain text, then HTML with its charts in a
multipart/related by Content-ID), and a CSV attachment with the table behind each chart. Or
the same on disk, for a preview.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

from analysis.digest import render
from analysis.digest.charts import Chart
from analysis.digest.figures import Digest, Table
from store.addresses import domain_of

POLICY = SMTP.clone(max_line_length=200)  # CRLF, as it goes on the wire and is signed


def table_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow(["" if v is None else (v.isoformat() if hasattr(v, "isoformat") else v) for v in row])
    return out.getvalue()


def subject(digest: Digest) -> str:
    kind = digest.period.kind.capitalize()
    head = f"[postwatch] {kind} digest {digest.period.label} ({digest.scope.label})"
    if not digest.has_data:
        return head + ": no data"
    sent, rate = digest.figure("sent"), digest.figure("complaint_rate")
    return head + f": {render.num(sent.value)} sent, complaints {render.pct(rate.value, 3)}"


@dataclass(frozen=True)
class Rendered:
    digest: Digest
    charts: list[Chart]

    def html(self, image_src=None) -> str:
        return render.html(self.digest, self.charts, image_src or (lambda c: f"{c.name}.png"))

    def text(self) -> str:
        return render.text(self.digest, self.charts)


def build(digest: Digest) -> Rendered:
    from analysis.digest.charts import charts_for

    return Rendered(digest, charts_for(digest))


def message(rendered: Rendered, *, mail_from: str, to: tuple[str, ...], now: datetime) -> EmailMessage:
    digest, charts = rendered.digest, rendered.charts
    domain = domain_of(mail_from) or "localhost"
    cids = {c.name: make_msgid(c.name, domain=domain) for c in charts}
    msg = EmailMessage(policy=POLICY)
    msg["From"] = mail_from
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject(digest)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid("digest", domain=domain)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    msg["X-Postwatch-Report"] = f"{digest.period.kind} {digest.period.start}/{digest.period.end}"
    msg.set_content(rendered.text(), subtype="plain", charset="utf-8")
    msg.add_alternative(rendered.html(lambda c: "cid:" + cids[c.name][1:-1]), subtype="html", charset="utf-8")
    html_part = msg.get_payload()[1]
    for c in charts:
        html_part.add_related(c.png, "image", "png", cid=cids[c.name], filename=f"{c.name}.png",
                              disposition="inline")
    for c in charts:
        msg.add_attachment(table_csv(c.table).encode("utf-8"), "text", "csv", filename=f"{c.name}.csv")
    return msg


def write_preview(rendered: Rendered, folder: Path) -> list[Path]:
    """digest.html (images by file name), digest.txt, NAME.png and NAME.csv per chart."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []

    def put(name: str, data: bytes | str) -> None:
        path = folder / name
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        written.append(path)

    put("digest.html", rendered.html())
    put("digest.txt", rendered.text())
    for c in rendered.charts:
        put(f"{c.name}.png", c.png)
        put(f"{c.name}.csv", table_csv(c.table))
    return written
