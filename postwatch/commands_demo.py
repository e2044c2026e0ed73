"""`postwatch demo`: 90 days of a fictional sender's feedback, through the real pipeline."""
from __future__ import annotations

import secrets
import sys
from pathlib import Path

from postwatch.commands_common import arg_date, open_store
from postwatch.config import write_private

LOGIN_FILE = "var/demo-login"  # "NAME PASSWORD" of the demo's dashboard user (mode 0600)
DEMO_USER = "demo"


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="fill the store with 90 days of a fictional sender's history",
        description="Generate the feedback of a fictional sender (two sending domains, four IPs, four "
                    "mailbox providers, five campaigns) as raw messages — Postfix DSNs, Yahoo and Microsoft "
                    "ARF complaints, DMARC aggregate and TLS reports — and store them through the real "
                    "pipeline, day by day, with the daily send counts as a volume import and the analysis "
                    "jobs run for each day. The history holds a blocklist listing, a Microsoft block "
                    "episode, a complaint spike from one campaign, a spoofing source in the DMARC reports "
                    "and an expired MX certificate. Running it again with the same arguments adds nothing. "
                    "Writes postwatch.toml with a dashboard login when none exists.")
    p.add_argument("--days", type=int, default=90, help="length of the history in days (default 90)")
    p.add_argument("--seed", type=int, default=7, help="random seed: the same seed gives the same history")
    p.add_argument("--end", metavar="YYYY-MM-DD", type=arg_date, help="the history's last day (default: today)")
    p.add_argument("--if-empty", action="store_true",
                   help="do nothing when the store already holds messages (what `make run` uses)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args, config) -> int:
    from postwatch.demo.runner import run_demo, store_has_data

    if args.days < 2 or args.days > 3660:
        print("postwatch: --days must be between 2 and 3660", file=sys.stderr)
        return 2
    sessions = open_store(config)
    if args.if_empty and store_has_data(sessions):
        print(f"The store {config.database.url} already holds messages: the demo is not played again.")
        _print_login(config, args)
        return 0
    tty = sys.stderr.isatty()

    def on_day(day, new):
        if tty:
            print(f"\r  {day}: {new} message(s) stored", end="", file=sys.stderr, flush=True)

    print(f"Playing {args.days} days of Example Shop's feedback into {config.database.url} ...")
    result = run_demo(sessions, config, days=args.days, seed=args.seed, end=args.end, on_day=on_day)
    if tty:
        print(file=sys.stderr)
    kinds = ", ".join(f"{n} {kind}" for kind, n in result.kinds.most_common()) or "none"
    print(f"{result.start} to {result.end}: {result.messages} new message(s) stored ({kinds}); "
          f"{result.duplicates} stored before; {result.events} event(s) and report(s); "
          f"{result.sent:,} sends imported as volume")
    for name, (first, last) in result.episodes.items():
        print(f"  {EPISODES[name]}: {first} to {last}")
    for failure in result.failed_jobs:
        print(f"  job failed on {failure}", file=sys.stderr)
    _print_login(config, args)
    return 1 if result.failed_jobs else 0


EPISODES = {
    "listing": "192.0.2.11 listed on bl.spamcop.net",
    "block": "Microsoft blocks news.example.com (S3150, 5.7.515)",
    "spike": "complaint spike from the flash-sale campaign",
    "spoof": "spoofing source 203.0.113.66 in the DMARC reports",
    "tls_outage": "expired certificate on mx2.news.example.com (TLS reports)",
}


def _print_login(config, args) -> None:
    """Make sure there is a dashboard login, and say how to use it."""
    url = f"http://{config.web.listen}/"
    login = Path(LOGIN_FILE)
    if args.config is None and not Path("postwatch.toml").exists():
        password = secrets.token_urlsafe(9)
        Path("postwatch.toml").write_text(_toml(password), encoding="utf-8")
        write_private(login, f"{DEMO_USER} {password}\n")
        print(f"Wrote postwatch.toml with the dashboard user {DEMO_USER} (editor) and a new web.secret.")
    if login.is_file():
        name, _, password = login.read_text(encoding="utf-8").strip().partition(" ")
        print(f"Dashboard: {url}  (postwatch serve)  log in as {name} / {password}")
    elif getattr(config.web, "users", ()):
        print(f"Dashboard: {url}  (postwatch serve)  log in with one of the users in web.users")
    else:
        print(f"Dashboard: {url}  (postwatch serve)  no user can log in yet: add one with "
              f"`postwatch user add {DEMO_USER} --role editor`, and set web.secret")


def _toml(password: str) -> str:
    from dashboard.auth import hash_password

    entry = f"{DEMO_USER}:editor:{hash_password(password)}"
    return (
        "# Written by `postwatch demo`: the settings of the demo's first run. Edit freely.\n"
        "# The demo's password is in var/demo-login; change it with `postwatch user add demo --role editor`.\n"
        "\n"
        "[database]\n"
        'url = "sqlite:///var/postwatch.db"\n'
        "\n"
        "[web]\n"
        'listen = "127.0.0.1:8050"\n'
        f'secret = "{secrets.token_urlsafe(32)}"\n'
        f'users = ["{entry}"]\n'
        "\n"
        "[providers]\n"
        "# the demo's recipients are at the big providers' own domains: no MX look-ups needed\n"
        "mx_lookups = false\n")
