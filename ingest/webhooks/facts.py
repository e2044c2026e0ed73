"""What one webhook body says, in the shapes the store takes, and the helpers every
provider's reader shares: the bounce event through the classifier (with the provider's own
bounce vocabulary, `vocabulary.toml`), the complaint event, and the volume count.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from ingest.bounce.classify import classify
from ingest.bounce.rules import RuleSet, load_rules
from ingest.bounce.smtp import clean_address, find_reply_code, find_status, is_address, squash, status_field
from ingest.providers import providers, suffix_lookup
from ingest.types import Attribution, BounceEvent, ComplaintEvent, ParseResult
from store.addresses import domain_of
from store.timeparse import parse_when

KIND = "webhook"
VOCABULARY = Path(__file__).with_name("vocabulary.toml")

# (day, sending domain, sending IP, mailbox provider, campaign); '' = not given
VolumeKey = tuple[date, str, str, str, str]


class Unreadable(ValueError):
    """The body is not what the provider sends: the reason the message is quarantined with."""


@dataclass(frozen=True)
class ReadOptions:
    """What the readers are told: the rules (the operator's file, the vocabulary, the shipped
    rules), the tag or metadata key that names a campaign, and which event counts as volume."""

    rules: RuleSet
    campaign_key: str = "campaign"
    volume_from: str = "sends"  # sends | deliveries
    # what the classifier said of each event shape seen (see `bounce`), shared by the threads
    # that read with these options
    verdicts: dict[tuple, dict[str, Any]] = field(default_factory=dict, compare=False, hash=False, repr=False)


@functools.cache
def _rules(rules_file: str) -> RuleSet:
    return load_rules(rules_file, str(VOCABULARY))


def read_options(rules_file: str = "", campaign_key: str = "campaign", volume_from: str = "sends") -> ReadOptions:
    """ReadOptions with the rules loaded once per operator rules file."""
    return ReadOptions(_rules(rules_file or ""), campaign_key, volume_from)


@dataclass
class WebhookFacts:
    """The facts of one webhook body: one ParseResult per bounce or complaint event (each with
    the attribution of its own message), the volume counted, the events left aside."""

    provider: str
    results: list[ParseResult] = field(default_factory=list)
    volume: dict[VolumeKey, int] = field(default_factory=dict)
    ignored: int = 0  # events that are neither a bounce, a complaint nor volume (opens, clicks...)

    def count(self, when: datetime | None, sending_domain: str | None, sending_ip: str | None,
              recipient: str | None, campaign: str | None) -> None:
        day = (when or datetime.now(timezone.utc)).astimezone(timezone.utc).date()
        key = (day, (sending_domain or "")[:255], (sending_ip or "")[:45], mailbox_provider(recipient),
               (campaign or "")[:255])
        self.volume[key] = self.volume.get(key, 0) + 1

    @property
    def events(self) -> int:
        return sum(len(r.events) for r in self.results)

    @property
    def sent(self) -> int:
        return sum(self.volume.values())


def result_of(facts: WebhookFacts) -> ParseResult:
    return ParseResult(kind=KIND, detail=facts)


def unreadable(reason: str) -> ParseResult:
    return ParseResult(kind=KIND, error=reason)


def reader(fn: Callable[[Mapping[str, str], bytes, ReadOptions], WebhookFacts]
           ) -> Callable[[Mapping[str, str], bytes, ReadOptions], ParseResult]:
    """A provider's reader as (headers, raw, options) -> ParseResult: an Unreadable body (or
    one whose shape breaks the reader) becomes an error, the quarantine's reason."""
    @functools.wraps(fn)
    def read(headers: Mapping[str, str], raw: bytes, options: ReadOptions) -> ParseResult:
        try:
            return result_of(fn(headers, raw, options))
        except Unreadable as exc:
            return unreadable(str(exc))
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            return unreadable(f"the body is not in the provider's documented shape ({type(exc).__name__}: {exc})")
    return read


def load_json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unreadable(f"the body is not JSON ({exc}); {what}") from None


@functools.cache
def _provider_domains() -> dict[str, str]:
    return {d: p.name for p in providers().values() for d in p.domains}


def mailbox_provider(recipient: str | None) -> str:
    """The mailbox provider of a recipient by its domain (the shipped list), else the domain
    itself, '' when there is no recipient. The rollups resolve a domain kept here the way they
    resolve an event's recipient domain ([providers] lists, the MX look-up), so no DNS query
    is made while a webhook request waits."""
    domain = domain_of(recipient)
    return (suffix_lookup(domain, _provider_domains()) or domain) if domain else ""


