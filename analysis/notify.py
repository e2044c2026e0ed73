"""Sending alerts: e-mail through a smarthost (the sender's SMTP transport), and a JSON
webhook (Slack-compatible).

Each notice — an alert opened, escalated or resolved — is first queued as an
`alert_deliveries` row per channel, then sent. A channel that fails after its retries keeps
its rows pending for the next run: nothing is lost, and nothing crashes the job. The
database is not locked while the network is slow: queueing and recording are short
transactions, sending happens between them.
"""
from __future__ import annotations

import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from analysis.jobs import JobContext, job
from analysis.config import AlertsConfig
from sender.config import SenderConfig
from sender.transport import Login, Transport
from store.addresses import domain_of
from store.alerts import SEVERITIES, Alert
from store.checks import AlertDelivery
from store.netloc import format_hostport, parse_hostport

log = logging.getLogger(__name__)

MAX_PER_MESSAGE = 40  # notices per e-mail / webhook post; more wait for the next one
RESOLVED_LOOKBACK = timedelta(days=7)
# Python folds a 79-character Subject onto a line of its own; fold only what is really long
MAIL_POLICY = default_policy.clone(max_line_length=200)


class DeliveryError(Exception):
    """A channel could not deliver; said as a sentence for the log and the delivery row."""


@dataclass(frozen=True)
class Notice:
    delivery_id: int
    alert_id: int
    notice: str  # opened | escalated | resolved
    severity: str
    rule: str
    dimension: str
    key: str
    message: str
    opened_at: datetime
    last_seen_at: datetime
    times_seen: int
    details: dict[str, Any] | None

    @property
    def subject(self) -> str:
        what = self.key if self.dimension == "all" or not self.dimension else f"{self.dimension} {self.key}"
        what = what or "all mail"
        if self.notice == "resolved":
            return f"RESOLVED {self.rule}: {what}"
        return f"{self.severity.upper()} {self.rule}: {what}" + (" (escalated)" if self.notice == "escalated" else "")


def channels(cfg: AlertsConfig) -> list[str]:
    out = []
    if cfg.smtp_host and cfg.mail_to:
        out.append("email")
    if cfg.webhook_url:
        out.append("webhook")
    return out


# ---------------------------------------------------------------- queueing

def queue(session: Session, cfg: AlertsConfig, now: datetime) -> int:
    """Queue a notice per enabled channel for each alert opened, escalated or resolved since last time."""
    enabled = channels(cfg)
    if not enabled:
        return 0
    have: dict[tuple[int, str], list[AlertDelivery]] = {}
    alerts = session.scalars(select(Alert).where(
        (Alert.status == "open") | (Alert.resolved_at >= now - RESOLVED_LOOKBACK))).all()
    ids = [a.id for a in alerts]
    for d in session.scalars(select(AlertDelivery).where(AlertDelivery.alert_id.in_(ids))) if ids else []:
        have.setdefault((d.alert_id, d.channel), []).append(d)
    queued = 0
    for alert in alerts:
        for channel in enabled:
            past = have.get((alert.id, channel), [])
            notice = None
            if alert.status == "open":
                if not past:
                    notice = "opened"
                elif SEVERITIES.index(alert.severity) > max(SEVERITIES.index(d.severity) for d in past):
                    notice = "escalated"
            elif cfg.notify_resolved and past and not any(d.notice == "resolved" for d in past):
                notice = "resolved"  # only alerts people were told about
            if notice:
                session.add(AlertDelivery(alert_id=alert.id, channel=channel, notice=notice,
                                          severity=alert.severity, created_at=now, attempts=0))
                queued += 1
    session.flush()
    return queued


def pending(session: Session, channel: str) -> list[Notice]:
    rows = session.execute(select(AlertDelivery, Alert).join(Alert, AlertDelivery.alert_id == Alert.id)
                           .where(AlertDelivery.channel == channel, AlertDelivery.sent_at.is_(None))
                           .order_by(AlertDelivery.id).limit(MAX_PER_MESSAGE)).all()
    return [Notice(d.id, a.id, d.notice, d.severity, a.rule, a.dimension, a.key, a.message, a.opened_at,
                   a.last_seen_at, a.times_seen, a.details) for d, a in rows]


