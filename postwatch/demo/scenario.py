"""The fictional sender of the demo, and what happens to its mail day by day.

Example Shop sends marketing from news.example.com (192.0.2.10 and .11) and receipts and
password resets from mail.example.net (198.51.100.20 and .21) to Google, Microsoft, Yahoo
and Apple mailboxes. What happens over the period is a story (postwatch/demo/stories.py);
the default one, placed relative to the history's length so a short demo shows it too:

- a blocklist listing of 192.0.2.11 (bl.spamcop.net), a few days;
- then a Microsoft block episode: Outlook.com refuses most mail from news.example.com
  (S3150 block-list refusals, 5.7.515 authentication refusals) for several days;
- a complaint spike from one campaign (flash-sale) at Yahoo and Microsoft;
- a spoofing source (203.0.113.66) sending as news.example.com, in the DMARC reports of the
  last days;
- an expired certificate on one inbound MX, seen in the TLS reports.

`plan_day` returns one day: the volume rows (the CSV `postwatch volume import` reads) and the
raw messages that arrive that day. Everything follows from the story, the seed, the first day
and the length, so the same arguments give the same bytes (and a re-run stores nothing new).
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from postwatch.demo import messages as msg
from postwatch.demo.stories import (DEFAULT, DOMAINS, EVERY_DAY, FBL_PROVIDERS, POOLS, SENDING_IPS,  # noqa: F401
                                   Campaign, Provider, Refusal, Story)
from store.addresses import domain_of

# the default story's, for the callers that know the demo by them
LISTED_IP = DEFAULT.listing.ip
LISTING_ZONE = DEFAULT.listing.zone
SPOOF_IP = DEFAULT.spoof.ip
PROVIDERS = DEFAULT.providers
CAMPAIGNS = DEFAULT.campaigns
SPIKE = DEFAULT.spike.campaign
FORWARDER_IP = "198.18.7.25"  # a university's forwarder re-sending our mail (breaks SPF)
DKIM_SELECTOR = "pw1"

FIRST = ("alex", "sam", "maria", "li", "noah", "emma", "lucas", "mia", "omar", "zoe", "ivan", "nina", "raj",
         "sofia", "tom", "ana", "ben", "chloe", "dan", "eva", "felix", "grace", "hugo", "iris", "jack", "kim")
LAST = ("smith", "garcia", "chen", "muller", "rossi", "kowalski", "silva", "novak", "jones", "martin",
        "dubois", "nguyen", "tanaka", "olsen", "haddad", "kumar", "brown", "lopez", "weber", "costa")


@dataclass(frozen=True)
class Timeline:
    """Where the story's episodes fall in a demo of `days` days starting on `start`."""

    start: date
    days: int
    story: Story = DEFAULT

    def index(self, day: date) -> int:
        return (day - self.start).days

    @property
    def listing(self) -> range:
        return self.story.listing.span.of(self.days)

    @property
    def block(self) -> range:
        return self.story.block.span.of(self.days)

    @property
    def spike(self) -> range:
        return self.story.spike.span.of(self.days)

    @property
    def spoof(self) -> range:
        return self.story.spoof.span.of(self.days)

    @property
    def tls_outage(self) -> range:
        return self.story.tls_outage.span.of(self.days)

    def episodes(self) -> dict[str, tuple[date, date]]:
        """Each episode's first and last day, for the summary."""
        out = {}
        for name in Story.EPISODES:
            r = getattr(self, name)
            out[name] = (self.start + timedelta(days=r.start), self.start + timedelta(days=min(r.stop, self.days) - 1))
        return out


@dataclass
class Day:
    """What one day brings: volume rows and the raw messages that arrive."""

    day: date
    volume: list[tuple[str, str, str, str, int]] = field(default_factory=list)  # domain, ip, provider, campaign, sent
    messages: list[tuple[datetime, bytes]] = field(default_factory=list)  # (arrival, raw)
    listed: bool = False  # the story's listed IP is on its zone today

    def volume_csv(self) -> str:
        lines = ["day,sending_domain,sending_ip,provider,campaign,sent"]
        lines += [f"{self.day},{d},{ip},{p},{c},{n}" for d, ip, p, c, n in self.volume]
        return "\n".join(lines) + "\n"


