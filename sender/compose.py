"""One message from a campaign template and a recipient row.

A template folder holds `subject.txt`, `body.txt` and (optionally) `body.html`, all Jinja2:
the HTML autoescaped, every template strict (a field a row lacks is an error of that row,
never an empty string in someone's mail). Besides the row's own fields a template sees
`email`, `campaign` and `unsubscribe_url` (use it as it is, unfiltered).

The message carries what DESIGN.md fixes: the signed return path `bounces+t-TOKEN@`,
`Feedback-ID: campaign:customer:type:sender`, `List-Unsubscribe` (mailto and https, with
the RFC 8058 one-click `List-Unsubscribe-Post`), a Message-ID that is the same every time
the same send-log row is sent, and UTM parameters on its links when the campaign asks.
"""
from __future__ import annotations

import email.policy
import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ingest import verp
from sender.tracking import HREF, Tracking, track_html
from store.addresses import domain_of

SUBJECT, TEXT, HTML = "subject.txt", "body.txt", "body.html"
UNSUBSCRIBE_MARK = "@@postwatch-unsubscribe-url@@"  # stands in for the link while a row is checked
_URL = re.compile(r"""https?://[^\s<>"'()]+""")


class TemplateError(ValueError):
    """A template folder that cannot be read or compiled; the message says which file and why."""


class RenderError(ValueError):
    """A row that the template cannot be rendered with (e.g. a field it lacks)."""


@dataclass(frozen=True)
class Template:
    folder: Path
    subject: Any
    text: Any
    html: Any | None


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


@dataclass(frozen=True)
class Identity:
    """What every message of one campaign shares."""

    campaign: str
    from_address: str
    return_path_domain: str
    base_url: str
    verp_secret: str
    unsubscribe_secret: str
    feedback_customer: str = "postwatch"
    feedback_type: str = "bulk"
    feedback_sender: str = "postwatch"
    utm: Mapping[str, str] = field(default_factory=dict)  # utm_source=..., added to every link

    @property
    def from_domain(self) -> str:
        return domain_of(self.from_address)

    @property
    def feedback_id(self) -> str:
        # Gmail reads the fields split on ':'; a campaign name carrying one would shift them
        return ":".join((self.campaign.replace(":", "-"), self.feedback_customer, self.feedback_type,
                         self.feedback_sender))


