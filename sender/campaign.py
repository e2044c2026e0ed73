"""A campaign run: a template folder and a recipient list in, mail out, every attempt logged.

The entry point (stable; the shell and the round-trip test call it):

    report = send_campaign(sessions, template_dir, recipients_csv, settings,
                           transport=None, pipeline=None, signer=None, providers=None,
                           clock=utcnow, progress=None)

with `settings = Settings.from_config(config, campaign="spring", from_address=None,
utm={}, dry_run=False)` (the whole postwatch configuration in, or build `Settings` by hand).
`report` is a `Report`: sent, suppressed, deferred, bounced, failed, already_sent, errors.

How a run goes:
1. every row is read and checked (address, duplicates, field count), and the template is
   rendered for every good row BEFORE anything is sent: one row the template cannot render
   and the run sends nothing (its error, with the line, is in the report);
2. each recipient is checked against the in-memory suppression index in the scopes global,
   sunset, domain:<From domain>, campaign:<name> and topic:<name> for each of the campaign's
   topics (`Settings.topics`); a recipient with a `frequency:<N>d` limit who was sent a
   message (any campaign) less than N days ago counts as suppressed too. A suppressed one
   gets a send-log row `suppressed` and no mail;
3. the others get a send-log row `queued` first — the signed return path and the
   unsubscribe token point at it — then the message is composed, signed and handed to the
   transport, and the row takes the result (`sent`, `bounced`, `deferred`, `failed`) and the
   reply. A `5xx` is also filed as a bounce event through the ingest pipeline (`pipeline`,
   by default one with ingest.verp_secret only: pass the configured one);
4. the warm-up budget may hold recipients back: they are logged `deferred`, not sent.

A recipient whose row for this campaign is `sent` or `bounced` is never sent again: a re-run
goes on with the rest. A recipient last `deferred`, `failed` or `suppressed` gets a new row
for the new attempt; one left `queued` by a run that stopped is sent again under the same
row, so with the same Message-ID (the receiver may have accepted it before the stop). To see
a later suppression at work, send a new campaign (or another recipient list).

Known gap: the rollups count send-log rows by id once; a rollup that runs while a chunk
(`CHUNK` recipients) is between `queued` and its result does not count that chunk's sends.
"""
from __future__ import annotations

import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from sender.compose import (UNSUBSCRIBE_MARK, Identity, RenderError, Template, compose, load_template, render,
                            tag_links)
from sender.config import SenderConfig
from sender.index import SuppressionIndex, scopes_for
from sender.recipients import Recipient, RowError, read_recipients
from sender.transport import Result, Transport, rejection_dsn
from sender.tracking import Tracking
from sender.tracking import campaign_links as tracked_links
from sender.warmup import Budget, Ramp
from store.addresses import domain_of
from store.clock import Clock, utcnow
from store.engagement import register_links
from store.suppressions import TOPIC, normalise_scope
from store.timeparse import utc
from store.volume import SendLog

log = logging.getLogger(__name__)
CHUNK = 50  # recipients queued, sent and logged per transaction
DONE = ("sent", "bounced")  # a recipient with a row like this for the campaign is never sent again
RESULTS = ("sent", "suppressed", "deferred", "bounced", "failed", "already_sent")

Providers = Callable[[set[str]], Mapping[str, str]]  # recipient domains -> provider


