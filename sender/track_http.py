"""The tracking endpoints: the pixel and the link redirects of tracked mail (sender/tracking.py).

    GET|HEAD /t/o/TOKEN          a 1x1 GIF (no-store); stores an open
    GET|HEAD /t/c/TOKEN/INDEX    302 to link INDEX of the campaign of the token's send; stores a click

TOKEN is signed with web.secret for the purpose "track": a token that is malformed, fails its
HMAC, was made for another purpose (an unsubscribe link, a return path) or names no send
answers 404 and stores nothing; so does an INDEX the campaign's link list does not have. The
redirect goes to a URL stored when the campaign was sent, never to one the request names.

Each hit is one engagement_events row (a replayed token is one more row: the rates count
messages, not rows). Its `machine` flag comes from the rules (sender/machine.py) and from the
message's history: a click within tracking.click_delay_seconds of delivery, or one that makes
a burst (clicks on tracking.burst_links different links within burst_seconds), is a
scanner's; the other clicks of a burst are marked with it. Hits are written by a group commit
(ingest/group_commit.py): hits arriving while a transaction is written share the next one.
"""
from __future__ import annotations

import base64
import ipaddress
import logging
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, redirect, request
from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session, sessionmaker

from ingest.group_commit import GroupCommit
from ingest.verp import read_token
from sender.config import TrackingConfig, WebConfig
from sender.machine import Rules, load_rules
from sender.tracking import PURPOSE
from sender.unsubscribe import MAX_TOKEN_LENGTH
from store.addresses import try_normalise
from store.clock import Clock, utcnow
from store.engagement import CLICK, OPEN, EngagementEvent, campaign_links
from store.timeparse import utc
from store.volume import SendLog

