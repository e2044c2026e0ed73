"""`postwatch suppression ...`, `postwatch forget` and `postwatch subject-access`: the
suppression list and an address's data, for people."""
from __future__ import annotations

import argparse
import json
import sys

from postwatch.commands_common import fail, open_store


def register(sub) -> None:
    p = sub.add_parser(
        "suppression", help="list, add, remove, export and import suppressed addresses",
        description="The suppression list: addresses postwatch's sender (and any sender reading the "
                    "feed) must not mail, in a scope — global, domain:<sending domain> or "
                    "campaign:<id> (and the preference centre's topic:<name> and frequency:<N>d, "
                    "and sunset). Every change is written to the change log that the feed serves.")
    ssub = p.add_subparsers(dest="suppression_command", metavar="COMMAND", required=True)

    ls = ssub.add_parser("list", help="print the suppressions in force",
                         description="Print the suppressions in force: address (or its hash once "
                                     "erased), scope, reason, source, created, expires.")
    ls.add_argument("--scope", metavar="S",
                    help="only this scope (global, domain:D, campaign:ID, topic:NAME, frequency:Nd, sunset)")
    ls.add_argument("--reason", metavar="R", help="only this reason (e.g. userunknown, abuse, manual)")
    ls.add_argument("--search", metavar="ADDRESS", help="only addresses containing this text")
    ls.add_argument("--json", action="store_true", help="one JSON object per suppression per line")
    ls.set_defaults(func=cmd_list)

    add = ssub.add_parser("add", help="suppress an address",
                          description="Suppress ADDRESS (normalised: lower-case, IDNA domain) in a scope. "
                                      "An address already suppressed as long or longer is left as it is.")
    add.add_argument("address", metavar="ADDRESS")
    add.add_argument("--reason", metavar="R", required=True, help="why, kept with it and shown in the feed")
    add.add_argument("--scope", metavar="S", default="global",
                     help="global (default), domain:<sending domain>, campaign:<id>, topic:<name>, "
                          "frequency:<N>d or sunset")
    add.add_argument("--expires", metavar="DAYS", type=_positive, help="lift it after DAYS days (default: never)")
    add.set_defaults(func=cmd_add)

    rm = ssub.add_parser("remove", help="lift the suppression of an address",
                         description="Lift the suppression of ADDRESS in a scope; the feed gets a "
                                     "`remove` change with the reason. Rules may suppress it again "
                                     "on new bounces or complaints.")
    rm.add_argument("address", metavar="ADDRESS", help="an address, or the hmac-sha256:... form of an erased one")
    rm.add_argument("--reason", metavar="R", required=True, help="why it is lifted")
    rm.add_argument("--scope", metavar="S", default="global", help="the scope to lift it in (default global)")
    rm.set_defaults(func=cmd_remove)

    ex = ssub.add_parser("export", help="write the suppressions in force as CSV or JSON",
                         description="Write the suppressions in force to FILE (or standard output): "
                                     "CSV with a header line address,scope,reason,source,created_at,"
                                     "expires_at — the shape `suppression import` reads — or JSON lines.")
    ex.add_argument("file", metavar="FILE", nargs="?", help="where to write (default: standard output)")
    ex.add_argument("--format", choices=("csv", "json"), default="csv", help="csv (default) or json")
    ex.set_defaults(func=cmd_export)

    im = ssub.add_parser("import", help="add suppressions from a CSV file",
                         description="Add the addresses of a CSV file with a header line: address "
                                     "(required), scope, reason, expires_at (ISO date or time; empty = "
                                     "never). Rows that cannot be read are reported with their line "
                                     "number and not added; the exit status is 1 when there were any.")
    im.add_argument("file", metavar="FILE.csv")
    im.set_defaults(func=cmd_import)

    ch = ssub.add_parser("changes", help="print the change log as the suppression feed serves it",
                         description="Print the changes after CURSOR as the JSON body of "
                                     "GET /api/v1/suppressions: {\"changes\": [...], \"next\": N}.")
    ch.add_argument("--since", metavar="CURSOR", type=_non_negative, default=0,
                    help="changes after this cursor (default 0: from the start)")
    ch.add_argument("--limit", metavar="N", type=_positive, default=1000, help="at most N changes (default 1000)")
    ch.set_defaults(func=cmd_changes)

    fg = sub.add_parser("forget", help="erase an address and keep it suppressed by a salted hash",
                        description="Erase ADDRESS: its bounce and complaint events, the raw bytes of "
                                    "the messages that named it, and its name in the suppression list "
                                    "and change log, which keep only its salted hash (privacy.salt) so "
                                    "it is never mailed again. Cannot be undone.")
    fg.add_argument("address", metavar="ADDRESS")
    fg.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    fg.set_defaults(func=cmd_forget)

    sa = sub.add_parser("subject-access", help="export as JSON everything stored about an address",
                        description="Write as JSON everything postwatch stores that names ADDRESS (GDPR "
                                    "article 15): its send-log rows, bounce and complaint events, "
                                    "engagement events (opens, clicks), DMARC failure reports naming it, "
                                    "its suppressions with their change log, and the inbound messages "
                                    "that name it (their metadata, never their bytes). With privacy.salt "
                                    "set, the rows kept only under its hash after `forget` are counted.")
    sa.add_argument("address", metavar="ADDRESS")
    sa.add_argument("--output", metavar="FILE", help="write the JSON to FILE (default: standard output)")
    sa.set_defaults(func=cmd_subject_access)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def cmd_list(args, config) -> int:
    from store.clock import utcnow
    from store.suppressions import ScopeError, active_suppressions
    from store.suppression_files import export_row

    try:
        with open_store(config)() as session:
            query = active_suppressions(session, utcnow(), scope=args.scope, reason=args.reason, search=args.search)
            n = 0
            for row in session.scalars(query.execution_options(yield_per=1000)):
                item = export_row(row)
                if args.json:
                    sys.stdout.write(json.dumps(item) + "\n")
                else:
                    sys.stdout.write(f"{item['address']}  {item['scope']}  {item['reason']} ({item['source']})  "
                                     f"since {item['created_at']}"
                                     + (f"  until {item['expires_at']}" if item["expires_at"] else "") + "\n")
                n += 1
    except ScopeError as exc:
        return fail(str(exc))
    if not args.json:
        print(f"{n} suppression(s)", file=sys.stderr)
    return 0


