"""`postwatch providers`: Google Postmaster Tools' and Microsoft SNDS's figures, imported,
fetched, and shown beside postwatch's own."""
from __future__ import annotations

import json
import sys
from datetime import timedelta

from postwatch.commands_common import arg_date, fail, open_store

FEEDS = ("postmaster", "snds")


def register(sub) -> None:
    p = sub.add_parser("providers", help="Gmail Postmaster Tools and Microsoft SNDS beside postwatch's figures",
                       description="The mailbox providers' own figures about your mail: Google Postmaster "
                                   "Tools (user-reported spam rate, authentication and TLS rates, delivery "
                                   "errors, compliance with the bulk-sender requirements) and Microsoft SNDS "
                                   "(each IP's filter colour, complaint rate, trap hits, blocks). See "
                                   "docs/providers.md.")
    psub = p.add_subparsers(dest="providers_command", metavar="COMMAND", required=True)
    imp = psub.add_parser("import", help="store a file of Postmaster Tools responses or an SNDS export",
                          description="Store the figures of files: `postmaster` reads JSON responses of "
                                      "domains.domainStats.query and domains.getComplianceStatus; `snds` reads "
                                      "the SNDS data export or IP status list (CSV). Importing a day again "
                                      "replaces its figures. Records that cannot be read are reported, one line "
                                      "each, and the exit status is 1; the others are stored.")
    isub = imp.add_subparsers(dest="feed", metavar="FEED", required=True)
    pm = isub.add_parser("postmaster", help="JSON responses of the Postmaster Tools API v2",
                         description="Store JSON responses of the Postmaster Tools API v2 (one response, "
                                     "a list of them, or a batchQuery response).")
    pm.add_argument("files", nargs="+", metavar="FILE", help="JSON files")
    pm.add_argument("--day", type=arg_date, metavar="YYYY-MM-DD",
                    help="the day a compliance status was read (default: today)")
    pm.add_argument("--json", action="store_true", help="print the summary as JSON")
    pm.set_defaults(func=cmd_providers_import)
    sn = isub.add_parser("snds", help="the SNDS data export or IP status list (CSV)",
                         description="Store SNDS CSV files: the data export (14 columns) or the IP status "
                                     "list (4 columns), told apart by their columns.")
    sn.add_argument("files", nargs="+", metavar="FILE", help="CSV files")
    sn.add_argument("--kind", choices=("data", "ipstatus"), help="what the files are (default: by their columns)")
    sn.add_argument("--day", type=arg_date, metavar="YYYY-MM-DD",
                    help="the day an IP status list was read (default: today)")
    sn.add_argument("--json", action="store_true", help="print the summary as JSON")
    sn.set_defaults(func=cmd_providers_import)
    fetch = psub.add_parser("fetch", help="ask Postmaster Tools or SNDS now and store the answers",
                            description="Fetch now what the daily provider_feeds job fetches: Postmaster "
                                        "Tools for postmaster.domains with postmaster.service_account_file, "
                                        "or SNDS with snds.key.")
    fetch.add_argument("feed", choices=FEEDS, help="postmaster or snds")
    fetch.add_argument("--json", action="store_true", help="print the summary as JSON")
    fetch.set_defaults(func=cmd_providers_fetch)
    show = psub.add_parser("show", help="the providers' figures next to postwatch's own, per day",
                           description="Per day: Gmail's user-reported spam rate next to postwatch's complaint "
                                       "rate; each IP's SNDS colour next to postwatch's block rate; Google's "
                                       "compliance status next to postwatch's authentication checks. Each "
                                       "column says where it comes from.")
    show.add_argument("--since", type=arg_date, metavar="YYYY-MM-DD", help="first day (default: 14 days ago)")
    show.add_argument("--until", type=arg_date, metavar="YYYY-MM-DD", help="last day (default: today)")
    show.add_argument("--json", action="store_true", help="print the three tables as JSON")
    show.set_defaults(func=cmd_providers_show)


def _summary(stored, as_json: bool, what: str) -> int:
    if as_json:
        print(json.dumps(stored.as_dict()))
    else:
        for line in stored.errors[:50]:
            print(f"postwatch: {line}", file=sys.stderr)
        if len(stored.errors) > 50:
            print(f"postwatch: ... and {len(stored.errors) - 50} more", file=sys.stderr)
        days = sorted(stored.days)
        span = f" for {days[0]}" + (f" to {days[-1]}" if days[-1] != days[0] else "") if days else ""
        parts = ([f"{stored.stats} figure(s)", f"{stored.compliance} compliance state(s)"] if stored.feed == "postmaster"
                 else [f"{stored.activity} IP-day(s) of activity", f"{stored.status} IP status range(s)"])
        print(f"{what}: {', '.join(parts)} stored{span}, {len(stored.errors)} unreadable record(s)")
    return 1 if stored.errors else 0