class Scenario:
    def __init__(self, start: date, days: int, seed: int = 7, scale: float = 1.0, story: Story = DEFAULT) -> None:
        self.story = story
        self.timeline = Timeline(start, days, story)
        self.seed = seed
        self.scale = scale * story.scale
        self.full_mailboxes: dict[str, int] = {}  # address -> mailbox-full bounces so far

    # ------------------------------------------------------------------ one day

    def plan_day(self, day: date, now: datetime) -> Day:
        """Day `day`'s volume and messages, up to `now` (the demo's last day is today)."""
        rng = random.Random(f"{self.seed}:{day.isoformat()}")
        i = self.timeline.index(day)
        out = Day(day, listed=i in self.timeline.listing)
        for c, provider, n_ip, ip, n, sent_at in self._cells(day, now):
            out.volume.append((c.domain, ip, provider.name, c.name, n))
            self._feedback(out, rng, c, provider, n_ip, ip, n, sent_at, i, now)
        if i >= 1:  # the reports about yesterday arrive today
            self._dmarc_reports(out, rng, day - timedelta(days=1), now)
            self._tls_reports(out, rng, day - timedelta(days=1), i - 1, now)
        out.messages.sort(key=lambda m: m[0])
        return out

    def _campaigns(self, day: date) -> list[Campaign]:
        out = []
        for c in self.story.campaigns:
            if day.weekday() not in c.weekdays:
                continue
            if c.every_other_week and day.isocalendar().week % 2:
                continue
            out.append(c)
        if self.timeline.index(day) in self.timeline.spike:
            out.append(self.story.spike.campaign)
        return out

    def _cells(self, day: date, now: datetime):
        """(campaign, provider, IP number, IP, recipients, sent at) of each send of the day."""
        rng = random.Random(f"{self.seed}:{day.isoformat()}:volume")
        for c in self._campaigns(day):
            sent_at = datetime.combine(day, time(c.hour), timezone.utc)
            size = max(1, round(c.size * self.scale * rng.uniform(0.92, 1.08)))
            pool = POOLS[c.domain]
            for provider in self.story.providers:
                for n_ip, ip in enumerate(pool):
                    n = round(size * provider.share / len(pool) * rng.uniform(0.9, 1.1))
                    if n > 0 and sent_at <= now:
                        yield c, provider, n_ip, ip, n, sent_at

    def _feedback(self, out: Day, rng: random.Random, c: Campaign, provider: Provider, n_ip: int, ip: str,
                  n: int, sent_at: datetime, i: int, now: datetime) -> None:
        from_address, from_name = DOMAINS[c.domain]
        cell = _Cell(self, rng, c, provider, ip, sent_at, from_address, from_name, now, out)
        blocked = 0
        b = self.story.block
        in_block = i in self.timeline.block and c.domain == b.domain and provider.name == b.provider
        if in_block:
            # its IP is refused throughout, the domain's other IP on the worst days
            share = b.share if ip == b.ip else (b.worst_share if (i - self.timeline.block.start) % 3 == 1
                                                else b.other_share)
            blocked = _count(rng, n, share)
            for _ in range(blocked):
                cell.block(b.refusals)
        for _ in range(_count(rng, n - blocked, c.hard_rate)):
            cell.hygiene()
        if provider.name == "google" and rng.random() < 0.15:
            cell.spam_refusal()
        if provider.name in ("google", "apple") and c.name == "weekly-newsletter":
            for address in self._full_mailboxes(rng, provider, n_ip):
                cell.mailbox_full(address)
        if provider.name in FBL_PROVIDERS:
            spike = self.story.spike
            rate = (spike.quiet_rate if c.name == spike.campaign.name and provider.name not in spike.providers
                    else c.complaint_rate)
            if in_block:
                rate *= 2  # what got through was read by unhappy people
            for _ in range(_count(rng, n - blocked, rate)):
                cell.complaint()

    def _full_mailboxes(self, rng: random.Random, provider: Provider, n_ip: int) -> list[str]:
        """A few recipients whose mailbox stays full: each bounces on three sends, then is suppressed."""
        pool = [f"{FIRST[k]}.{LAST[-k - 1]}.full{n_ip}@{provider.domains[0]}" for k in range(4)]
        out = []
        for address in pool:
            if self.full_mailboxes.get(address, 0) < 3 and rng.random() < 0.8:
                self.full_mailboxes[address] = self.full_mailboxes.get(address, 0) + 1
                out.append(address)
        return out

    # ------------------------------------------------------------------ reports

    def _dmarc_reports(self, out: Day, rng: random.Random, day: date, now: datetime) -> None:
        begin = datetime.combine(day, time(), timezone.utc)
        by_reporter: dict[tuple[str, str], dict[str, int]] = {}
        for c, provider, _n_ip, ip, n, _at in self._cells(day, now):
            per_ip = by_reporter.setdefault((provider.name, c.domain), {})
            per_ip[ip] = per_ip.get(ip, 0) + n
        for (provider, domain), per_ip in sorted(by_reporter.items()):
            reporter = REPORTERS.get(provider)
            if reporter is None:  # Apple sends no aggregate reports
                continue
            rows = []
            for ip, n in sorted(per_ip.items()):
                unaligned = _count(rng, n, 0.004)  # a relay that rewrites the body
                rows.append(msg.DmarcRow(ip, n - unaligned, True, True, domain, domain, DKIM_SELECTOR, domain))
                if unaligned:
                    rows.append(msg.DmarcRow(ip, unaligned, False, True, domain, domain, DKIM_SELECTOR, domain))
            forwarded = _count(rng, sum(per_ip.values()), 0.003)
            if forwarded:
                rows.append(msg.DmarcRow(FORWARDER_IP, forwarded, False, False, domain, domain, DKIM_SELECTOR,
                                         "lists.university.example", override="forwarded"))
            spoof = self.story.spoof
            if self.timeline.index(day) in self.timeline.spoof and domain == spoof.domain:
                rows.append(msg.DmarcRow(spoof.ip, rng.randint(*spoof.messages), False, False, domain,
                                         "bulk-mailer.example", "default", "bulk-mailer.example"))
            report_id = _hex(f"{self.seed}:{provider}:{domain}:{day}", 20)
            arrival = begin + timedelta(days=1, hours=rng.randint(1, 8), minutes=rng.randint(0, 59))
            if arrival <= now:
                out.messages.append((arrival, msg.dmarc_aggregate(
                    reporter, domain=domain, policy="none", begin=begin, rows=rows, report_id=report_id,
                    sent_at=arrival)))

    def _tls_reports(self, out: Day, rng: random.Random, day: date, i: int, now: datetime) -> None:
        begin = datetime.combine(day, time(), timezone.utc)
        outage = self.story.tls_outage
        for provider, fewest, most in self.story.tls_sessions:
            reporter = TLS_REPORTERS[provider]
            for domain in DOMAINS:
                ok = rng.randint(fewest, most)
                failures = []
                if i in self.timeline.tls_outage and domain == outage.domain:
                    failures.append(msg.TlsFailure("certificate-expired", f"{outage.mx}.{domain}", outage.mx_ip,
                                                   reporter_ip(provider), rng.randint(*outage.failures)))
                elif rng.random() < 0.1:
                    failures.append(msg.TlsFailure("validation-failure", f"mx1.{domain}", "192.0.2.52",
                                                   reporter_ip(provider), rng.randint(1, 3)))
                arrival = begin + timedelta(days=1, hours=rng.randint(2, 9))
                if arrival <= now:
                    out.messages.append((arrival, msg.tls_report(
                        reporter, domain=domain, mx_patterns=[f"mx1.{domain}", f"mx2.{domain}"], begin=begin,
                        ok=ok, failures=failures,
                        report_id=f"{day.isoformat()}T00:00:00Z_{domain}_{_hex(provider + str(self.seed), 6)}",
                        sent_at=arrival)))


