"""What happens to the demo sender: its mail, and the episodes of its history, as data.

A `Story` says who the mail goes to (the providers and their shares, the campaigns, the
sender's size) and where each episode falls and what it looks like: which IP is listed on
which zone, which provider refuses which sending domain's mail and in which words, which
campaign draws the complaints and where, which IP spoofs which domain, which policy domain's
MX shows an expired certificate. `postwatch.demo.scenario` turns a story into raw messages.

`DEFAULT` is the demo's own history (`postwatch demo`); `SECOND` is another 60 days of the
same two domains: a sender a third of the size, Gmail-heavy, its episodes elsewhere in the
period, at other providers, on other IPs — so the rules are checked against more than one
story (tests/test_demo_scenarios.py).
"""
from __future__ import annotations

from dataclasses import dataclass

# The sender: its two sending domains (From address, display name) and each one's IP pool.
DOMAINS = {"news.example.com": ("news@news.example.com", "Example Shop"),
           "mail.example.net": ("receipts@mail.example.net", "Example Shop")}
POOLS = {"news.example.com": ("192.0.2.10", "192.0.2.11"),
         "mail.example.net": ("198.51.100.20", "198.51.100.21")}
SENDING_IPS = tuple(ip for pool in POOLS.values() for ip in pool)
FBL_PROVIDERS = ("yahoo", "microsoft")  # the providers whose complaint feedback loops send ARF reports


@dataclass(frozen=True)
class Provider:
    name: str
    share: float
    domains: tuple[str, ...]
    mx: str
    mx_ip: str


GOOGLE = ("google", ("gmail.com", "googlemail.com"), "gmail-smtp-in.l.google.com", "142.250.27.26")
MICROSOFT = ("microsoft", ("outlook.com", "hotmail.com", "live.com"), "outlook-com.olc.protection.outlook.com",
             "52.101.68.14")
YAHOO = ("yahoo", ("yahoo.com", "aol.com"), "mta7.am0.yahoodns.net", "67.195.204.72")
APPLE = ("apple", ("icloud.com", "me.com"), "mx01.mail.icloud.com", "17.57.155.34")


def providers(**shares: float) -> tuple[Provider, ...]:
    """The mailbox providers in the demo's order, each with its share of the recipients."""
    return tuple(Provider(name, shares[name], domains, mx, ip) for name, domains, mx, ip in
                 (GOOGLE, MICROSOFT, YAHOO, APPLE) if shares.get(name))


@dataclass(frozen=True)
class Campaign:
    name: str
    domain: str
    subject: str
    size: int  # recipients per send
    weekdays: tuple[int, ...]  # Monday = 0; the days it goes out
    hour: int  # UTC hour it goes out
    hard_rate: float  # share of recipients whose address no longer exists
    complaint_rate: float = 0.0004  # complaints per delivered message at the providers with a feedback loop
    every_other_week: bool = False


EVERY_DAY = (0, 1, 2, 3, 4, 5, 6)