def text(value: Any) -> str | None:
    return squash(value) if isinstance(value, str) and value.strip() else None


def diagnostic_text(value: Any) -> str | None:
    """A diagnostic without its type ("smtp; 550 5.1.1 ..." -> "550 5.1.1 ..."), and
    "dsn; mta.example" as the name."""
    if not isinstance(value, str) or not value.strip():
        return None
    head, sep, tail = value.partition(";")
    return text(tail if sep and " " not in head.strip() else value)


def address(value: Any) -> str | None:
    found = clean_address(value) if isinstance(value, str) else None
    return found if is_address(found) else None


def when(value: Any) -> datetime | None:
    """An ISO 8601 time or a Unix timestamp, in UTC."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, timezone.utc)
    return parse_when(value) if isinstance(value, str) else None


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat() if moment else None


def bounce(options: ReadOptions, provider: str, *, recipient: str | None, diagnostic: str | None,
           term: str | None, temporary: bool, status: str | None = None, reply_code: str | None = None,
           remote_mta: str | None = None, reporting_mta: str | None = None,
           at: datetime | None = None) -> BounceEvent:
    """One bounce event, classified: the receiver's words and codes as the classifier reads
    mail, and the provider's own term (`provider:term`, vocabulary.toml) as a sending MTA's
    category, which decides when the vocabulary names a reason for it."""
    diagnostic = text(diagnostic)
    status = status_field(status) if status else None
    status = status or find_status(diagnostic)
    if status and status[:1] not in "45":
        status = None
    code = reply_code if reply_code and reply_code.isdigit() and len(reply_code) == 3 else find_reply_code(diagnostic)
    ev: BounceEvent = {
        "recipient": recipient, "action": "delayed" if temporary else "failed", "status": status,
        "reply_code": code, "diagnostic": diagnostic, "diagnostic_type": "smtp" if diagnostic else None,
        "remote_mta": text(remote_mta), "reporting_mta": text(reporting_mta),
        "last_attempt_date": iso(at),
        "mta_category": f"{provider}:{term}".lower() if term else None,
    }
    ev.update(_verdict(options, ev))  # type: ignore[typeddict-item]
    return ev


VERDICTS_KEPT = 4096


def _verdict(options: ReadOptions, ev: BounceEvent) -> dict[str, Any]:
    """The classifier's verdict on `ev`, remembered by what it reads: a provider posts the same
    receiver answer for many recipients of one mailbox provider (the recipient's domain is
    what the classifier reads of the address; the time it does not read)."""
    key = (domain_of(ev["recipient"]), ev["action"], ev["status"], ev["reply_code"], ev["diagnostic"],
           ev["remote_mta"], ev["reporting_mta"], ev["mta_category"])
    found = options.verdicts.get(key)
    if found is None:
        found = classify(dict(ev), rules=options.rules)
        if len(options.verdicts) >= VERDICTS_KEPT:
            options.verdicts.clear()
        options.verdicts[key] = found
    return found


def complaint(recipient: str | None, feedback_type: str | None, *, at: datetime | None = None,
              user_agent: str | None = None, source_ip: str | None = None,
              reported_domain: str | None = None) -> ComplaintEvent:
    return {"recipient": recipient, "feedback_type": (feedback_type or "abuse").lower()[:40],
            "source_ip": source_ip, "reported_domain": reported_domain, "user_agent": user_agent,
            "arrival_date": iso(at)}


def attribution(*, message_id: str | None = None, from_address: str | None = None,
                campaign: str | None = None, subject: str | None = None) -> Attribution:
    out: Attribution = {}
    if message_id:
        out["message_id"] = message_id.strip().strip("<>")
    sender = address(from_address)
    if sender:
        out["from_address"] = sender
        out["from_domain"] = domain_of(sender)
    if campaign:
        out["campaign"] = campaign
    if subject:
        out["subject"] = subject
    return out


def event_result(kind: str, events: list, attributed: Attribution) -> ParseResult:
    return ParseResult(kind=kind, events=events, attribution=attributed)


@functools.cache
def _temporary() -> dict[str, frozenset[str]]:
    import tomllib

    data = tomllib.loads(VOCABULARY.read_text("utf-8")).get("temporary", {})
    return {provider: frozenset(t.lower() for t in terms) for provider, terms in data.items()}


def temporary_term(provider: str, term: str | None) -> bool:
    """Whether the provider's term means the failure is not final (vocabulary.toml [temporary])."""
    return bool(term) and term.lower() in _temporary().get(provider, frozenset())