REPORTERS = {
    "google": msg.Reporter("google.com", "noreply-dmarc-support@google.com",
                           "https://support.google.com/a/answer/2466580", "google.com"),
    "microsoft": msg.Reporter("Enterprise Outlook", "dmarcreport@microsoft.com", "dmarcreport@microsoft.com",
                              "enterprise.protection.outlook.com"),
    "yahoo": msg.Reporter("Yahoo", "dmarchelp@yahooinc.com", "https://senders.yahooinc.com/dmarc",
                          "yahoo.com"),
}
TLS_REPORTERS = {
    "google": msg.Reporter("Google Inc.", "noreply-smtp-tls-reporting@google.com", "smtp-tls-reporting@google.com",
                           "google.com"),
    "microsoft": msg.Reporter("Microsoft Corporation", "tlsrpt-noreply@microsoft.com",
                              "tlsrpt-noreply@microsoft.com", "microsoft.com"),
}


def reporter_ip(provider: str) -> str:
    return {"google": "209.85.220.41", "microsoft": "40.92.0.5"}[provider]


class _Cell:
    """One campaign's mail to one provider from one IP on one day: the feedback it brings."""

    def __init__(self, scenario: Scenario, rng: random.Random, c: Campaign, provider: Provider, ip: str,
                 sent_at: datetime, from_address: str, from_name: str, now: datetime, out: Day) -> None:
        self.s, self.rng, self.c, self.p, self.ip = scenario, rng, c, provider, ip
        self.sent_at, self.from_address, self.from_name, self.now, self.out = sent_at, from_address, from_name, now, out

    def _sent(self, recipient: str | None = None) -> msg.Sent:
        recipient = recipient or self._someone()
        when = self.sent_at + timedelta(minutes=self.rng.randint(0, 50), seconds=self.rng.randint(0, 59))
        local = _hex(f"{self.s.seed}:{self.c.name}:{recipient}:{when.isoformat()}", 12)
        return msg.Sent(recipient, self.from_address, self.from_name, self.c.subject, self.c.name,
                        f"<{when:%Y%m%d%H%M%S}.{local}@{self.c.domain}>", self.ip, when, self.c.domain)

    def _someone(self) -> str:
        r = self.rng
        sep = r.choice((".", "_", ""))
        return f"{r.choice(FIRST)}{sep}{r.choice(LAST)}{r.randint(1, 9999)}@{r.choice(self.p.domains)}"

    def _add(self, when: datetime, raw: bytes) -> None:
        if when <= self.now:
            self.out.messages.append((when, raw))

    def _dsn(self, sent: msg.Sent, status: str, diagnostic: str, command: str = "RCPT TO") -> None:
        when = sent.sent_at + timedelta(seconds=self.rng.randint(2, 40))
        queue_id = _hex(sent.message_id, 12).upper()
        self._add(when, msg.postfix_dsn(sent, when=when, queue_id=queue_id, remote_mta=self.p.mx,
                                        remote_ip=self.p.mx_ip, status=status, diagnostic=diagnostic,
                                        command=command))

    def hygiene(self) -> None:
        sent = self._sent()
        rcpt = sent.recipient
        status, text = {
            "google": ("5.1.1", "550-5.1.1 The email account that you tried to reach does not exist. Please try "
                                "double-checking the recipient's email address for typos or unnecessary spaces. "
                                "For more information, go to https://support.google.com/mail/?p=NoSuchUser "
                                f"{_hex(rcpt, 10)}si.{self.rng.randint(100, 999)} - gsmtp"),
            "microsoft": ("5.5.0", "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). "
                                   f"[{_hex(rcpt, 8).upper()}.eurprd02.prod.outlook.com]"),
            "yahoo": ("5.0.0", f"554 delivery error: dd This user doesn't have a {domain_of(rcpt)} account "
                               f"({rcpt}) [0] - mta{self.rng.randint(1000, 9999)}.mail.bf1.yahoo.com"),
            "apple": ("5.1.1", f"550 5.1.1 <{rcpt}>: user does not exist"),
        }[self.p.name]
        self._dsn(sent, status, text)

    def block(self, refusals: tuple[Refusal, ...]) -> None:
        sent = self._sent()
        draw, share = self.rng.random(), 0.0
        for refusal in refusals:  # each refusal its weight's share of the draws; the last takes the rest
            share += refusal.weight
            if draw < share:
                break
        self._dsn(sent, refusal.status, refusal.text.format(ip=self.ip, domain=self.c.domain), refusal.command)

    def spam_refusal(self) -> None:
        self._dsn(self._sent(), "5.7.1", f"550-5.7.1 [{self.ip}] Gmail has detected that this message is likely "
                                         "unsolicited mail. To reduce the amount of spam sent to Gmail, this message "
                                         "has been blocked. For more information, go to "
                                         "https://support.google.com/mail/?p=UnsolicitedMessageError - gsmtp",
                  "DATA")

    def mailbox_full(self, address: str) -> None:
        text = ("552-5.2.2 The recipient's inbox is out of storage space. Please direct the recipient to "
                "https://support.google.com/mail/?p=OverQuotaPerm - gsmtp" if self.p.name == "google"
                else f"552 5.2.2 <{address}>: user is over quota")
        self._dsn(self._sent(address), "5.2.2", text)

    def complaint(self) -> None:
        sent = self._sent()
        when = sent.sent_at + timedelta(minutes=self.rng.randint(20, 600))
        report_id = _hex(f"arf:{sent.message_id}", 10)
        build = msg.yahoo_arf if self.p.name == "yahoo" else msg.microsoft_jmrp
        self._add(when, build(sent, when=when, report_id=report_id))


def _count(rng: random.Random, n: int, p: float) -> int:
    """A binomial draw, near enough: the expected count with its spread."""
    if n <= 0 or p <= 0:
        return 0
    mean = n * p
    if mean < 20:
        return sum(1 for _ in range(n) if rng.random() < p) if n < 400 else _poisson(rng, mean)
    return max(0, round(rng.gauss(mean, (mean * (1 - p)) ** 0.5)))


def _poisson(rng: random.Random, mean: float) -> int:
    import math

    limit, k, prod = math.exp(-mean), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


def _hex(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]