# ---------------------------------------------------------------- rendering

def _order(notices: list[Notice]) -> list[Notice]:
    return sorted(notices, key=lambda n: (n.notice == "resolved", -SEVERITIES.index(n.severity), n.delivery_id))


def summary(notices: list[Notice]) -> str:
    if len(notices) == 1:
        return notices[0].subject
    counts: dict[str, int] = {}
    for n in notices:
        label = "resolved" if n.notice == "resolved" else n.severity
        counts[label] = counts.get(label, 0) + 1
    parts = [f"{counts[k]} {k}" for k in ("critical", "warning", "info", "resolved") if k in counts]
    return f"{len(notices)} alerts: " + ", ".join(parts)


def email_message(notices: list[Notice], cfg: AlertsConfig, now: datetime) -> EmailMessage:
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["Subject"] = f"[postwatch] {summary(notices)}"
    msg["From"] = cfg.mail_from
    msg["To"] = ", ".join(cfg.mail_to)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid("postwatch", domain=domain_of(cfg.mail_from) or "localhost")
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to this
    lines = []
    for n in _order(notices):
        lines.append(n.subject)
        if n.notice != "resolved":
            lines.append(f"  {n.message}")
        lines.append(f"  opened {n.opened_at:%Y-%m-%d %H:%M} UTC, last seen {n.last_seen_at:%Y-%m-%d %H:%M} UTC, "
                     f"seen {n.times_seen} time(s); alert #{n.alert_id}")
        lines.append("")
    lines.append("-- \npostwatch: these alerts stay open until their condition clears; "
                 "you are told again only when one gets worse or is resolved.")
    msg.set_content("\n".join(lines))
    return msg


def webhook_payload(notices: list[Notice]) -> dict[str, Any]:
    """Slack's incoming-webhook shape (text + blocks); `postwatch` carries the alerts as data."""
    icons = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text",
                                                                 "text": f"postwatch: {summary(notices)}"[:150]}}]
    for n in _order(notices):
        icon = ":white_check_mark:" if n.notice == "resolved" else icons.get(n.severity, "")
        text = f"{icon} *{n.subject}*" + ("" if n.notice == "resolved" else f"\n{n.message}")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    return {
        "text": f"postwatch: {summary(notices)}",
        "blocks": blocks[:50],
        "postwatch": {"alerts": [{"id": n.alert_id, "notice": n.notice, "severity": n.severity, "rule": n.rule,
                                  "dimension": n.dimension, "key": n.key, "message": n.message,
                                  "opened_at": n.opened_at.isoformat(), "last_seen_at": n.last_seen_at.isoformat(),
                                  "times_seen": n.times_seen, "details": n.details} for n in notices]},
    }


# ---------------------------------------------------------------- sending

def alert_transport(cfg: AlertsConfig) -> Transport:
    """The sender's transport, pointed at alerts.smtp_host (port 25 unless it names one) with
    the alerts' STARTTLS mode, login and timeout. `required` verifies the smarthost's
    certificate; `opportunistic` encrypts without insisting on who it is."""
    try:
        host, port = parse_hostport(cfg.smtp_host, default_port=25, key="alerts.smtp_host")
        relay = SenderConfig(smarthost=format_hostport(host, port), starttls=cfg.smtp_starttls,
                             timeout=cfg.timeout, retries=0)
    except ValueError as exc:  # HostPortError, or a STARTTLS mode the sender does not know
        raise DeliveryError(str(exc).replace("sender.starttls", "alerts.smtp_starttls")) from None
    return Transport(relay, tls_context=ssl.create_default_context() if cfg.smtp_starttls == "required" else None,
                     login=Login(cfg.smtp_username, cfg.smtp_password) if cfg.smtp_username else None,
                     starttls_key="alerts.smtp_starttls")


