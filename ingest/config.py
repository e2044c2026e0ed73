"""The configuration sections ingest reads. `postwatch/config.py` builds them; nothing here
reads the environment or a file."""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_ACCEPT = ("bounces+*@*", "bounces@*", "fbl@*", "abuse-reports@*", "dmarc@*",
                  "dmarc-reports@*", "tls-reports@*")


@dataclass(frozen=True)
class DomainsConfig:
    """[domains]: what we send as — checked against blocklists and for authentication posture,
    and the IPs a bounce or complaint is attributed to."""

    sending_domains: tuple[str, ...] = ()  # the From domains we send for
    sending_ips: tuple[str, ...] = ()  # the IPs our mail leaves from (IPv4 or IPv6, or CIDR ranges)
    dkim_selectors: tuple[str, ...] = ()  # selectors we sign with (more are found in DMARC reports)
    mta_ips: tuple[str, ...] = ()  # "HOST=IP": our MTAs that send from one IP, named by a bounce's Reporting-MTA

    def __post_init__(self) -> None:
        for entry in self.mta_ips:
            host, sep, ip = entry.partition("=")
            if not sep or not host.strip() or not ip.strip():
                raise ValueError(f"mta_ips: {entry!r} is not HOST=IP (e.g. smtp-out.example.com=192.0.2.10)")


@dataclass(frozen=True)
class IngestConfig:
    """[ingest]: how raw messages are read and judged."""

    max_message_bytes: int = 25 * 1024 * 1024  # larger messages are stored and quarantined
    max_decompressed_bytes: int = 64 * 1024 * 1024  # a report attachment may expand to this
    offline: bool = True  # no DNS or geolocation look-ups while parsing
    rules_file: str = ""  # an operator's bounce rules (TOML), read before the shipped ones
    verp_secret: str = ""  # key of the signed return path bounces+t-TOKEN@
    batch_size: int = 500  # messages per transaction in `postwatch ingest`
    workers: int = 0  # parsing processes for `postwatch ingest`; 0 = one per core, 1 = no extra process
    # CPU seconds one message may take to parse; past them it is quarantined ("parse took
    # longer than N s"). The largest report allowed (64 MB of XML) parses in ~8 s. 0 = no limit.
    parse_timeout: float = 10.0


@dataclass(frozen=True)
class SMTPConfig:
    """[smtp]: the inbound SMTP collector."""

    listen: str = "127.0.0.1:2525"
    accept: tuple[str, ...] = field(default=DEFAULT_ACCEPT)
    hostname: str = ""  # the name in the greeting; empty = this machine's name
    processes: int = 0  # acceptor processes sharing the port; 0 = one per core
    max_message_bytes: int = 25 * 1024 * 1024  # SIZE; larger messages get 552
    max_recipients: int = 50  # per message; more get 452
    max_sessions: int = 1000  # open sessions from all clients together; more get 421
    sessions_per_ip: int = 50  # open sessions from one client address; more get 421
    messages_per_minute: int = 3000  # accepted messages per client address per minute; 0 = no limit
    command_timeout: float = 300.0  # seconds to wait for the next command
    data_timeout: float = 600.0  # seconds a client may take to send one message (DATA to the final dot)
    starttls: bool = True  # offer STARTTLS
    require_tls: bool = False  # refuse mail until the client has issued STARTTLS
    tls_cert: str = ""  # PEM certificate chain; empty = a self-signed one made in the spool folder
    tls_key: str = ""  # PEM private key of tls_cert


@dataclass(frozen=True)
class SpoolConfig:
    """[spool]: where collectors keep raw messages until the pipeline has stored them."""

    dir: str = "var/spool"  # relative to the working directory
    batch_size: int = 200  # spooled messages per database transaction


@dataclass(frozen=True)
class IMAPConfig:
    """[imap]: the IMAP collector."""

    mailboxes: tuple[str, ...] = ()  # imaps://USER[:PASSWORD]@HOST[:PORT]/FOLDER, one per mailbox
    password: str = ""  # for the mailboxes whose address carries none
    processed_folder: str = "Processed"  # where a message goes once stored
    quarantine_folder: str = "Quarantine"  # where a message goes when postwatch could not read it
    batch_size: int = 100  # messages fetched per round trip
    poll_seconds: float = 60.0  # between checks when the server has no IDLE
    idle_seconds: float = 1500.0  # longest IDLE before it is renewed (servers drop it at 30 min)
    timeout_seconds: float = 60.0  # network timeout of one IMAP command
    backoff_max_seconds: float = 300.0  # longest wait between reconnection attempts
    tls_verify: bool = True  # check the server's certificate and name
    ca_file: str = ""  # extra CA certificates (PEM) to trust, e.g. a private CA
