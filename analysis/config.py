"""The configuration sections the analysis reads: one typed home for all of them.

`postwatch/config.py` builds them from the file and the environment; nothing here reads
either. Lines, limits and thresholds are data: an operator changes them in postwatch.toml.
This module imports nothing heavy, so that loading the configuration stays cheap.

DESIGN.md's table of bounce categories is the authority for suppression: reasons of the
`reputation`, `policy`, `content` and `unknown` categories never suppress a recipient,
whatever is configured here (`analysis.suppression` refuses such a configuration).
"""
from __future__ import annotations

from dataclasses import dataclass

from ingest.config import DomainsConfig  # noqa: F401  ([domains] is read by ingest too: attribution)


@dataclass(frozen=True)
class DnsConfig:
    """[dns]: the resolver the analysis uses."""

    nameservers: tuple[str, ...] = ()  # "IP" or "IP:PORT" ("[IPv6]:PORT"); empty = the system resolver
    timeout: float = 3.0  # seconds per look-up, all tries included


@dataclass(frozen=True)
class ProvidersConfig:
    """[providers]: extra recipient-domain and MX-host mappings, and the MX look-up cache."""

    domains: tuple[str, ...] = ()  # "DOMAIN=PROVIDER", before the shipped list
    mx_hosts: tuple[str, ...] = ()  # "HOST-SUFFIX=PROVIDER", before the shipped list
    mx_lookups: bool = True  # look up the MX of domains no list knows
    cache_days: int = 7  # how long a look-up's answer is kept in the database

    def __post_init__(self) -> None:
        for key in ("domains", "mx_hosts"):
            for entry in getattr(self, key):
                left, sep, right = entry.partition("=")
                if not sep or not left.strip() or not right.strip():
                    raise ValueError(f"providers.{key}: {entry!r} is not NAME=PROVIDER (e.g. example.org=google)")


@dataclass(frozen=True)
class ScoresConfig:
    """[scores]: the lines of the reputation score (rates are fractions: 0.001 = 0.1 %)."""

    good: float = 80.0  # a score at or above this is `good`
    watch: float = 50.0  # at or above this (and under `good`) is `watch`; under it `critical`
    min_volume: int = 100  # messages of the day below which an entity gets no score
    complaint_good: float = 0.001  # Gmail and Yahoo: keep the spam rate under 0.1 % ...
    complaint_bad: float = 0.003  # ... and never reach 0.3 %
    recovery_days: int = 7  # consecutive days under complaint_bad before the cap lifts (Gmail)
    hard_bounce_good: float = 0.02
    hard_bounce_bad: float = 0.05
    block_good: float = 0.01
    block_bad: float = 0.05
    unaligned_good: float = 0.02
    unaligned_bad: float = 0.20
    tls_failure_good: float = 0.01
    tls_failure_bad: float = 0.10
    weight_complaints: float = 40.0
    weight_hard_bounces: float = 20.0
    weight_blocks: float = 15.0
    weight_dmarc: float = 10.0
    weight_tls: float = 5.0
    weight_blocklists: float = 10.0
    min_count: int = 10  # events a rate needs to decide alone; with fewer, the Wilson lower bound decides
    wilson_z: float = 1.96  # z of that Wilson score interval (1.96: 95 % two-sided)
    min_events: int = 3  # a rate never caps the grade on fewer events than this


@dataclass(frozen=True)
class DmarcConfig:
    """[dmarc]: what counts as an authorised source of your domains' mail."""

    authorised_ips: tuple[str, ...] = ()  # IPs or CIDRs that send for you (besides [domains] sending_ips)
    esp_domains: tuple[str, ...] = ()  # base domains of your ESPs' servers (e.g. sendgrid.net, amazonses.com)
    forwarders: tuple[str, ...] = ()  # more base domains of known forwarders
    new_source_days: int = 7  # a source first seen this recently is listed as new


@dataclass(frozen=True)
class BlocklistsConfig:
    """[blocklists]: the DNSBL (IP) and URIBL/RHSBL (domain) zones the hourly check asks."""

    ip_zones: tuple[str, ...] = ("zen.spamhaus.org", "bl.spamcop.net", "psbl.surriel.com")
    domain_zones: tuple[str, ...] = ("dbl.spamhaus.org", "multi.surbl.org")
    from_rollups: bool = True  # also check the sending IPs/domains seen in the last lookback_days
    lookback_days: int = 7
    workers: int = 8  # look-ups in flight at once
    # "ZONE=ENTRY": the entry each zone documents as always listed, asked before its answers
    # count; a zone not named here is asked for RFC 5782's (127.0.0.2, or the domain "test")
    test_entries: tuple[str, ...] = ("dbl.spamhaus.org=dbltest.com", "multi.surbl.org=test.surbl.org")

    def __post_init__(self) -> None:
        import ipaddress

        ip_zones = {z.strip(".").lower() for z in self.ip_zones}
        for entry in self.test_entries:
            zone, sep, name = (part.strip() for part in entry.partition("="))
            if not sep or not zone or not name:
                raise ValueError(f"blocklists.test_entries: {entry!r} is not ZONE=ENTRY "
                                 "(e.g. dbl.spamhaus.org=dbltest.com)")
            if zone.strip(".").lower() in ip_zones:
                try:
                    ipaddress.ip_address(name)
                except ValueError:
                    raise ValueError(f"blocklists.test_entries: {zone} is an IP zone (blocklists.ip_zones), so "
                                     f"its test entry must be an IP address, not {name!r}") from None


