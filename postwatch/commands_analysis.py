"""Commands of the analysis: volume import, scores, A/B comparison, DMARC sources, rollups."""
from __future__ import annotations

import json
import sys
from datetime import timedelta

from postwatch.commands_common import arg_date, open_store


def register(sub) -> None:
    _add_volume(sub)
    _add_scores(sub)
    _add_compare(sub)
    _add_dmarc(sub)
    _add_rollups(sub)


def _add_volume(sub) -> None:
    p = sub.add_parser("volume", help="send volume of external senders (the denominators)",
                       description="Manage the daily send counts of senders other than postwatch's own.")
    vsub = p.add_subparsers(dest="volume_command", metavar="COMMAND", required=True)
    imp = vsub.add_parser("import", help="import daily send counts from a CSV file",
                          description="Import daily send counts: a CSV file with the header "
                                      "day,sending_domain,sending_ip,provider,campaign,sent (provider may be "
                                      "a provider name or a recipient domain; empty fields mean 'not given'). "
                                      "Importing a day and key again replaces the earlier count. A file with "
                                      "any bad row imports nothing; every error is printed with its line number.")
    imp.add_argument("file", metavar="FILE.csv", help="the CSV file ('-' reads standard input)")
    imp.add_argument("--json", action="store_true", help="print the summary as JSON")
    imp.set_defaults(func=cmd_volume_import)
    src = vsub.add_parser("sources", help="the sends of each day by where they were counted from",
                          description="Print the sends of each day by where they were counted from: send_log "
                                      "(postwatch's own sender), csv (volume import), log:postfix, log:powermta, "
                                      "log:kumomta (ingest-log), webhook:PROVIDER (ESP webhooks).")
    src.add_argument("--since", metavar="YYYY-MM-DD", type=arg_date, help="first day (default: 30 days ago)")
    src.add_argument("--until", metavar="YYYY-MM-DD", type=arg_date, help="last day (default: today)")
    src.add_argument("--json", action="store_true", help="one JSON object per day and source")
    src.set_defaults(func=cmd_volume_sources)


def _add_scores(sub) -> None:
    p = sub.add_parser("scores", help="print the reputation scores of one day",
                       description="Print the reputation score (0-100) and grade of each entity on one day, "
                                   "with the components that lost points. Run `postwatch analyze` (or the "
                                   "scheduler) first so rollups and scores are up to date.")
    p.add_argument("--dimension", choices=("all", "sending_domain", "sending_ip", "provider", "campaign"),
                   help="only this kind of entity (default: every kind)")
    p.add_argument("--day", metavar="YYYY-MM-DD", type=arg_date,
                   help="the day (default: the latest day with scores)")
    p.add_argument("--json", action="store_true", help="one JSON object per score, with its components")
    p.set_defaults(func=cmd_scores)