def cmd_add(args, config) -> int:
    from datetime import timedelta

    from store.addresses import AddressError
    from store.clock import utcnow
    from store.suppressions import add_suppression

    now = utcnow()
    expires = now + timedelta(days=args.expires) if args.expires else None
    try:
        with open_store(config).begin() as session:
            row, created = add_suppression(session, args.address, reason=args.reason, source="manual", now=now,
                                           scope=args.scope, expires_at=expires)
            shown, scope = row.shown_address, row.scope
    except (AddressError, ValueError) as exc:
        return fail(str(exc))
    print(f"{shown} suppressed in {scope}" if created else f"{shown} was already suppressed in {scope}")
    return 0


def cmd_remove(args, config) -> int:
    from store.addresses import AddressError
    from store.clock import utcnow
    from store.suppressions import remove_suppression

    try:
        with open_store(config).begin() as session:
            rows = remove_suppression(session, args.address, reason=args.reason, now=utcnow(), scope=args.scope)
    except (AddressError, ValueError) as exc:
        return fail(str(exc))
    if not rows:
        print(f"{args.address} is not suppressed in {args.scope}", file=sys.stderr)
        return 1
    print(f"{rows[0].shown_address} no longer suppressed in {rows[0].scope}")
    return 0


def cmd_export(args, config) -> int:
    from store.clock import utcnow
    from store.suppression_files import export

    out = open(args.file, "w", newline="", encoding="utf-8") if args.file else sys.stdout
    try:
        with open_store(config)() as session:
            n = export(session, out, args.format, utcnow())
    finally:
        if args.file:
            out.close()
    print(f"{n} suppression(s) exported" + (f" to {args.file}" if args.file else ""), file=sys.stderr)
    return 0


def cmd_import(args, config) -> int:
    from store.clock import utcnow
    from store.suppression_files import import_csv

    try:
        fh = open(args.file, newline="", encoding="utf-8-sig")
    except OSError as exc:
        return fail(f"cannot read {args.file}: {exc.strerror}")
    with fh, open_store(config).begin() as session:
        result = import_csv(session, fh, utcnow())
    for line, message in result.errors:
        print(f"{args.file}:{line}: {message}", file=sys.stderr)
    print(f"{result.added} added, {result.already} already suppressed, {len(result.errors)} row(s) with errors "
          "(not added)")
    return 1 if result.errors else 0


def cmd_changes(args, config) -> int:
    from store.suppressions import changes_since, feed_document

    with open_store(config)() as session:
        rows, next_cursor = changes_since(session, args.since, args.limit)
    sys.stdout.write(json.dumps(feed_document(rows, next_cursor)) + "\n")
    return 0


def cmd_forget(args, config) -> int:
    from analysis.privacy import PrivacyError, forget
    from store.addresses import AddressError, normalise
    from store.clock import utcnow

    try:
        address = normalise(args.address)
    except AddressError as exc:
        return fail(str(exc))
    if not config.privacy.salt:
        return fail("privacy.salt is not set: set it (POSTWATCH_PRIVACY__SALT) to a long random secret and "
                     "keep it; it keys the hash kept of erased addresses")
    if not args.yes:
        if not sys.stdin.isatty():
            return fail("forget cannot be undone: add --yes to confirm when not asked at a terminal")
        answer = input(f"Erase {address} (its events, raw messages naming it, its name in the suppression "
                       "list)? This cannot be undone. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing erased")
            return 1
    try:
        with open_store(config).begin() as session:
            result = forget(session, address, salt=config.privacy.salt, now=utcnow())
    except PrivacyError as exc:
        return fail(str(exc))
    counts = ", ".join(f"{n} {table}" for table, n in result.erased.items() if n)
    print(f"{address} erased ({counts or 'nothing stored about it'}); kept as {result.hash}"
          + (", now suppressed" if result.suppressed else ", still suppressed"))
    return 0


def cmd_subject_access(args, config) -> int:
    from analysis.privacy import subject_access
    from store.addresses import AddressError
    from store.clock import utcnow

    try:
        with open_store(config)() as session:
            found = subject_access(session, args.address, salt=config.privacy.salt, now=utcnow())
    except AddressError as exc:
        return fail(str(exc))
    text = json.dumps(found, ensure_ascii=False, indent=2) + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            return fail(f"cannot write {args.output}: {exc.strerror}")
    else:
        sys.stdout.write(text)
    rows = sum(len(v) for v in found["tables"].values())
    print(f"{found['address']}: {rows} row(s) stored in clear"
          + (f", written to {args.output}" if args.output else ""), file=sys.stderr)
    return 0
