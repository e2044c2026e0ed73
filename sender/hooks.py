"""The ESP event webhooks: `POST /hooks/PROVIDER` for ses, sendgrid, mailgun and postmark.

Each request is checked the way its provider documents (sender/hook_auth.py) before anything
is stored; the body is then read (ingest/webhooks/) and stored as an inbound message with its
facts, like mail: once by its sha256, so a retried webhook stores once. The answer is 2xx only
after the commit; 401 / 403 when the credentials are missing / wrong (nothing stored); 400
when the body is not the provider's JSON (kept in quarantine with the reason when it came
with good credentials); 404 for a provider not in webhooks.providers.

`blueprint(...)` makes it; the web server (dashboard/server.py) mounts it.
"""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from ingest.config import DomainsConfig, IngestConfig
from ingest.envelope import Envelope
from ingest.pipeline import Pipeline
from ingest.types import ParseResult
from ingest.webhooks import mailgun, ses
from ingest.webhooks.facts import WebhookFacts, read_options
from ingest.webhooks.readers import READERS, SOURCE_PREFIX
from sender.config import WebhooksConfig
from sender.hook_auth import (Fetch, Refusal, SnsVerifier, check_mailgun, check_postmark, check_sendgrid,
                              fetch_url, sendgrid_key, sns_url_refusal)
from store import models as m
from store.clock import Clock, utcnow
from store.webhooks import WebhookToken, first_use

log = logging.getLogger(__name__)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body) + "\n", status=status, mimetype="application/json",
                    headers={"Cache-Control": "no-store"})


def _refused(provider: str, refusal: Refusal) -> Response:
    log.warning("webhook %s refused (%d): %s", provider, refusal.status, refusal.reason)
    response = _json({"error": refusal.reason}, refusal.status)
    if provider == "postmark" and refusal.status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="postwatch"'
    return response