# The send-log fields a comparison may group by (analysis.compare.FIELDS; kept here as a
# literal so that building the command line imports no database code).
COMPARE_FIELDS = ("sending_ip", "pool", "dkim_selector", "campaign", "tag", "sending_domain")


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="compare two groups of sends (A/B) on evidence",
                       description="Compare two groups of sends from the send log on delivery, bounce, block "
                                   "and complaint rates, each with its Wilson 95% interval, and a two-proportion "
                                   "z-test (p < 0.05 = a real difference). A group is one value or several "
                                   "separated by commas (e.g. two IPs of a pool).")
    p.add_argument("--by", required=True, choices=COMPARE_FIELDS, help="the send-log field that defines the groups")
    p.add_argument("a", metavar="A", help="value(s) of group A, comma-separated")
    p.add_argument("b", metavar="B", help="value(s) of group B, comma-separated")
    p.add_argument("--since", metavar="DAYS", type=int, default=7, help="sends of the last DAYS days (default 7)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=cmd_compare)


def _add_dmarc(sub) -> None:
    p = sub.add_parser("dmarc", help="DMARC intelligence: who sends as your domains",
                       description="What the DMARC aggregate reports say about your domains.")
    dsub = p.add_subparsers(dest="dmarc_command", metavar="COMMAND", required=True)
    src = dsub.add_parser("sources", help="the sources sending as DOMAIN, classified, and the impact of p=reject",
                          description="List the sources (IPs) sending as DOMAIN in a window of days, with "
                                      "their messages and DMARC pass rate in that window, their class "
                                      "(authorised, forwarder, unknown) and the rule that decided it, mark the "
                                      "new ones, and show how much legitimate mail a p=quarantine or p=reject "
                                      "policy would lose on the window's latest day with reports.")
    src.add_argument("domain", metavar="DOMAIN", help="the From domain")
    src.add_argument("--days", type=_days, default=30,
                     help="the window: the last DAYS days up to --end, both included (default 30)")
    src.add_argument("--end", metavar="YYYY-MM-DD", type=arg_date, help="the window's last day (default: today, UTC)")
    src.add_argument("--json", action="store_true", help="print sources and impact as JSON")
    src.set_defaults(func=cmd_dmarc_sources)


def _days(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days (1 or more)")
    return value


def _add_rollups(sub) -> None:
    p = sub.add_parser("rollups", help="the daily rollups behind scores, alerts and the dashboard",
                       description="Maintain the daily rollups.")
    rsub = p.add_subparsers(dest="rollups_command", metavar="COMMAND", required=True)
    up = rsub.add_parser("update", help="count new events into the rollups and rescore (what the jobs do)",
                         description="Count the events stored since the last update into the rollups, "
                                     "then recompute the scores that changed.")
    up.set_defaults(func=cmd_rollups_update)
    rb = rsub.add_parser("rebuild", help="recount every event from scratch and rescore",
                         description="Forget the rollups and count every stored event again (after changing "
                                     "[providers] or [dmarc], or to check the incremental counts), then "
                                     "recompute the scores.")
    rb.set_defaults(func=cmd_rollups_rebuild)


def cmd_volume_import(args, config) -> int:
    from analysis.rollups import resolver_from
    from analysis.volume import VolumeError, import_csv
    from store.clock import utcnow

    try:
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8-sig").read()
    except OSError as exc:
        print(f"postwatch: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    sessions = open_store(config)
    try:
        with sessions() as session, session.begin():
            result = import_csv(session, text, providers=resolver_from(config), now=utcnow(), source=args.file)
    except VolumeError as exc:
        print(f"postwatch: {args.file}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"file": args.file, "rows": result.rows, "keys": result.keys, "added": result.added,
                          "replaced": result.replaced, "sent": result.total_sent, "errors": result.errors}))
    elif result.errors:
        for error in result.errors:
            print(f"{args.file}: {error}", file=sys.stderr)
        print(f"{args.file}: {len(result.errors)} error(s) in {result.rows} row(s); nothing imported",
              file=sys.stderr)
    else:
        print(f"{args.file}: {result.rows} row(s) -> {result.keys} day/key count(s): {result.added} new, "
              f"{result.replaced} replaced; {result.total_sent} sends. The next rollup update counts them.")
    return 1 if result.errors else 0


def cmd_volume_sources(args, config) -> int:
    from analysis.volume import by_origin
    from store.clock import utcnow

    until = args.until or utcnow().date()
    since = args.since or until - timedelta(days=30)
    sessions = open_store(config)
    with sessions() as session:
        rows = by_origin(session, since, until)
    if args.json:
        for day, origin, sent in rows:
            print(json.dumps({"day": day.isoformat(), "source": origin, "sent": sent}))
        return 0
    if not rows:
        print(f"no sends counted from {since} to {until}")
    for day, origin, sent in rows:
        print(f"{day}  {origin:<20} {sent:>12,}")
    return 0


def cmd_scores(args, config) -> int:
    from sqlalchemy import func, select

    from analysis.scores import scores_for
    from store.rollups import Score

    sessions = open_store(config)
    with sessions() as session:
        day = args.day or session.scalar(select(func.max(Score.day)))
        if day is None:
            print("no scores yet (run: postwatch analyze, or postwatch rollups update)", file=sys.stderr)
            return 1
        rows = scores_for(session, day, args.dimension)
    if args.json:
        for s in rows:
            print(json.dumps({"day": s.day.isoformat(), "dimension": s.dimension, "key": s.key, "score": s.score,
                              "grade": s.grade, "components": s.components}))
        return 0
    if not rows:
        print(f"no scores on {day}" + (f" for {args.dimension}" if args.dimension else ""))
        return 0
    print(f"scores on {day}")
    print(f"{'dimension':<15} {'key':<32} {'score':>6}  {'grade':<8} lost points")
    for s in rows:
        key = s.key or ("-" if s.dimension == "all" else "(unknown)")
        print(f"{s.dimension:<15} {key[:32]:<32} {s.score:>6.1f}  {s.grade:<8} {_explain(s.components)}")
    return 0


CAP_TEXT = {"at_or_above_bad": "at or above its bad line", "past_good": "past its good line"}


def _explain(components: dict) -> str:
    parts = []
    for name in ("complaints", "hard_bounces", "blocks", "dmarc_unaligned", "tls_failures"):
        c = components.get(name) or {}
        if c.get("lost"):
            parts.append(f"{name} {c['rate'] * 100:.2f}% -{c['lost']:.1f}")
        elif c.get("note") == "too few to say":
            parts.append(f"{name} {c['rate'] * 100:.2f}% ({c['count']} of {c['total']}: too few to say)")
    bl = components.get("blocklists") or {}
    if bl.get("lost"):
        parts.append(f"blocklists {','.join(bl['zones'])} -{bl['lost']:.0f}")
    caps = components.get("caps") or ()
    for cap in caps[:1]:  # the lowest cap decides; the rest are in --json
        if cap["rule"] == "complaint_recovery":
            parts.append(f"capped at {cap['cap']:g}: recovering, {cap['clean_days']}/{cap['needed']} clean days")
        elif cap["rule"] == "blocklist_listing":
            parts.append(f"capped at {cap['cap']:g}: listed on a blocklist")
        else:
            what = next((t for suffix, t in CAP_TEXT.items() if cap["rule"].endswith(suffix)), cap["rule"])
            name = cap.get("component") or "complaints"
            parts.append(f"capped at {cap['cap']:g}: {name.replace('_', ' ')} {what}")
    return "; ".join(parts) or "-"


def cmd_compare(args, config) -> int:
    from analysis.compare import compare
    from store.clock import utcnow

    a = tuple(v.strip() for v in args.a.split(",") if v.strip())
    b = tuple(v.strip() for v in args.b.split(",") if v.strip())
    since = utcnow() - timedelta(days=args.since)
    sessions = open_store(config)
    with sessions() as session:
        result = compare(session, args.by, a, b, since)
    ga, gb = result["a"], result["b"]
    if args.json:
        print(json.dumps({"by": args.by, "since": result["since"],
                          "groups": {g.label: {"values": list(g.values), "sends": g.sends, "delivered": g.delivered,
                                               "bounced": g.bounced, "blocked": g.blocked,
                                               "complaints": g.complaints} for g in (ga, gb)},
                          "rates": [r.as_dict() for r in result["rates"]]}))
        return 0
    print(f"{args.by}: A = {', '.join(a)} ({ga.sends} sends)  vs  B = {', '.join(b)} ({gb.sends} sends), "
          f"last {args.since} days")
    if not ga.sends or not gb.sends:
        print("one group has no sends in the send log for this period: nothing to compare")
        return 1
    print(f"{'rate':<10} {'A':>8} {'A 95% CI':>18} {'B':>8} {'B 95% CI':>18} {'p-value':>9}  verdict")
    for r in result["rates"]:
        verdict = ("A higher" if r.a[2] > r.b[2] else "B higher") if r.significant() else "no evidence of a difference"
        print(f"{r.metric:<10} {r.a[2] * 100:>7.3f}% {_ci(r.a):>18} {r.b[2] * 100:>7.3f}% {_ci(r.b):>18} "
              f"{r.p_value:>9.4f}  {verdict}")
    return 0


def _ci(side) -> str:
    return f"[{side[3] * 100:.3f}, {side[4] * 100:.3f}]%"


def cmd_dmarc_sources(args, config) -> int:
    from analysis.dmarc_intel import classifier_from, impact, update_sources, window_sources
    from analysis.source_info import source_info
    from store.clock import utcnow

    now = utcnow()
    end = args.end or now.date()
    start = end - timedelta(days=args.days - 1)
    window = f"{start} to {end}, {args.days} day{'s' if args.days != 1 else ''}"
    sessions = open_store(config)
    with sessions() as session, session.begin():
        update_sources(session, now=now, classifier=classifier_from(config))
    with sessions() as session:
        rows = window_sources(session, start, end, args.domain)
        effect = impact(session, args.domain, until=end)
    new_after = end - timedelta(days=config.dmarc.new_source_days)
    info = {s.source_ip: source_info(s.source_ip, s.reverse_dns) for s in rows}
    if args.json:
        print(json.dumps({"domain": args.domain.lower(), "start": start.isoformat(), "end": end.isoformat(),
                          "sources": [
            {"source_ip": s.source_ip, "reverse_dns": s.reverse_dns,
             "base_domain": s.base_domain or info[s.source_ip].base_domain,
             "country": s.country or info[s.source_ip].country, "asn": info[s.source_ip].asn,
             "as_name": info[s.source_ip].as_name, "service": info[s.source_ip].service,
             "class": s.source_class, "classified_by": s.classified_by, "messages": s.messages,
             "dmarc_pass": s.passed, "dkim_aligned": s.aligned, "spf_aligned": s.spf_aligned,
             "first_seen": s.first_seen.isoformat(), "last_seen": s.last_seen.isoformat(),
             "new": s.first_seen > new_after} for s in rows], "impact": effect.as_dict()}))
        return 0
    if not rows:
        print(f"no DMARC reports name {args.domain} from {window}")
        return 0
    print(f"sources sending as {args.domain.lower()} ({window})")
    print(f"{'source':<40} {'country':<7} {'AS / service':<28} {'class':<11} {'by':<16} {'messages':>9} "
          f"{'pass':>7}  first seen")
    for s in rows:
        about = info[s.source_ip]
        name = s.reverse_dns or s.base_domain or about.base_domain
        label = s.source_ip + (f" ({name})" if name else "")
        where = about.service or about.as_text
        share = s.passed / s.messages * 100 if s.messages else 0
        new = "  NEW" if s.first_seen > new_after else ""
        print(f"{label[:40]:<40} {s.country or about.country or '-':<7} {where[:28] or '-':<28} "
              f"{s.source_class or '-':<11} {s.classified_by or '-':<16} {s.messages:>9} {share:>6.1f}%  "
              f"{s.first_seen}{new}")
    if effect.day is None:
        print("impact of p=quarantine/reject: no rollups yet (run: postwatch rollups update)")
    else:
        print(f"impact of p=quarantine/reject on {effect.day} (policy now: p={effect.current_policy or '?'}): "
              f"{effect.would_fail} of {effect.legitimate} legitimate messages fail DMARC "
              f"({effect.share_lost * 100:.2f}% would go to spam / be refused)")
    return 0


def cmd_rollups_update(args, config) -> int:
    return _rollups(config, rebuild=False)


def cmd_rollups_rebuild(args, config) -> int:
    return _rollups(config, rebuild=True)


def _rollups(config, rebuild: bool) -> int:
    from analysis import rollups
    from analysis.dmarc_intel import classifier_from
    from analysis.scores import config_from, score_pending
    from store.clock import utcnow

    now = utcnow()
    sessions = open_store(config)
    run = rollups.rebuild if rebuild else rollups.update
    with sessions() as session, session.begin():
        changed = run(session, now=now, providers=rollups.resolver_from(config), classifier=classifier_from(config))
    with sessions() as session, session.begin():
        scored = score_pending(session, now=now, config=config_from(config))
    print(f"{changed} rollup row(s) changed, {scored} score(s) recomputed")
    return 0