def cmd_providers_import(args, config) -> int:
    import os

    from analysis.provider_feeds import Stored, import_postmaster, import_snds
    from store.clock import utcnow

    for path in args.files:
        if not os.path.isfile(path):
            return fail(f"cannot read {path}: not a file")
    sessions = open_store(config)
    now = utcnow()
    total = Stored(args.feed)
    for path in args.files:
        with sessions.begin() as session:
            if args.feed == "postmaster":
                stored = import_postmaster(session, path, now=now, day=args.day)
            else:
                stored = import_snds(session, path, now=now, day=args.day, kind=args.kind)
        total.add(stored)
    return _summary(total, args.json, f"{len(args.files)} file(s)")


def cmd_providers_fetch(args, config) -> int:
    from analysis.provider_feeds import FeedError, fetch_postmaster, fetch_snds, store_fetched
    from store.clock import utcnow

    now = utcnow()
    try:
        if args.feed == "postmaster":
            if not config.postmaster.domains:
                return fail("postmaster.domains is empty: name the domains verified in Postmaster Tools")
            reads = [fetch_postmaster(config.postmaster, now.date())]
        else:
            reads = fetch_snds(config.snds)
    except FeedError as exc:
        return fail(str(exc))
    total = store_fetched(open_store(config), args.feed, reads, now=now)
    return _summary(total, args.json, f"fetched from {args.feed}")


def _pct(x) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def cmd_providers_show(args, config) -> int:
    from analysis.provider_view import SOURCES, compliance_rows, snds_rows, spam_rates
    from store.clock import utcnow

    until = args.until or utcnow().date()
    since = args.since or until - timedelta(days=13)
    if since > until:
        return fail("--since is after --until")
    sessions = open_store(config)
    with sessions() as session:
        spam = spam_rates(session, since, until)
        ips = snds_rows(session, since, until)
        compliance = compliance_rows(session, until)
    if args.json:
        print(json.dumps({"since": since.isoformat(), "until": until.isoformat(), "sources": SOURCES,
                          "spam_rates": spam, "snds": ips, "compliance": compliance}, default=str))
        return 0
    print(f"Gmail's user-reported spam rate (Postmaster Tools) and postwatch's complaint rates, {since} to {until}")
    print("  our rate: complaint reports / sends to providers that send them, of the domain (rollups);"
          " at google: of all mail to Gmail")
    if not spam:
        print("  (no Postmaster Tools figures in these days)")
    for r in spam:
        print(f"  {r['day']}  {r['domain']:<28} gmail {_pct(r['gmail_spam_rate']):>7}   ours {_pct(r['our_complaint_rate']):>7}"
              f" ({r['our_complaints']} of {r['our_base']} {r['our_basis']})   at google {_pct(r['our_google_complaint_rate']):>7}")
    print(f"\nMicrosoft SNDS colour per IP and postwatch's block rate of that IP, {since} to {until}")
    print("  block rate: refusals of the sender (reputation and policy bounces) / sent (rollups)")
    if not ips:
        print("  (no SNDS data in these days)")
    for r in ips:
        blocked = "  BLOCKED: " + (r["snds_block_details"] or "") if r["snds_blocked"] else ""
        print(f"  {r['day']}  {r['ip']:<16} {r['snds_colour']:<6} complaints {r['snds_complaint_rate_text'] or '-':<7}"
              f" traps {r['snds_trap_hits']:<4} ours {_pct(r['our_block_rate']):>7} ({r['our_blocks']} of "
              f"{r['our_sent']} sent){blocked}")
    print(f"\nGoogle's compliance status (Postmaster Tools) and postwatch's own checks (posture), as of {until}")
    if not compliance:
        print("  (no compliance status read yet)")
    for r in compliance:
        ours = (", ".join(f"{c['check']} {c['status']}" for c in r["our_checks"]) if r["our_checks"]
                else (r["note"] or "no result of postwatch's checks yet"))
        was = f" (was {r['previous_state']})" if r["previous_state"] else ""
        print(f"  {r['domain']:<28} {r['requirement']:<24} google {r['google_state']}{was}   ours: {ours}")
    return 0