def blueprint(sessions: sessionmaker[Session], config: WebhooksConfig, *, ingest: IngestConfig | None = None,
              domains: DomainsConfig | None = None, clock: Clock = utcnow, fetch: Fetch = fetch_url,
              sns: SnsVerifier | None = None, name: str = "hooks") -> Blueprint:
    """The blueprint, bound to a store, the [webhooks] section and the ingest settings (the
    operator's rules file). `fetch` GETs SNS certificates and SubscribeURLs; `sns` is the
    signature checker with its certificate cache."""
    bp = Blueprint(name, __name__)
    ingest = ingest or IngestConfig()
    options = read_options(ingest.rules_file, config.campaign_key, config.volume_from)
    pipeline = Pipeline(sessions, ingest, clock, domains, webhooks=options)
    sns = sns or SnsVerifier(fetch)
    sg_key = sendgrid_key(config.sendgrid_public_key) if config.sendgrid_public_key else None
    max_age = timedelta(minutes=config.mailgun_max_age_minutes)
    sendgrid_max_age = timedelta(minutes=config.sendgrid_max_age_minutes)
    # why a provider without credentials refuses every request (403); SES refuses on its topic
    unset = {provider: why for provider, why in (
        ("sendgrid", sg_key is None and "webhooks.sendgrid_public_key is not set"),
        ("mailgun", not config.mailgun_signing_secret and "webhooks.mailgun_signing_secret is not set"),
        ("postmark", not (config.postmark_username or config.postmark_secret)
         and "neither webhooks.postmark_username nor postmark_secret is set")) if why}
    for provider in ("ses", *unset):  # SES without topics refuses every request too
        if provider in config.providers and (provider in unset or not config.ses_topic_arns):
            log.warning("webhooks: %s is enabled but has no credentials configured ([webhooks]); every request "
                        "to /hooks/%s is refused (403)", provider, provider)

    def stored(raw: bytes) -> int | None:
        with sessions() as session:
            return session.scalar(select(m.InboundMessage.id).where(
                m.InboundMessage.sha256 == hashlib.sha256(raw).hexdigest()))

    def store(provider: str, raw: bytes, result: ParseResult) -> Response:
        envelope = Envelope(source=SOURCE_PREFIX + provider, origin=f"{provider} {request.remote_addr or '?'}")
        out = pipeline.ingest_read(raw, envelope, result)
        if out.status == "quarantined":
            log.warning("webhook %s: the body could not be read, quarantined as message %s: %s", provider,
                        out.message_id, out.error)
            return _json({"error": out.error, "message": out.message_id, "quarantined": True}, 400)
        facts = result.detail if isinstance(result.detail, WebhookFacts) else WebhookFacts(provider)
        return _json({"message": out.message_id, "duplicate": out.duplicate,
                      "events": 0 if out.duplicate else out.events, "sent": 0 if out.duplicate else facts.sent,
                      "ignored": facts.ignored})

    def body_json(raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None

    def take_ses(raw: bytes) -> Response:
        message = body_json(raw)
        if not isinstance(message, dict) or not isinstance(message.get("Type"), str):
            return _json({"error": "the body is not an SNS message (a JSON object with a Type)"}, 400)
        if message.get("TopicArn") not in config.ses_topic_arns:
            return _refused("ses", Refusal(403, f"the SNS topic {message.get('TopicArn')!r} is not one of "
                                                "webhooks.ses_topic_arns"))
        refusal = sns.check(message)
        if refusal:
            return _refused("ses", refusal)
        kind = message["Type"]
        if kind == "SubscriptionConfirmation":
            problem = sns_url_refusal(message.get("SubscribeURL"), "SubscribeURL")
            if problem:
                return _refused("ses", Refusal(403, problem))
            try:
                fetch(message["SubscribeURL"])
            except Exception as exc:
                log.error("webhook ses: confirming the subscription to %s failed: %s", message["TopicArn"], exc)
                return _json({"error": f"the subscription could not be confirmed: {type(exc).__name__}"}, 502)
            log.info("webhook ses: subscription to %s confirmed", message["TopicArn"])
            return _json({"confirmed": message["TopicArn"]})
        if kind == "UnsubscribeConfirmation":
            log.warning("webhook ses: unsubscribed from %s", message["TopicArn"])
            return _json({"unsubscribed": message["TopicArn"]})
        return store("ses", raw, ses.read(request.headers, raw, options))

    def take_mailgun(raw: bytes) -> Response:
        body = body_json(raw)
        if not isinstance(body, dict):
            return _json({"error": "the body is not a Mailgun webhook (a JSON object)"}, 400)
        if "mailgun" in unset:
            return _refused("mailgun", Refusal(403, unset["mailgun"]))
        now = clock()
        refusal = check_mailgun(config.mailgun_signing_secret, body.get("signature"), now, max_age)
        if refusal:
            return _refused("mailgun", refusal)
        token = str(body["signature"]["token"])[:128]
        if stored(raw) is None:
            with sessions.begin() as session:
                fresh = first_use(session, "mailgun", token, now, 2 * max_age)
            if not fresh:
                return _refused("mailgun", Refusal(403, "this Mailgun signature token was used before (a replay)"))
        try:
            return store("mailgun", raw, mailgun.read(request.headers, raw, options))
        except Exception:
            with sessions.begin() as session:  # not stored: Mailgun's retry of it must be taken
                session.execute(delete(WebhookToken).where(WebhookToken.provider == "mailgun",
                                                           WebhookToken.token == token))
            raise

    @bp.post("/hooks/<provider>")
    def hook(provider: str) -> Response:
        if provider not in config.providers:
            return _json({"error": f"no webhook {provider!r} here (webhooks.providers: "
                                   f"{', '.join(config.providers) or 'none'})"}, 404)
        raw = request.get_data()
        with pipeline.expecting():  # a transaction about to be written waits a moment for this body
            return take(provider, raw)

    def take(provider: str, raw: bytes) -> Response:
        if provider == "ses":
            return take_ses(raw)
        if provider == "mailgun":
            return take_mailgun(raw)
        if provider in unset:
            return _refused(provider, Refusal(403, unset[provider]))
        if provider == "sendgrid":
            refusal = check_sendgrid(sg_key, request.headers, raw, now=clock(), max_age=sendgrid_max_age)
        else:
            refusal = check_postmark(request.headers, username=config.postmark_username,
                                     password=config.postmark_password, secret=config.postmark_secret,
                                     secret_header=config.postmark_secret_header)
        if refusal:
            return _refused(provider, refusal)
        return store(provider, raw, READERS[provider](request.headers, raw, options))

    return bp