log = logging.getLogger(__name__)
AFTER_DELIVERY, BURST = "after-delivery", "link-burst"
GIF = base64.b64decode(b"R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, private", "Pragma": "no-cache", "Expires": "0",
            "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


@dataclass(frozen=True)
class Hit:
    send_id: int
    kind: str  # open | click
    link_index: int | None
    occurred_at: datetime
    method: str
    user_agent: str | None
    ip_class: str
    machine: bool  # by the rules alone; the writer adds the timing rules
    reason: str | None


class HitWriter:
    """`writer(hit)` stores a hit and returns True (an open) or the URL to redirect to (a
    click), or None when the send or the link is unknown (nothing stored)."""

    def __init__(self, sessions: sessionmaker[Session], config: TrackingConfig, most: int = 256,
                 cached_sends: int = 100_000) -> None:
        self.sessions, self.config = sessions, config
        self._links: dict[str, list[str]] = {}  # campaign -> links; an index never changes its URL
        # send_id -> (the columns a hit copies from its send-log row, its sent_at): the same for
        # every hit of a message, so the recipient is normalised once
        self._sends: OrderedDict[int, tuple[dict[str, Any], datetime | None]] = OrderedDict()
        self._cached_sends = cached_sends
        self._group = GroupCommit(self._commit, most=most)
        self._insert = EngagementEvent.__table__.insert()

    def __call__(self, hit: Hit) -> Any:
        return self._group(hit)

    @property
    def transactions(self) -> int:
        return self._group.transactions

    def _send_rows(self, conn: Connection, ids: set[int]) -> dict[int, tuple[dict[str, Any], datetime | None]]:
        """The send-log facts of these sends (from the cache when it has them)."""
        missing = [i for i in ids if i not in self._sends]
        if missing:
            for r in conn.execute(select(SendLog.id, SendLog.recipient, SendLog.recipient_domain, SendLog.provider,
                                         SendLog.campaign, SendLog.sending_domain, SendLog.sent_at)
                                  .where(SendLog.id.in_(missing))):
                self._sends[r.id] = ({"recipient": _recipient(r.recipient), "recipient_domain": r.recipient_domain,
                                      "provider": r.provider, "campaign": r.campaign,
                                      "sending_domain": r.sending_domain}, utc(r.sent_at))
            while len(self._sends) > self._cached_sends:
                self._sends.popitem(last=False)
        return {i: self._sends[i] for i in ids if i in self._sends}

    def _link(self, conn: Connection, campaign: str | None, index: int) -> str | None:
        if not campaign:
            return None
        links = self._links.get(campaign, [])
        if index >= len(links):  # a campaign re-run may have added links since
            links = self._links[campaign] = campaign_links(conn, campaign)
        return links[index] if index < len(links) else None

    def _commit(self, hits: list[Hit]) -> list[Any]:
        # Core on the session's engine: a hit is one short insert, the ORM's work per statement would
        # cost more than the statement
        with self.sessions.kw["bind"].begin() as conn:
            sends = self._send_rows(conn, {h.send_id for h in hits})
            recent = self._recent_clicks(conn, [h for h in hits if h.kind == CLICK and h.send_id in sends])
            rows: list[dict[str, Any]] = []
            relabel: set[int] = set()
            outcomes: list[Any] = []
            for h in hits:
                facts, sent_at = sends.get(h.send_id, (None, None))
                url = self._link(conn, facts["campaign"], h.link_index) if facts and h.kind == CLICK else None
                if facts is None or (h.kind == CLICK and url is None):
                    outcomes.append(None)
                    continue
                row = {"send_id": h.send_id, "kind": h.kind, "occurred_at": h.occurred_at, **facts,
                       "link_index": h.link_index, "method": h.method, "user_agent": h.user_agent,
                       "ip_class": h.ip_class, "machine": h.machine, "machine_reason": h.reason}
                if h.kind == CLICK:
                    self._timing(row, sent_at, recent[h.send_id], relabel, len(self._links[facts["campaign"]]))
                    recent[h.send_id].append(row)
                rows.append(row)
                outcomes.append(url if h.kind == CLICK else True)
            if rows:
                conn.execute(self._insert, rows)
            if relabel:
                conn.execute(update(EngagementEvent).where(EngagementEvent.id.in_(relabel))
                             .values(machine=True, machine_reason=BURST))
        return outcomes

    def _recent_clicks(self, conn: Connection, clicks: list[Hit]) -> dict[int, list[dict[str, Any]]]:
        """The stored clicks of these sends that a burst ending at one of these hits may hold."""
        recent: dict[int, list[dict[str, Any]]] = defaultdict(list)
        if not clicks or self.config.burst_seconds <= 0:
            return recent
        since = min(h.occurred_at for h in clicks) - timedelta(seconds=self.config.burst_seconds)
        e = EngagementEvent
        for r in conn.execute(select(e.id, e.send_id, e.link_index, e.occurred_at, e.machine, e.machine_reason)
                              .where(e.kind == CLICK, e.send_id.in_({h.send_id for h in clicks}),
                                     e.occurred_at >= since)):
            recent[r.send_id].append({"id": r.id, "link_index": r.link_index, "occurred_at": utc(r.occurred_at),
                                      "machine": r.machine, "machine_reason": r.machine_reason})
        return recent

    def _timing(self, row: dict[str, Any], sent_at: datetime | None, earlier: list[dict[str, Any]],
                relabel: set[int], links: int) -> None:
        """The clicks rules that need the message's history: soon after delivery, or a burst."""
        c = self.config
        at = row["occurred_at"]
        if not row["machine"] and sent_at is not None and (at - sent_at).total_seconds() < c.click_delay_seconds:
            row["machine"], row["machine_reason"] = True, AFTER_DELIVERY
        needed = min(c.burst_links, links)
        if needed < 2 or c.burst_seconds <= 0:
            return
        window = [e for e in earlier if abs((at - e["occurred_at"]).total_seconds()) <= c.burst_seconds]
        if len({e["link_index"] for e in window} | {row["link_index"]}) < needed:
            return
        if not row["machine"]:
            row["machine"], row["machine_reason"] = True, BURST
        for e in window:
            if not e["machine"]:
                e["machine"], e["machine_reason"] = True, BURST
                if "id" in e:
                    relabel.add(e["id"])


def _recipient(address: str | None) -> str | None:
    """The send log's recipient, normalised (lower-cased and cut to the column when malformed)."""
    if not address:
        return None
    return try_normalise(address) or address.strip().lower()[:320]


def blueprint(sessions: sessionmaker[Session], web: WebConfig, config: TrackingConfig | None = None, *,
              clock: Clock = utcnow, rules: Rules | None = None, writer: HitWriter | None = None,
              name: str = "tracking") -> Blueprint:
    """The blueprint, bound to a store, the [web] section (its secret signs the tokens) and
    [tracking]. The rules files are read now: a bad one stops the server with a sentence."""
    config = config or TrackingConfig()
    rules = rules or load_rules(config.rules_file, config.apple_ranges_file)
    writer = writer or HitWriter(sessions, config)
    proxies = [ipaddress.ip_network(p.strip(), strict=False) for p in config.trusted_proxies]
    bp = Blueprint(name, __name__)

    def client_ip() -> str | None:
        ip = request.remote_addr
        if not proxies or not _within(ip, proxies):
            return ip
        for hop in reversed([h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]):
            ip = hop
            if not _within(hop, proxies):
                break
        return ip

    def read(token: str, kind: str, index: int | None) -> Hit | None:
        if not web.secret or len(token) > MAX_TOKEN_LENGTH:
            return None
        verp = read_token(token, web.secret, purpose=PURPOSE)
        if not verp.valid or verp.send_id is None:
            return None
        agent = request.headers.get("User-Agent") or None
        ip_class = rules.ranges.classify(client_ip())
        machine, reason = rules.judge(kind, request.method, agent, ip_class)
        return Hit(verp.send_id, kind, index, clock(), request.method[:8], agent[:255] if agent else None,
                   ip_class, machine, reason)

    def not_found() -> Response:
        return Response("This link is not valid.\n", 404, mimetype="text/plain", headers=NO_STORE)

    @bp.route("/t/o/<token>", methods=["GET", "HEAD"])
    def tracked_open(token: str) -> Response:
        hit = read(token, OPEN, None)
        if hit is None or writer(hit) is None:
            return not_found()
        return Response(GIF, mimetype="image/gif", headers=NO_STORE)

    @bp.route("/t/c/<token>/<int:index>", methods=["GET", "HEAD"])
    def tracked_click(token: str, index: int) -> Response:
        hit = read(token, CLICK, index)
        url = writer(hit) if hit is not None else None
        if url is None:
            return not_found()
        response = redirect(url, 302)
        response.headers.update(NO_STORE)
        return response

    if not web.secret:
        log.warning("web.secret is empty: tracked opens and clicks answer 404 until it is set")
    return bp


def _within(ip: str | None, networks: list) -> bool:
    try:
        address = ipaddress.ip_address((ip or "").strip())
    except ValueError:
        return False
    return any(address in n for n in networks)