@dataclass(frozen=True)
class AlertsConfig:
    """[alerts]: the alert lines, and where alerts are sent."""

    # threshold rules (rates are fractions: 0.001 = 0.1 %)
    complaint_rate_warning: float = 0.001  # Gmail/Yahoo: keep the spam rate under 0.1 % ...
    complaint_rate_critical: float = 0.003  # ... and never reach 0.3 %
    hard_bounce_rate_warning: float = 0.02
    hard_bounce_rate_critical: float = 0.05
    block_rate_warning: float = 0.01  # refusals of the sender (reputation and policy bounces) / sent
    block_rate_critical: float = 0.05
    min_volume: int = 100  # sends of the day below which rate rules stay silent
    block_spike_min_count: int = 20  # reputation-category bounces of one provider in the day
    block_spike_min_share: float = 0.2  # today's block share must exceed the baseline's by this ...
    block_spike_factor: float = 2.0  # ... and be at least this many times the baseline's
    tls_failure_rate_warning: float = 0.05
    tls_failure_rate_critical: float = 0.2
    tls_min_sessions: int = 100
    gmail_spam_rate_warning: float = 0.001  # Google Postmaster Tools' user-reported spam rate of a domain ...
    gmail_spam_rate_critical: float = 0.003  # ... (docs/providers.md)
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
    min_count: int = 10  # events a rate needs to decide alone; with fewer, the Wilson lower bound decides
    wilson_z: float = 1.96  # z of that Wilson score interval (1.96: 95 % two-sided)
    min_events: int = 3  # a rate rule never fires on fewer events than this
    catch_up_days: int = 400  # the furthest back the job goes to judge days it has not judged
    # delivery
    smtp_host: str = ""  # HOST[:PORT] of the smarthost ([IPv6]:PORT); empty = no alert e-mail
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
    # seconds between a standby scheduler's tries for the lock, and the leader's checks that it holds it
    lock_poll_seconds: float = 5.0


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


@dataclass(frozen=True)
class SunsetConfig:
    """[sunset]: stop mailing recipients who no longer open or click (analysis/sunset.py)."""

    enabled: bool = False  # the `sunset` job suppresses nobody until this is true
    sends: int = 10  # no human open or click after their last this many tracked messages; 0: not this rule
    days: int = 180  # ... or in this many days since a tracked message reached them; 0: not this rule

    def __post_init__(self) -> None:
        if self.sends < 0 or self.days < 0:
            raise ValueError("sunset.sends and sunset.days cannot be negative (0 turns that rule off)")
        if self.enabled and not self.sends and not self.days:
            raise ValueError("sunset.enabled is true but sunset.sends and sunset.days are both 0: set one of them")


@dataclass(frozen=True)
class ReportsConfig:
    """[reports]: the scheduled digests by e-mail (analysis/digest), sent by postwatch's sender."""

    # "PERIOD|CRON|TIMEZONE|RECIPIENTS|SCOPE", e.g.
    # "weekly|0 8 * * MON|Europe/Paris|ops@example.com boss@example.com|domain:example.com"
    schedules: tuple[str, ...] = ()
    mail_from: str = "postwatch@localhost"  # From (and return path) of the digests; DKIM-signed per [sender]
    top: int = 10  # rows of the top-N tables (bounce reasons, diagnostics, campaigns, sources)
    retries: int = 3  # attempts to send a digest before it is raised as an alert
    retry_backoff: float = 30.0  # seconds before the second attempt, doubled for each further one
    dashboard_path: str = "/"  # the dashboard's path under web.base_url; the digest links to it with its filters

    def __post_init__(self) -> None:
        if self.schedules:
            from analysis.digest.schedule import parse_schedules

            parse_schedules(self.schedules)  # a bad entry stops the configuration with a sentence
        if "@" not in self.mail_from:
            raise ValueError(f"reports.mail_from must be an address, not {self.mail_from!r}")
        if self.top < 1 or self.retries < 1 or self.retry_backoff < 0:
            raise ValueError("reports.top and reports.retries must be at least 1, retry_backoff not negative")
        if not self.dashboard_path.startswith("/"):
            raise ValueError(f"reports.dashboard_path must start with '/', not {self.dashboard_path!r}")


@dataclass(frozen=True)
class PostmasterConfig:
    """[postmaster]: Google Postmaster Tools (API v2), fetched daily for `domains`."""

    service_account_file: str = ""  # the service account's JSON key file; empty = no fetch
    domains: tuple[str, ...] = ()  # the domains verified in Postmaster Tools that postwatch asks about
    api_url: str = "https://gmailpostmastertools.googleapis.com/v2"
    token_url: str = ""  # the OAuth token endpoint; empty = the key file's token_uri
    scope: str = "https://www.googleapis.com/auth/postmaster.readonly"
    days: int = 10  # each fetch asks for this many days back (Google's figures come a day or two late)
    timeout: float = 30.0  # seconds per HTTP request

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError("postmaster.days must be at least 1")


@dataclass(frozen=True)
class SndsConfig:
    """[snds]: Microsoft SNDS's automated access, fetched daily."""

    key: str = ""  # the automated-access key of SNDS; empty = no fetch
    base_url: str = "https://sendersupport.olc.protection.outlook.com/snds"  # data.aspx and ipStatus.aspx under it
    timeout: float = 30.0  # seconds per HTTP request