def load_template(folder: str | Path) -> Template:
    """Compile the templates of `folder`; raises TemplateError with a sentence."""
    from jinja2 import Environment, StrictUndefined, TemplateSyntaxError

    folder = Path(folder)
    if not folder.is_dir():
        raise TemplateError(f"template folder {folder} does not exist")
    for name in (SUBJECT, TEXT):
        if not (folder / name).is_file():
            raise TemplateError(f"template folder {folder} has no {name} (it needs {SUBJECT}, {TEXT}, "
                                f"and optionally {HTML})")
    plain = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    marked = Environment(undefined=StrictUndefined, autoescape=True, keep_trailing_newline=True)
    compiled = {}
    for name, env in ((SUBJECT, plain), (TEXT, plain), (HTML, marked)):
        path = folder / name
        if not path.is_file():
            compiled[name] = None
            continue
        try:
            compiled[name] = env.from_string(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise TemplateError(f"{path} is not UTF-8 text") from None
        except TemplateSyntaxError as exc:
            raise TemplateError(f"{path}, line {exc.lineno}: {exc.message}") from None
    return Template(folder, compiled[SUBJECT], compiled[TEXT], compiled[HTML])


def render(template: Template, fields: Mapping[str, Any], unsubscribe_url: str = UNSUBSCRIBE_MARK) -> Rendered:
    """The three parts for one row; raises RenderError with what went wrong."""
    from jinja2 import TemplateError as JinjaError

    values = dict(fields)
    values["unsubscribe_url"] = unsubscribe_url
    try:
        subject = " ".join(template.subject.render(values).split())
        text = template.text.render(values)
        body = template.html.render(values) if template.html is not None else None
    except JinjaError as exc:
        raise RenderError(f"the template cannot be rendered: {exc}") from None
    except Exception as exc:  # a filter or expression that fails on this row's values
        raise RenderError(f"the template cannot be rendered: {type(exc).__name__}: {exc}") from None
    if not subject:
        raise RenderError("the subject is empty")
    return Rendered(subject, text, body)


def add_utm(url: str, utm: Mapping[str, str]) -> str:
    """`url` with the UTM parameters it does not already carry."""
    if not utm:
        return url
    parts = urlsplit(url)
    have = {k for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    extra = [(k, v) for k, v in utm.items() if k not in have]
    if not extra:
        return url
    query = parts.query + ("&" if parts.query else "") + urlencode(extra)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def tag_links(rendered: Rendered, utm: Mapping[str, str], skip_prefix: str) -> Rendered:
    """Add UTM parameters to every http(s) link but the unsubscribe one."""
    if not utm:
        return rendered

    def plain(match: re.Match) -> str:
        url = match.group(0)
        return url if url.startswith(skip_prefix) or UNSUBSCRIBE_MARK in url else add_utm(url, utm)

    def href(match: re.Match) -> str:
        url = html.unescape(match.group(3))
        if url.startswith(skip_prefix):
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{html.escape(add_utm(url, utm))}{match.group(2)}"

    body = HREF.sub(href, rendered.html) if rendered.html is not None else None
    return Rendered(rendered.subject, _URL.sub(plain, rendered.text), body)


def message_id(campaign: str, recipient: str, send_id: int, domain: str) -> str:
    """The same for every try of one send-log row, and unguessable from outside."""
    digest = hashlib.sha256(f"{campaign}\0{recipient}\0{send_id}".encode()).hexdigest()[:24]
    return f"<{send_id}.{digest}@{domain}>"


def unsubscribe_links(identity: Identity, send_id: int) -> tuple[str, str]:
    """(https URL, mailto address) of the unsubscribe token of send-log row `send_id`."""
    token = verp.make_token(send_id, identity.unsubscribe_secret, purpose="unsubscribe")
    url = f"{identity.base_url.rstrip('/')}/unsubscribe/{token}"
    return url, f"unsubscribe+{token}@{identity.return_path_domain}"


@dataclass(frozen=True)
class Composed:
    send_id: int
    recipient: str
    mail_from: str  # the envelope sender: the signed return path
    message_id: str
    message: EmailMessage
    smtputf8: bool

    def as_bytes(self) -> bytes:
        policy = email.policy.SMTPUTF8 if self.smtputf8 else email.policy.SMTP
        return self.message.as_bytes(policy=policy)


def compose(template: Template, fields: Mapping[str, Any], recipient: str, send_id: int,
            identity: Identity, now: datetime, tracking: Tracking | None = None) -> Composed:
    """The message of send-log row `send_id` to `recipient`; raises RenderError. With
    `tracking`, its HTML part gets the pixel and tracked links (sender/tracking.py)."""
    url, mailto = unsubscribe_links(identity, send_id)
    values = {**fields, "email": recipient, "campaign": identity.campaign}
    rendered = tag_links(render(template, values, unsubscribe_url=url), identity.utm,
                         skip_prefix=url)
    if tracking is not None and rendered.html is not None:
        rendered = Rendered(rendered.subject, rendered.text, track_html(rendered.html, send_id, tracking))
    smtputf8 = not (recipient.isascii() and identity.from_address.isascii())
    msg = EmailMessage(policy=email.policy.SMTPUTF8 if smtputf8 else email.policy.SMTP)
    mid = message_id(identity.campaign, recipient, send_id, identity.from_domain)
    msg["From"] = identity.from_address
    msg["To"] = recipient
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = mid
    msg["Feedback-ID"] = identity.feedback_id
    msg["X-Postwatch-Campaign"] = identity.campaign
    msg["List-Unsubscribe"] = f"<{url}>, <mailto:{mailto}?subject=unsubscribe>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(rendered.text)
    if rendered.html is not None:
        msg.add_alternative(rendered.html, subtype="html")
    return_path = verp.encode_token(send_id, identity.verp_secret, identity.return_path_domain)
    return Composed(send_id, recipient, return_path, mid, msg, smtputf8)