@dataclass(frozen=True)
class Settings:
    """What one run needs besides its inputs."""

    campaign: str
    sender: SenderConfig
    from_address: str
    base_url: str
    verp_secret: str
    unsubscribe_secret: str
    salt: str = ""  # privacy.salt: erased addresses stay suppressed by their hash
    utm: Mapping[str, str] = field(default_factory=dict)
    dry_run: bool = False
    workers: int = 8  # conversations at once over all domains
    topics: tuple[str, ...] = ()  # what the campaign is about: recipients who left one are skipped
    track_opens: bool = False  # the HTML part gets the tracking pixel (sender/tracking.py)
    track_clicks: bool = False  # its links go through /t/c/

    @classmethod
    def from_config(cls, config: Any, campaign: str, *, from_address: str | None = None,
                    utm: Mapping[str, str] | None = None, dry_run: bool = False,
                    topics: Iterable[str] = (), track: bool | None = None) -> "Settings":
        """From the postwatch configuration (its sender, web, ingest, privacy and preferences
        sections). A topic must be one of preferences.topics, so recipients can leave it."""
        topics = tuple(dict.fromkeys(t.strip().lower() for t in topics if t.strip()))
        offered = getattr(config, "preferences", None)
        known = offered.topic_names() if offered is not None else ()
        unknown = [t for t in topics if t not in known]
        if unknown:
            raise ValueError(f"topic {unknown[0]!r} is not one of preferences.topics ("
                             + (", ".join(known) or "none configured") + "): add it there, with a label, so "
                             "recipients can leave it on the preference page")
        return cls(campaign=campaign, sender=config.sender,
                   from_address=from_address or config.sender.from_address, base_url=config.web.base_url,
                   verp_secret=config.ingest.verp_secret, unsubscribe_secret=config.web.secret,
                   salt=getattr(getattr(config, "privacy", None), "salt", "") or "", utm=dict(utm or {}),
                   dry_run=dry_run, topics=topics, **_tracking_settings(config, campaign, track))

    def check(self) -> None:
        """Refuse, with a sentence, what would send mail nobody can attribute or unsubscribe from."""
        if not self.campaign.strip():
            raise ValueError("a campaign needs a name (--campaign)")
        if not self.verp_secret:
            raise ValueError("ingest.verp_secret is empty: bounces could not be tied to their send; set it "
                             "to a long random secret")
        if not self.unsubscribe_secret:
            raise ValueError("web.secret is empty: the unsubscribe links could not be signed; set it to a "
                             "long random secret")
        if "@" not in self.from_address:
            raise ValueError(f"the From address {self.from_address!r} is not an address")
        for topic in self.topics:
            normalise_scope(TOPIC + topic)  # ScopeError (a ValueError) says what a name may hold

    @property
    def from_domain(self) -> str:
        return domain_of(self.from_address)

    def tracking(self) -> Tracking | None:
        """How the run's messages are tracked (its link list is added when the run starts), or None."""
        if not (self.track_opens or self.track_clicks):
            return None
        return Tracking(self.base_url, self.unsubscribe_secret, opens=self.track_opens, clicks=self.track_clicks)

    def identity(self) -> Identity:
        s = self.sender
        utm = {k if k.startswith("utm_") else f"utm_{k}": v for k, v in self.utm.items()}
        if utm:
            utm.setdefault("utm_campaign", self.campaign)
        return Identity(campaign=self.campaign, from_address=self.from_address,
                        return_path_domain=s.return_path_domain or self.from_domain, base_url=self.base_url,
                        verp_secret=self.verp_secret, unsubscribe_secret=self.unsubscribe_secret,
                        feedback_customer=s.feedback_customer, feedback_type=s.feedback_type,
                        feedback_sender=s.feedback_sender, utm=utm)


@dataclass
class Report:
    campaign: str
    total: int = 0  # rows in the file
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULTS, 0))
    errors: list[RowError] = field(default_factory=list)
    aborted: str | None = None  # why nothing was sent, when so
    dry_run: bool = False
    outcomes: list[tuple[Recipient, str, str]] = field(default_factory=list)  # (recipient, result, reply)

    def add(self, recipient: Recipient, result: str, reply: str = "") -> None:
        self.counts[result] += 1
        self.outcomes.append((recipient, result, reply))
        if result in ("deferred", "failed") and reply:
            self.errors.append(RowError(recipient.line, recipient.email, f"{result}: {reply}"))

    def as_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign, "dry_run": self.dry_run, "rows": self.total, **self.counts,
                "aborted": self.aborted,
                "errors": [{"line": e.line, "email": e.email, "error": e.message} for e in self.errors]}


def send_campaign(sessions: sessionmaker[Session], template_dir: str | Path, recipients: str | Path,
                  settings: Settings, *, transport: Transport | None = None, pipeline=None, signer=None,
                  providers: Providers | None = None, clock: Clock = utcnow,
                  progress: Callable[[int], None] | None = None) -> Report:
    """Run one campaign (see the module docstring). Raises ValueError (TemplateError,
    RecipientsError, ...) with a sentence when the run cannot start at all."""
    settings.check()
    template = load_template(template_dir)
    rows, errors = read_recipients(recipients)
    if pipeline is None and not settings.dry_run:
        from ingest.config import IngestConfig
        from ingest.pipeline import Pipeline

        pipeline = Pipeline(sessions, IngestConfig(verp_secret=settings.verp_secret), clock=clock)
    run = _Run(sessions, template, settings, transport or Transport(settings.sender), pipeline, signer,
               providers, clock, progress or (lambda n: None))
    return run.go(rows, errors)


