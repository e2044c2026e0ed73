"""The configuration sections of the suppression rules and of privacy. `postwatch/config.py`
builds them; nothing here reads the environment or a file.

DESIGN.md's table of bounce categories is the authority: reasons of the `reputation`,
`policy`, `content` and `unknown` categories never suppress a recipient, whatever is
configured here (`analysis.suppression.Rules` refuses such a configuration).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SuppressionConfig:
    """[suppression]: which feedback stops mail to an address, and when."""

    # bounce reasons that suppress at once
    immediate: tuple[str, ...] = ("userunknown", "hostunknown", "hasmoved", "notaccept", "suppressed")
    # of those, the ones that suppress at once only when permanent (5xx); a 4xx one counts as soft
    permanent_only: tuple[str, ...] = ("notaccept",)
    # soft bounces needed, per reason ("reason=count")
    thresholds: tuple[str, ...] = ("suspend=2", "mailboxfull=3", "expired=3")
    # the other recipient-attributable transient reasons, and how many of them suppress
    transient_reasons: tuple[str, ...] = ("systemfull", "networkerror", "systemerror", "mailererror")
    transient_threshold: int = 5
    window_days: int = 30  # soft bounces older than this do not count
    min_messages: int = 2  # counted bounces must come from at least this many sent messages ...
    min_spread_hours: float = 72.0  # ... two of them at least this far apart
    reset_on_delivery: bool = True  # a later successful delivery starts the count again
    # complaint feedback types that suppress at once and for good
    complaint_types: tuple[str, ...] = ("abuse", "fraud", "opt-out", "unsubscribe")
    complaint_scope: str = "global"  # global, or domain: only the sending domain complained about
    hygiene_expiry_days: int = 0  # 0 = an immediate (hygiene) suppression never expires
    soft_expiry_days: int = 90  # a suppression from repeated soft bounces lapses after this; 0 = never
    guard_share: float = 0.5  # mass-event guard: this share of a provider's bounces are `reputation` ...
    guard_min_bounces: int = 20  # ... and at least this many of them ...
    guard_window_minutes: int = 60  # ... in this last stretch: hold that provider's soft escalations


@dataclass(frozen=True)
class PrivacyConfig:
    """[privacy]: erasure (`postwatch forget`) and how long raw messages are kept."""

    salt: str = ""  # HMAC key of the hash kept of an erased address; set once, never change
    raw_retention_days: int = 180  # raw message bytes older than this are purged; 0 = keep them
