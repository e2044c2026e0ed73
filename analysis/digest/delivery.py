"""Sending a digest: through postwatch's own sender (its SMTP transport and DKIM signer), to
each recipient, retried with back-off; still failing, it is raised as a `report_delivery`
alert and the run fails (so `job_runs` records it). One scheduler job per configured
schedule, on its crontab line in its time zone.
"""
from __future__ import annotations

import logging
import time
from datetime import date, datetime
from functools import partial
from typing import Any, Callable
from zoneinfo import ZoneInfo

from analysis.digest.message import Rendered, build, message
from analysis.digest.schedule import Schedule, Scope, parse_schedules, period_for
from analysis.jobs import Job, JobContext
from store.addresses import domain_of

log = logging.getLogger(__name__)
ALERT_RULE = "report_delivery"


class DigestError(RuntimeError):
    """A digest that could not be made or sent, said as a sentence."""


def prepare(sessions, settings: Any, kind: str, scope: Scope, now: datetime, *, end: date | None = None,
            timezone: str = "UTC") -> Rendered:
    """Gather the figures and draw the charts of the digest a run at `now` makes."""
    from analysis.digest.figures import gather

    today = now.astimezone(ZoneInfo(timezone)).date()
    period = period_for(kind, today, end)
    with sessions() as session:
        digest = gather(session, settings, period, scope, now)
    return build(digest)


def signer_for(settings: Any, mail_from: str):
    """The sender's DKIM signer, for the digests' From domain unless sender.dkim_domain is set."""
    from sender.dkim import Signer

    s = settings.sender
    if not s.dkim_key_file:
        return None
    return Signer.from_file(s.dkim_key_file, s.dkim_selector, s.dkim_domain or domain_of(mail_from))


def deliver(sessions, settings: Any, rendered: Rendered, recipients: tuple[str, ...], *, now: datetime,
            name: str = "report", transport=None, sleep: Callable[[float], None] = time.sleep) -> int:
    """Send the digest to every recipient; returns how many took it, or raises DigestError
    (after raising the alert) when some did not after `reports.retries` attempts."""
    from sender.dkim import DkimError
    from sender.transport import Transport
    from store.alerts import Alert, raise_alert, resolve_alert

    cfg = settings.reports
    mail_from = cfg.mail_from
    try:
        signer = signer_for(settings, mail_from)
    except DkimError as exc:
        raise DigestError(str(exc)) from None
    data = message(rendered, mail_from=mail_from, to=recipients, now=now).as_bytes()
    if signer is not None:
        data = signer.sign(data)
    transport = transport or Transport(settings.sender)
    pending, refused, last = list(recipients), {}, {}
    for attempt in range(1, cfg.retries + 1):
        for rcpt in list(pending):
            result = transport.deliver(mail_from, rcpt, data, smtputf8=not rcpt.isascii())
            if result.result == "sent":
                pending.remove(rcpt)
            elif result.result in ("bounced", "failed"):  # a retry cannot fix it
                pending.remove(rcpt)
                refused[rcpt] = result.reply
            else:
                last[rcpt] = result.reply
        if not pending:
            break
        log.warning("digest %s: not delivered to %s (attempt %d of %d): %s", name, ", ".join(pending), attempt,
                    cfg.retries, "; ".join(last[r] for r in pending))
        if attempt < cfg.retries:
            sleep(cfg.retry_backoff * 2 ** (attempt - 1))
    failed = {**refused, **{r: last.get(r, "") for r in pending}}
    period = rendered.digest.period
    with sessions.begin() as session:
        open_alert = session.query(Alert).filter_by(status="open", rule=ALERT_RULE, dimension="report",
                                                    key=name).first()
        if failed:
            what = "; ".join(f"{r}: {why}" for r, why in failed.items())
            sentence = (f"The {period.kind} digest for {period.label} could not be sent to "
                        f"{len(failed)} of {len(recipients)} recipient(s) after {cfg.retries} attempt(s): {what}")
            raise_alert(session, rule=ALERT_RULE, dimension="report", key=name, severity="warning",
                        message=sentence, now=now, details={"failed": failed, "period": period.label})
        elif open_alert is not None:
            resolve_alert(session, open_alert, now)
    if failed:
        raise DigestError(sentence)
    return len(recipients)


def run_schedule(schedule: Schedule, ctx: JobContext) -> int:
    now = ctx.clock()
    rendered = prepare(ctx.sessions, ctx.settings, schedule.period, schedule.scope, now,
                       timezone=schedule.timezone)
    return deliver(ctx.sessions, ctx.settings, rendered, schedule.recipients, now=now, name=schedule.name)


def scheduled_jobs(settings: Any) -> list[Job]:
    """A job per `reports.schedules` entry: on its crontab line in its time zone, never in
    `postwatch analyze` (it sends mail) nor at the scheduler's start."""
    reports = getattr(settings, "reports", None)
    if reports is None:
        return []
    return [Job(s.name, partial(run_schedule, s), cron=s.cron, timezone=s.timezone, order=200, in_analyze=False,
                description=f"the {s.period} digest of {s.scope.label} to {', '.join(s.recipients)}")
            for s in parse_schedules(reports.schedules)]