class _Run:
    def __init__(self, sessions, template: Template, settings: Settings, transport: Transport, pipeline, signer,
                 providers: Providers | None, clock: Clock, progress: Callable[[int], None]) -> None:
        self.sessions, self.template, self.settings = sessions, template, settings
        self.transport, self.pipeline, self.signer = transport, pipeline, signer
        self.providers, self.clock, self.progress = providers, clock, progress
        self.identity = settings.identity()
        self.tracking = settings.tracking()
        self.links: dict[str, None] = {}  # the links of every row's HTML, when clicks are tracked
        self.scopes = scopes_for(settings.from_domain, settings.campaign, settings.topics)
        self.reporting_mta = settings.sender.helo or socket.getfqdn()

    def go(self, rows: list[Recipient], errors: list[RowError]) -> Report:
        report = Report(self.settings.campaign, total=len(rows) + len(errors), errors=list(errors),
                        dry_run=self.settings.dry_run)
        bad = self._render_all(rows)
        if bad:
            report.errors.extend(bad)
            report.errors.sort(key=lambda e: e.line)
            report.aborted = (f"the template cannot be rendered for {len(bad)} row(s): nothing was sent; "
                              "fix the template or the rows and run again")
            return report
        if self.tracking is not None and not self.settings.dry_run:
            with self.sessions.begin() as session:  # before any message: its links need their index
                links = register_links(session, self.settings.campaign, self.links, opens=self.tracking.opens,
                                       clicks=self.tracking.clicks, now=self.clock())
            self.tracking = replace(self.tracking, links=links)
        index = SuppressionIndex.load(self.sessions, salt=self.settings.salt, clock=self.clock)
        provider_of = dict(self.providers({domain_of(r.email) for r in rows})) if self.providers and rows else {}
        now = self.clock()
        with self.sessions() as session:
            existing = self._existing(session, [r.email for r in rows])
            budget = Budget.load(session, Ramp.from_config(self.settings.sender.warmup_start,
                                                           self.settings.sender.warmup_ramp),
                                 self.settings.sender.sending_ip, now)
        with ThreadPoolExecutor(max_workers=self.settings.workers) as pool:
            for i in range(0, len(rows), CHUNK):
                index.refresh(self.sessions)
                self._chunk(rows[i:i + CHUNK], existing, index, budget, provider_of, pool, report)
        report.errors.sort(key=lambda e: e.line)
        return report

    # -- step 1: every row renders, or nothing is sent ---------------------------------------

    def _render_all(self, rows: list[Recipient]) -> list[RowError]:
        bad = []
        for r in rows:
            try:
                rendered = render(self.template, {**r.fields, "email": r.email, "campaign": self.settings.campaign})
                if self.tracking is not None and self.tracking.clicks:
                    tagged = tag_links(rendered, self.identity.utm, skip_prefix=UNSUBSCRIBE_MARK)
                    self.links.update(dict.fromkeys(tracked_links([tagged.html], self.tracking)))
            except RenderError as exc:
                bad.append(RowError(r.line, r.email, str(exc)))
        return bad

    def _existing(self, session: Session, emails: list[str]) -> dict[str, SendLog]:
        """The newest send-log row of this campaign per recipient."""
        out: dict[str, SendLog] = {}
        for i in range(0, len(emails), 500):
            for row in session.scalars(select(SendLog).where(SendLog.campaign == self.settings.campaign,
                                                             SendLog.recipient.in_(emails[i:i + 500]))
                                       .order_by(SendLog.id)):
                if out.get(row.recipient) is None or out[row.recipient].result not in DONE:
                    out[row.recipient] = row
                session.expunge(row)
        return out

    # -- steps 2-4, one chunk per transaction ------------------------------------------------

    def _chunk(self, chunk: list[Recipient], existing: dict[str, SendLog], index: SuppressionIndex,
               budget: Budget, provider_of: Mapping[str, str], pool: ThreadPoolExecutor, report: Report) -> None:
        s = self.settings
        now = self.clock()
        to_send: list[tuple[Recipient, SendLog]] = []
        with self.sessions() as session:
            too_soon = self._too_soon(session, chunk, index, now)
            for r in chunk:
                old = existing.get(r.email)
                if old is not None and old.result in DONE:
                    report.add(r, "already_sent", f"{old.result} before (send-log row {old.id})")
                    continue
                domain = domain_of(r.email)
                provider = provider_of.get(domain) or None
                scope = index.suppressed(r.email, self.scopes) or too_soon.get(r.email)
                held = None if scope else budget.refuse(provider)
                if s.dry_run:
                    report.add(r, "suppressed" if scope else "deferred" if held else "sent",
                               f"suppressed ({scope})" if scope else held or "would be sent")
                    if not scope and not held:
                        budget.take()
                    continue
                # a `queued` row left by a run that stopped may have been accepted: send it again under
                # the same id and Message-ID; any other result was never seen by a receiver, and the
                # new attempt gets a row of its own (rollups count each row once, by id)
                reuse = old is not None and old.result == "queued"
                row = session.merge(old) if reuse else SendLog(
                    recipient=r.email, recipient_domain=domain, campaign=s.campaign, sending_domain=s.from_domain)
                row.sent_at, row.provider = now, provider
                row.sending_ip = s.sender.sending_ip or None
                row.reply_code = None
                if scope:
                    row.result, row.reply = "suppressed", f"suppressed in scope {scope}"
                    report.add(r, "suppressed", row.reply)
                elif held:
                    row.result, row.reply = "deferred", held
                    report.add(r, "deferred", held)
                else:
                    row.result, row.reply = "queued", None
                    budget.take()
                    to_send.append((r, row))
                if not reuse:
                    session.add(row)
            session.flush()
            jobs = []
            for r, row in to_send:
                try:
                    composed = compose(self.template, r.fields, r.email, row.id, self.identity, now,
                                       tracking=self.tracking)
                    data = composed.as_bytes()
                    if self.signer is not None:
                        data = self.signer.sign(data)
                        row.dkim_selector = self.signer.selector
                except (RenderError, ValueError) as exc:
                    row.result, row.reply = "failed", str(exc)
                    budget.give_back()
                    report.add(r, "failed", str(exc))
                    continue
                row.message_id = composed.message_id
                jobs.append((r, row, composed, data))
            session.commit()  # the queued rows exist before any mail leaves: tokens point at them
            if s.dry_run or not jobs:
                self.progress(len(chunk))
                return
            futures = [pool.submit(self.transport.deliver, c.mail_from, c.recipient, data, c.smtputf8)
                       for _, _, c, data in jobs]
            done = self.clock()
            bounces = []
            for (r, row, composed, data), future in zip(jobs, futures):
                try:
                    result = future.result()
                except Exception as exc:  # a bug in a conversation must not lose the others' results
                    log.exception("delivery to %s failed", r.email)
                    result = Result("deferred", None, f"{type(exc).__name__}: {exc}")
                row.result, row.reply_code, row.reply, row.sent_at = (result.result, result.reply_code,
                                                                      result.reply[:2000], done)
                if result.result not in ("sent", "bounced"):
                    budget.give_back()
                if result.result == "bounced":
                    head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
                    bounces.append((rejection_dsn(recipient=r.email, return_path=composed.mail_from,
                                                  original_headers=head, result=result,
                                                  reporting_mta=self.reporting_mta, now=done), composed.mail_from))
                report.add(r, result.result, result.reply)
            session.commit()
        for raw, return_path in bounces:
            self._file_bounce(raw, return_path)
        self.progress(len(chunk))

    def _too_soon(self, session: Session, chunk: list[Recipient], index: SuppressionIndex,
                  now) -> dict[str, str]:
        """Recipients with a `frequency:<N>d` limit who were sent a message less than N days
        ago (by any campaign) -> that scope."""
        limits = {r.email: days for r in chunk if (days := index.frequency(r.email)) is not None}
        if not limits:
            return {}
        last = dict(session.execute(select(SendLog.recipient, func.max(SendLog.sent_at)).where(
            SendLog.recipient.in_(list(limits)), SendLog.result == "sent").group_by(SendLog.recipient)).all())
        now = utc(now)
        return {email: f"frequency:{days}d" for email, days in limits.items()
                if email in last and (now - utc(last[email])).total_seconds() < days * 86400}

    def _file_bounce(self, raw: bytes, return_path: str) -> None:
        if self.pipeline is None:
            return
        from ingest.envelope import Envelope

        try:
            self.pipeline.ingest(raw, Envelope("sender", mail_from="", rcpt_tos=(return_path,)))
        except Exception:  # the send log already says `bounced`; the event can be re-filed from it
            log.exception("could not file the SMTP-time rejection for %s as a bounce event", return_path)


def _tracking_settings(config: Any, campaign: str, track: bool | None) -> dict[str, bool]:
    """track_opens / track_clicks: `send --track` / `--no-track`, else whether [tracking]
    campaigns lists the campaign (or "*")."""
    tracking = getattr(config, "tracking", None)
    if tracking is None:
        return {"track_opens": bool(track), "track_clicks": bool(track)}
    on = tracking.tracks(campaign) if track is None else track
    return {"track_opens": on and tracking.opens, "track_clicks": on and tracking.clicks}


def parse_utm(items: Iterable[str]) -> dict[str, str]:
    """`source=newsletter` pairs (from the command line) -> {"utm_source": "newsletter"}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"--utm {item!r} is not KEY=VALUE (e.g. source=newsletter)")
        key = key.strip()
        out[key if key.startswith("utm_") else f"utm_{key}"] = value.strip()
    return out

