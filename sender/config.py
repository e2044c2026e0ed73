"""The configuration sections the sender and its HTTP blueprint read.

`postwatch/config.py` builds them; nothing here reads the environment or a file.
"""
from __future__ import annotations

from dataclasses import dataclass

from store.netloc import HostPortError, parse_hostport

MIN_TOKEN_LENGTH = 16  # a bearer token shorter than this is too easy to guess


@dataclass(frozen=True)
class SenderConfig:
    """[sender]: how postwatch's own sender delivers."""

    smarthost: str = "127.0.0.1:25"  # HOST:PORT ([IPv6]:PORT) of the relay; "mx": straight to each domain's MX
    starttls: str = "required"  # required | opportunistic | off
    from_address: str = "news@localhost"  # the From of a campaign unless `postwatch send --from` says otherwise
    return_path_domain: str = ""  # domain of bounces+t-TOKEN@ and unsubscribe+TOKEN@; empty: the From domain
    helo: str = ""  # the name in EHLO; empty: this machine's name
    sending_ip: str = ""  # local address to send from (and the one the send log records); empty: any
    timeout: float = 30.0  # seconds per SMTP conversation step
    mx_port: int = 25  # the port of an MX when smarthost = "mx"
    dkim_key_file: str = ""  # PEM private key; empty: messages are not signed
    dkim_selector: str = "postwatch"
    dkim_domain: str = ""  # d= of the signature; empty: the From domain
    feedback_customer: str = "postwatch"  # the customer part of Feedback-ID
    feedback_type: str = "bulk"  # the type part of Feedback-ID
    feedback_sender: str = "postwatch"  # the sender-id part of Feedback-ID
    domain_concurrency: int = 2  # connections at once to one destination domain
    domain_rate: float = 0.0  # messages per second to one destination domain; 0: no limit
    retries: int = 2  # extra tries of a 4xx answer within one run
    retry_backoff: float = 2.0  # seconds before the first retry; doubles each time
    warmup_start: str = ""  # YYYY-MM-DD the ramp starts; empty: no warm-up caps
    warmup_ramp: tuple[str, ...] = ("50", "100", "500", "1000", "5000", "10000", "20000", "50000", "100000")

    def __post_init__(self) -> None:
        if self.starttls not in ("required", "opportunistic", "off"):
            raise ValueError(f"sender.starttls must be required, opportunistic or off, not {self.starttls!r}")
        if self.smarthost != "mx":
            try:
                host, _port = parse_hostport(self.smarthost, key="sender.smarthost")
            except HostPortError as exc:
                raise ValueError(f"{exc} (or mx: straight to each domain's MX)") from None
            if not host:
                raise ValueError(f"{self.smarthost!r} is not HOST:PORT (sender.smarthost): no host")
        if "@" not in self.from_address:
            raise ValueError(f"sender.from_address must be an address, not {self.from_address!r}")
        if self.domain_concurrency < 1:
            raise ValueError("sender.domain_concurrency must be at least 1")
        if self.domain_rate < 0 or self.retries < 0 or self.retry_backoff < 0 or self.timeout <= 0:
            raise ValueError("sender.domain_rate, retries and retry_backoff cannot be negative, timeout must be positive")
        for part in ("feedback_customer", "feedback_type", "feedback_sender"):
            if ":" in getattr(self, part):
                raise ValueError(f"sender.{part} cannot contain ':' (it is one field of Feedback-ID)")
        try:
            ramp = [int(v) for v in self.warmup_ramp]
        except ValueError:
            raise ValueError("sender.warmup_ramp must be whole numbers (messages per day per sending IP)") from None
        if any(v < 1 for v in ramp):
            raise ValueError("sender.warmup_ramp: every daily cap must be at least 1")
        if self.warmup_start:
            from datetime import date
            try:
                date.fromisoformat(self.warmup_start)
            except ValueError:
                raise ValueError(f"sender.warmup_start must be YYYY-MM-DD, not {self.warmup_start!r}") from None