def send_email(msg: EmailMessage, cfg: AlertsConfig, transport: Transport | None = None) -> None:
    addresses = [cfg.mail_from, *cfg.mail_to]
    international = not all(a.isascii() for a in addresses)
    data = msg.as_bytes(policy=msg.policy.clone(utf8=True)) if international else msg.as_bytes()
    result = (transport or alert_transport(cfg)).relay(cfg.mail_from, list(cfg.mail_to), data, smtputf8=international)
    if result.result != "sent":
        raise DeliveryError(f"alert e-mail through {cfg.smtp_host} failed: {result.reply}")
    if result.refused:
        log.warning("alert e-mail: the smarthost refused %s", ", ".join(f"{r} ({why})" for r, why in result.refused))


def post_webhook(payload: dict[str, Any], cfg: AlertsConfig) -> None:
    body = json.dumps(payload, default=str).encode()
    request = urllib.request.Request(cfg.webhook_url, data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "postwatch-alerts"})
    try:
        with urllib.request.urlopen(request, timeout=cfg.timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook answered {exc.code} {exc.reason}") from None
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, a bad URL
        raise DeliveryError(f"webhook {cfg.webhook_url} failed: {getattr(exc, 'reason', exc)}") from None


def with_retries(send: Callable[[], None], cfg: AlertsConfig, sleep: Callable[[float], None]) -> tuple[int, str | None]:
    """Try `send` up to cfg.retries times with doubling back-off; (attempts, last error or None)."""
    error = None
    tries = max(1, cfg.retries)
    for attempt in range(1, tries + 1):
        try:
            send()
            return attempt, None
        except DeliveryError as exc:
            error = str(exc)
            log.warning("%s (attempt %d of %d)", error, attempt, tries)
            if attempt < tries:
                sleep(cfg.retry_backoff * 2 ** (attempt - 1))
    return tries, error


def notify(sessions, cfg: AlertsConfig, now: datetime, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Queue new notices, send what is pending on each channel; returns sent and failed counts."""
    with sessions.begin() as session:
        queued = queue(session, cfg, now)
    result: dict[str, Any] = {"queued": queued, "sent": 0, "failed": 0, "errors": []}
    for channel in channels(cfg):
        with sessions() as session:
            notices = pending(session, channel)
        if not notices:
            continue
        if channel == "email":
            msg = email_message(notices, cfg, now)
            attempts, error = with_retries(lambda: send_email(msg, cfg), cfg, sleep)
        else:
            payload = webhook_payload(notices)
            attempts, error = with_retries(lambda: post_webhook(payload, cfg), cfg, sleep)
        with sessions.begin() as session:
            for n in notices:
                d = session.get(AlertDelivery, n.delivery_id)
                d.attempts += attempts
                d.last_error = error
                if error is None:
                    d.sent_at = now
            session.flush()
            if error is None:
                _mark_notified(session, {n.alert_id for n in notices}, now)
        if error is None:
            result["sent"] += len(notices)
        else:
            result["failed"] += len(notices)
            result["errors"].append(error)
    return result


def _mark_notified(session: Session, alert_ids: set[int], now: datetime) -> None:
    """An alert is notified once no notice of it waits on any channel."""
    waiting = set(session.scalars(select(AlertDelivery.alert_id).where(
        AlertDelivery.alert_id.in_(alert_ids), AlertDelivery.sent_at.is_(None))))
    for alert in session.scalars(select(Alert).where(Alert.id.in_(alert_ids - waiting))):
        alert.notified_at = now


@job("notify", every=timedelta(minutes=5), order=50)
def notify_job(ctx: JobContext) -> int:
    """Send new, escalated and resolved alerts by e-mail and webhook; failed notices wait for the next run."""
    result = notify(ctx.sessions, ctx.settings.alerts, ctx.clock())
    return result["sent"]