@dataclass(frozen=True)
class Span:
    """Where an episode falls in a history of `days` days: from `at` (a share of the length;
    None: it runs to the last day) for `length` days, or one day per `per` days of history
    when that is longer, at most `most` days (0: no limit)."""

    at: float | None
    length: int
    per: int = 0
    most: int = 0

    def of(self, days: int) -> range:
        n = max(self.length, days // self.per if self.per else 0)
        if self.most:
            n = min(n, self.most)
        first = days - n if self.at is None else int(days * self.at)
        return range(first, first + n)


@dataclass(frozen=True)
class Listing:
    """A sending IP on a DNSBL: the A record and the TXT text the zone answers."""

    span: Span
    ip: str
    zone: str
    answer: str = "127.0.0.2"
    text: str = "Blocked - see https://www.spamcop.net/bl.shtml?{ip}"


@dataclass(frozen=True)
class Refusal:
    """A receiver's refusal, in its own words: {ip} is the refused IP, {domain} the sending domain."""

    label: str  # how people name it: S3150, TSS04 ...
    weight: float  # its share of the refusals
    status: str
    text: str
    command: str  # what the refusal answered (Postfix's "in reply to ... command")


REFUSALS = {
    # Outlook.com: the connecting IP on its block list, and its authentication requirement
    "microsoft": (
        Refusal("S3150", 0.8, "5.7.1",
                "550 5.7.1 Unfortunately, messages from [{ip}] weren't sent. Please contact your Internet service "
                "provider since part of their network is on our block list (S3150). You can also refer your "
                "provider to http://mail.live.com/mail/troubleshooting.aspx#errors.", "MAIL FROM"),
        Refusal("5.7.515", 0.2, "5.7.515",
                "550 5.7.515 Access denied, sending domain {domain} doesn't meet the required authentication "
                "level.", "DATA"),
    ),
    # Gmail (https://support.google.com/a/answer/3726730): the IP's low reputation, and its rate limit
    "google": (
        Refusal("5.7.1 low reputation", 0.7, "5.7.1",
                "550-5.7.1 [{ip}] Our system has detected that this message is likely suspicious due to the very "
                "low reputation of the sending IP address. To best protect our users from spam, the message has "
                "been blocked. For more information, go to https://support.google.com/mail/answer/188131 - gsmtp",
                "DATA"),
        Refusal("4.7.28", 0.3, "4.7.28",
                "421-4.7.28 [{ip}] Gmail has detected an unusual rate of unsolicited mail originating from your "
                "IP address. To protect our users from spam, mail sent from your IP address has been temporarily "
                "rate limited. For more information, go to "
                "https://support.google.com/mail/?p=UnsolicitedRateLimitError - gsmtp", "DATA"),
    ),
    # Yahoo (https://senders.yahooinc.com/smtp-error-codes): the IP deferred for volume or complaints
    "yahoo": (
        Refusal("TSS04", 1.0, "4.7.0",
                "421 4.7.0 [TSS04] Messages from {ip} temporarily deferred due to unexpected volume or user "
                "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", "MAIL FROM"),
    ),
}


@dataclass(frozen=True)
class Block:
    """A provider refusing one sending domain's mail: `ip` throughout (share `share` of its
    mail), the domain's other IP on one day in three (`worst_share`), else `other_share`."""

    span: Span
    provider: str
    domain: str
    ip: str
    share: float = 0.85
    other_share: float = 0.1
    worst_share: float = 0.55

    @property
    def refusals(self) -> tuple[Refusal, ...]:
        return REFUSALS[self.provider]


@dataclass(frozen=True)
class Spike:
    """A campaign sent on the episode's days whose complaints come from `providers` (the
    others complain at `quiet_rate`)."""

    span: Span
    campaign: Campaign
    providers: tuple[str, ...] = FBL_PROVIDERS
    quiet_rate: float = 0.0004


@dataclass(frozen=True)
class Spoof:
    """A source that is not ours sending as `domain`, in the DMARC aggregate reports."""

    span: Span
    ip: str
    domain: str
    messages: tuple[int, int] = (20, 120)  # per reporter and day


@dataclass(frozen=True)
class TlsOutage:
    """An expired certificate on one MX of a policy domain, in the TLS reports of the servers delivering to it."""

    span: Span
    domain: str
    mx: str = "mx2"
    mx_ip: str = "192.0.2.53"
    failures: tuple[int, int] = (40, 90)  # failed sessions per reporter and day


@dataclass(frozen=True)
class Story:
    """A sender's history: who its mail goes to, and its episodes (the module's docstring)."""

    name: str
    days: int  # the history it was written for (the demo plays any length)
    providers: tuple[Provider, ...]
    campaigns: tuple[Campaign, ...]
    listing: Listing
    block: Block
    spike: Spike
    spoof: Spoof
    tls_outage: TlsOutage
    scale: float = 1.0  # the sender's size (run_demo's scale multiplies it)
    # (reporter, fewest, most): the successful TLS sessions a reporter counts per policy domain and day
    tls_sessions: tuple[tuple[str, int, int], ...] = (("google", 180, 260), ("microsoft", 60, 120))

    EPISODES = ("listing", "block", "spike", "spoof", "tls_outage")

    def describe(self) -> dict[str, str]:
        """One line per episode, for the demo's summary."""
        b, s = self.block, self.spike
        words = ", ".join(r.label for r in b.refusals)
        return {
            "listing": f"{self.listing.ip} listed on {self.listing.zone}",
            "block": f"{b.provider.capitalize()} blocks {b.domain} on {b.ip} ({words})",
            "spike": f"complaint spike from the {s.campaign.name} campaign at {', '.join(s.providers)}",
            "spoof": f"spoofing source {self.spoof.ip} in the DMARC reports of {self.spoof.domain}",
            "tls_outage": f"expired certificate on {self.tls_outage.mx}.{self.tls_outage.domain} (TLS reports)",
        }


DEFAULT = Story(
    "default", days=90,
    providers=providers(google=0.45, microsoft=0.25, yahoo=0.18, apple=0.12),
    campaigns=(
        Campaign("weekly-newsletter", "news.example.com", "This week at Example Shop", 9000, (1,), 9, 0.009),
        Campaign("product-update", "news.example.com", "New in the shop", 6000, (3,), 14, 0.007,
                 every_other_week=True),
        Campaign("welcome-series", "news.example.com", "Welcome to Example Shop", 300, EVERY_DAY, 11, 0.006,
                 complaint_rate=0.0002),
        Campaign("receipts", "mail.example.net", "Your receipt", 2200, EVERY_DAY, 12, 0.002,
                 complaint_rate=0.0001),
        Campaign("password-reset", "mail.example.net", "Reset your password", 350, EVERY_DAY, 13, 0.001,
                 complaint_rate=0.0),
    ),
    listing=Listing(Span(0.66, 3, per=22), "192.0.2.11", "bl.spamcop.net"),
    block=Block(Span(0.7, 3, per=15), "microsoft", "news.example.com", "192.0.2.11"),
    spike=Spike(Span(0.8, 2), Campaign("flash-sale", "news.example.com", "48 hours only: 60% off everything", 5000,
                                       EVERY_DAY, 16, 0.011, complaint_rate=0.011)),
    spoof=Spoof(Span(None, 3, per=6, most=7), "203.0.113.66", "news.example.com"),
    tls_outage=TlsOutage(Span(0.3, 3), "news.example.com"),
)

# A smaller sender (a third of the size) whose recipients are mostly at Gmail, with a
# newsletter twice a week. Gmail refuses its receipts domain's second IP for six days in the
# first half; Spamhaus lists its newsletter IP early on; a win-back mailing to a stale list
# draws Microsoft's complaints; a spoofer uses the receipts domain mid-period, whose MX
# certificate expires late in the period.
SECOND = Story(
    "second", days=60, scale=0.3,
    providers=providers(google=0.62, microsoft=0.16, yahoo=0.14, apple=0.08),
    campaigns=(
        Campaign("weekly-newsletter", "news.example.com", "News from Example Shop", 7000, (0, 3), 8, 0.008),
        Campaign("welcome-series", "news.example.com", "Welcome to Example Shop", 220, EVERY_DAY, 10, 0.007,
                 complaint_rate=0.0002),
        Campaign("receipts", "mail.example.net", "Your receipt", 1800, EVERY_DAY, 12, 0.002,
                 complaint_rate=0.0001),
        Campaign("password-reset", "mail.example.net", "Reset your password", 300, EVERY_DAY, 15, 0.001,
                 complaint_rate=0.0),
    ),
    listing=Listing(Span(0.2, 4), "192.0.2.10", "zen.spamhaus.org", answer="127.0.0.3",
                    text="https://check.spamhaus.org/query/ip/{ip}"),
    block=Block(Span(0.42, 6), "google", "mail.example.net", "198.51.100.21", share=0.6, other_share=0.05,
                worst_share=0.25),
    spike=Spike(Span(0.3, 2), Campaign("win-back", "news.example.com", "We miss you: 20% off your next order",
                                       9000, EVERY_DAY, 17, 0.03, complaint_rate=0.015),
                providers=("microsoft",)),
    spoof=Spoof(Span(0.55, 4), "203.0.113.140", "mail.example.net", messages=(30, 90)),
    tls_outage=TlsOutage(Span(0.8, 4), "mail.example.net", mx="mx1", mx_ip="192.0.2.52", failures=(25, 60)),
    tls_sessions=(("google", 120, 170), ("microsoft", 30, 60)),
)

STORIES = {s.name: s for s in (DEFAULT, SECOND)}