@dataclass(frozen=True)
class WebConfig:
    """[web]: the web server (the suppression feed, one-click unsubscribe; later the dashboard)."""

    listen: str = "127.0.0.1:8050"
    base_url: str = "http://127.0.0.1:8050"  # the public address in unsubscribe links and digests
    read_tokens: tuple[str, ...] = ()  # bearer tokens that may read the suppression feed and look-ups
    write_tokens: tuple[str, ...] = ()  # bearer tokens that may also add and remove suppressions
    secret: str = ""  # key of the signed unsubscribe tokens; empty: unsubscribe links are refused
    unsubscribe_scope: str = "global"  # global | domain: an unsubscribe suppresses for the sending domain only
    threads: int = 8  # requests served at once by `postwatch web`

    def __post_init__(self) -> None:
        if self.unsubscribe_scope not in ("global", "domain"):
            raise ValueError(f"web.unsubscribe_scope must be global or domain, not {self.unsubscribe_scope!r}")
        for name in ("read_tokens", "write_tokens"):
            if any(len(token) < MIN_TOKEN_LENGTH for token in getattr(self, name)):
                raise ValueError(f"web.{name}: every token must be at least {MIN_TOKEN_LENGTH} characters "
                                 "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
        if self.threads < 1:
            raise ValueError("web.threads must be at least 1")


@dataclass(frozen=True)
class TrackingConfig:
    """[tracking]: open and click tracking of the sender's mail (docs/tracking.md); off by default."""

    campaigns: tuple[str, ...] = ()  # campaigns tracked without `send --track`; "*": all; empty: none
    opens: bool = True  # a tracked campaign's HTML gets the 1x1 pixel
    clicks: bool = True  # a tracked campaign's links go through /t/c/
    rules_file: str = ""  # a machine-activity rules file used instead of the shipped one
    apple_ranges_file: str = ""  # Apple's egress-ip-ranges.csv used instead of the shipped excerpt
    click_delay_seconds: float = 10.0  # a click this soon after delivery is a scanner's
    burst_seconds: float = 5.0  # clicks on burst_links different links of one message within this: a scanner's
    burst_links: int = 3  # (or on every link of the message, when it has fewer but at least 2)
    trusted_proxies: tuple[str, ...] = ()  # CIDRs of reverse proxies whose X-Forwarded-For is believed

    def __post_init__(self) -> None:
        if self.click_delay_seconds < 0 or self.burst_seconds < 0:
            raise ValueError("tracking.click_delay_seconds and burst_seconds cannot be negative")
        if self.burst_links < 2:
            raise ValueError("tracking.burst_links must be at least 2 (one click is not a burst)")
        import ipaddress

        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError:
                raise ValueError(f"tracking.trusted_proxies: {cidr!r} is not an address or CIDR "
                                 "(e.g. 10.0.0.0/8)") from None

    def tracks(self, campaign: str) -> bool:
        return "*" in self.campaigns or campaign in self.campaigns


WEBHOOK_PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark")


@dataclass(frozen=True)
class WebhooksConfig:
    """[webhooks]: the ESP event webhooks the web server takes at POST /hooks/PROVIDER."""

    providers: tuple[str, ...] = ()  # the enabled ones (ses, sendgrid, mailgun, postmark); others answer 404
    ses_topic_arns: tuple[str, ...] = ()  # SNS topics whose messages are taken and whose subscriptions are confirmed
    sendgrid_public_key: str = ""  # the Signed Event Webhook's verification key (base64 DER)
    sendgrid_max_age_minutes: int = 0  # a signature timestamp further from now than this is refused; 0: no limit
    mailgun_signing_secret: str = ""  # the HTTP webhook signing key
    mailgun_max_age_minutes: int = 10  # a signature timestamp further from now than this is refused
    postmark_username: str = ""  # basic auth Postmark sends (https://USER:PASSWORD@host/hooks/postmark)
    postmark_password: str = ""
    postmark_secret: str = ""  # or a secret Postmark sends in a custom header
    postmark_secret_header: str = "X-Postmark-Secret"
    campaign_key: str = "campaign"  # the tag / metadata / custom argument naming a message's campaign
    volume_from: str = "sends"  # sends | deliveries: which event of a message counts as volume

    def __post_init__(self) -> None:
        unknown = [p for p in self.providers if p not in WEBHOOK_PROVIDERS]
        if unknown:
            raise ValueError(f"webhooks.providers: unknown {', '.join(unknown)}; known: {', '.join(WEBHOOK_PROVIDERS)}")
        if self.mailgun_max_age_minutes < 1:
            raise ValueError("webhooks.mailgun_max_age_minutes must be at least 1")
        if self.sendgrid_max_age_minutes < 0:
            raise ValueError("webhooks.sendgrid_max_age_minutes must be 0 (no limit) or more")
        if self.volume_from not in ("sends", "deliveries"):
            raise ValueError(f"webhooks.volume_from must be sends or deliveries, not {self.volume_from!r}")
        if bool(self.postmark_username) != bool(self.postmark_password):
            raise ValueError("webhooks.postmark_username and postmark_password go together: set both, or neither")


@dataclass(frozen=True)
class PreferencesConfig:
    """[preferences]: what the page behind the unsubscribe link offers besides leaving altogether."""

    topics: tuple[str, ...] = ()  # "NAME:Label" each, e.g. "news:Product news"; a campaign names its own (--topic)
    pause_days: tuple[str, ...] = ("30", "90")  # the pauses offered, in days; empty: no pause
    frequency_days: tuple[str, ...] = ("7", "30")  # "at most one message every N days" offered; empty: none

    def __post_init__(self) -> None:
        from store.suppressions import MAX_FREQUENCY_DAYS, is_topic_name

        for entry, (name, label) in zip(self.topics, self.topic_labels()):
            if ":" not in entry or not label or not is_topic_name(name):
                raise ValueError(f"preferences.topics: {entry!r} is not NAME:Label (a name of lower-case letters, "
                                 "digits, . _ -, e.g. news:Product news)")
        if len(set(self.topic_names())) != len(self.topics):
            raise ValueError("preferences.topics: a topic name is listed twice")
        for key in ("pause_days", "frequency_days"):
            try:
                days = [int(v) for v in getattr(self, key)]
            except ValueError:
                raise ValueError(f"preferences.{key} must be whole numbers of days") from None
            if any(not 1 <= d <= MAX_FREQUENCY_DAYS for d in days):  # what scope frequency:<N>d takes
                raise ValueError(f"preferences.{key}: every value must be 1 to {MAX_FREQUENCY_DAYS} days")

    def topic_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.topic_labels())

    def topic_labels(self) -> tuple[tuple[str, str], ...]:
        """(name, label) of each configured topic, in order."""
        parts = (entry.partition(":") for entry in self.topics)
        return tuple((name.strip().lower(), label.strip()) for name, _, label in parts)

    def pauses(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.pause_days)

    def frequencies(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.frequency_days)
