"""The configuration sections of the checks, the alerts and the scheduler.

`postwatch/config.py` builds them from the file and the environment; nothing here reads
either. Lines and limits are data: an operator changes them in postwatch.toml.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DomainsConfig:
    """[domains]: what we send as — checked against blocklists and for authentication posture."""

    sending_domains: tuple[str, ...] = ()  # the From domains we send for
    sending_ips: tuple[str, ...] = ()  # the IPs our mail leaves from (IPv4 or IPv6)
    dkim_selectors: tuple[str, ...] = ()  # selectors we sign with (more are found in DMARC reports)


@dataclass(frozen=True)
class BlocklistsConfig:
    """[blocklists]: the DNSBL (IP) and URIBL/RHSBL (domain) zones the hourly check asks."""

    ip_zones: tuple[str, ...] = ("zen.spamhaus.org", "bl.spamcop.net", "psbl.surriel.com")
    domain_zones: tuple[str, ...] = ("dbl.spamhaus.org", "multi.surbl.org")
    from_rollups: bool = True  # also check the sending IPs/domains seen in the last lookback_days
    lookback_days: int = 7
    workers: int = 8  # look-ups in flight at once


@dataclass(frozen=True)
class AlertsConfig:
    """[alerts]: the alert lines, and where alerts are sent."""

    # threshold rules (rates are fractions: 0.001 = 0.1 %)
    complaint_rate_warning: float = 0.001  # Gmail/Yahoo: keep the spam rate under 0.1 % ...
    complaint_rate_critical: float = 0.003  # ... and never reach 0.3 %
    hard_bounce_rate_warning: float = 0.02
    hard_bounce_rate_critical: float = 0.05
    min_volume: int = 100  # sends of the day below which rate rules stay silent
    block_spike_min_count: int = 20  # reputation-category bounces of one provider in the day
    block_spike_min_share: float = 0.2  # today's block share must exceed the baseline's by this ...
    block_spike_factor: float = 2.0  # ... and be at least this many times the baseline's
    tls_failure_rate_warning: float = 0.05
    tls_failure_rate_critical: float = 0.2
    tls_min_sessions: int = 100
    new_source_days: int = 7  # a DMARC-failing source first seen this recently is "new"
    # anomaly rules: today against the trailing baseline
    baseline_days: int = 14
    anomaly_metrics: tuple[str, ...] = ("bounced", "hard", "complaints", "bounced.reputation")
    anomaly_k: float = 3.0  # today's rate above mean + k * stddev of the baseline days
    anomaly_min_days: int = 7  # baseline days with sends needed before the rule speaks
    anomaly_min_count: int = 10  # and at least this many events today
    anomaly_min_stddev: float = 0.002  # floor of the stddev (as a rate), so a flat baseline is not hair-trigger
    dimensions: tuple[str, ...] = ("all", "sending_domain", "sending_ip", "provider", "campaign")
    stale_hours: int = 48  # an open alert not seen again for this long (no data) is resolved
    # delivery
    smtp_host: str = ""  # HOST[:PORT] of the smarthost; empty = no alert e-mail
    smtp_starttls: str = "opportunistic"  # required | opportunistic | off
    smtp_username: str = ""
    smtp_password: str = ""
    mail_from: str = "postwatch@localhost"
    mail_to: tuple[str, ...] = ()
    webhook_url: str = ""  # JSON POST, Slack-compatible ({"text": ..., "blocks": [...]}); empty = none
    timeout: float = 10.0  # seconds per SMTP or HTTP attempt
    retries: int = 3  # attempts per delivery within one run; a delivery still failing waits for the next run
    retry_backoff: float = 2.0  # seconds before the second attempt, doubled for each further one
    notify_resolved: bool = True  # also send a notice when an alert is resolved


@dataclass(frozen=True)
class SchedulerConfig:
    """[scheduler]: how `postwatch scheduler` runs the jobs."""

    misfire_grace_seconds: int = 600  # a run missed by less than this still happens (once: coalesced)
    jobstore_table: str = "apscheduler_jobs"  # APScheduler's own table, in the same database
    timezone: str = "UTC"  # of the crontab lines
    run_at_start: bool = True  # run every job once when the scheduler starts
