"""`postwatch send` and `postwatch dkim keygen`: postwatch's own sender for people."""
from __future__ import annotations

import argparse
import json
import sys

from postwatch.commands_common import fail, open_store
from store.addresses import domain_of


def register(sub) -> None:
    p = sub.add_parser(
        "send", help="send a campaign: a template folder to a recipient list",
        description="Send a campaign: render the template folder (subject.txt, body.txt, body.html; Jinja2) "
                    "for every row of the recipient CSV (column email, the others are template fields), "
                    "skip suppressed recipients, and hand the rest to the smarthost or the MX with the "
                    "signed return path, Feedback-ID, List-Unsubscribe and DKIM. Every attempt goes to the "
                    "send log. Rows that cannot be used are listed with their line; when the template fails "
                    "for any row nothing is sent. A re-run never mails a recipient of the campaign twice.")
    p.add_argument("--template", metavar="DIR", required=True, help="the template folder")
    p.add_argument("--recipients", metavar="FILE.csv", required=True, help="CSV with a header line and column email")
    p.add_argument("--campaign", metavar="NAME", required=True,
                   help="the campaign's name: in Feedback-ID, the send log and the campaign:NAME scope")
    p.add_argument("--from", dest="from_address", metavar="ADDRESS",
                   help="the From address (default: sender.from_address)")
    p.add_argument("--topic", metavar="NAME", action="append", default=[],
                   help="what the campaign is about, one of preferences.topics (repeatable): recipients who "
                        "left a topic on the preference page are skipped")
    p.add_argument("--utm", metavar="KEY=VALUE", action="append", default=[],
                   help="add utm_KEY=VALUE to every link (repeatable; utm_campaign defaults to the campaign)")
    p.add_argument("--track", action=argparse.BooleanOptionalAction, default=None,
                   help="track opens and clicks of this campaign (a pixel and /t/c/ links in the HTML part); "
                        "default: whether tracking.campaigns lists it")
    p.add_argument("--dry-run", action="store_true",
                   help="check everything and say what would happen; send and write nothing")
    p.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    p.add_argument("--json", action="store_true", help="print the final table as JSON")
    p.set_defaults(func=cmd_send)

    d = sub.add_parser("dkim", help="DKIM keys for the sender", description="DKIM keys for postwatch's sender.")
    dsub = d.add_subparsers(dest="dkim_command", metavar="COMMAND", required=True)
    k = dsub.add_parser("keygen", help="make a DKIM key pair and print its DNS record",
                        description="Write a new RSA private key (mode 0600; an existing file is never "
                                    "replaced) and print the TXT record to publish at "
                                    "SELECTOR._domainkey.DOMAIN. Point sender.dkim_key_file at the key.")
    k.add_argument("--selector", metavar="S", help="the selector (default: sender.dkim_selector)")
    k.add_argument("--domain", metavar="D",
                   help="the signing domain (default: sender.dkim_domain, else the domain of sender.from_address)")
    k.add_argument("--out", metavar="KEY", help="where to write the private key (default: var/dkim/SELECTOR.pem)")
    k.add_argument("--bits", type=int, default=2048, choices=(1024, 2048, 3072, 4096),
                   help="RSA key size (default 2048)")
    k.set_defaults(func=cmd_dkim_keygen)


def cmd_send(args, config) -> int:
    from analysis.dns import make_resolver
    from analysis.providers import ProviderResolver
    from ingest.pipeline import Pipeline
    from sender.campaign import Settings, parse_utm, send_campaign
    from sender.dkim import DkimError, Signer
    from sender.transport import Transport

    try:
        settings = Settings.from_config(config, args.campaign, from_address=args.from_address,
                                        utm=parse_utm(args.utm), dry_run=args.dry_run, topics=args.topic,
                                        track=args.track)
        settings.check()
        signer = None
        if config.sender.dkim_key_file:
            signer = Signer.from_file(config.sender.dkim_key_file, config.sender.dkim_selector,
                                      config.sender.dkim_domain or settings.from_domain)
    except (ValueError, DkimError) as exc:
        return fail(str(exc))
    sessions = open_store(config)
    resolver = make_resolver(config.dns) if config.sender.smarthost == "mx" else None
    providers_resolver = ProviderResolver(config.providers, config.dns)

    def providers(domains):
        with sessions.begin() as session:
            return providers_resolver.resolve_many(session, domains)

    bar = None
    if not args.no_progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit="rcpt", desc=f"send {args.campaign}", file=sys.stderr)
    try:
        report = send_campaign(sessions, args.template, args.recipients, settings,
                               transport=Transport(config.sender, resolver=resolver),
                               pipeline=Pipeline(sessions, config.ingest, domains=config.domains),
                               signer=signer, providers=providers,
                               progress=bar.update if bar is not None else None)
    except ValueError as exc:
        return fail(str(exc))
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(table(report))
    if report.aborted:
        return 1
    return 1 if report.errors else 0


def table(report) -> str:
    """The final table: one line per result, then the rows that need a look."""
    title = f"campaign {report.campaign}" + (" (dry run: nothing sent, nothing written)" if report.dry_run else "")
    labels = {"sent": "would send" if report.dry_run else "sent", "suppressed": "suppressed",
              "deferred": "deferred", "bounced": "bounced", "failed": "failed",
              "already_sent": "already sent before"}
    lines = [title, ""]
    for key, label in labels.items():
        lines.append(f"  {label:<22}{report.counts[key]:>8}")
    lines.append(f"  {'row errors':<22}{len([e for e in report.errors if not e.message.startswith(('deferred:', 'failed:'))]):>8}")
    lines.append(f"  {'rows in the file':<22}{report.total:>8}")
    if report.aborted:
        lines += ["", f"NOTHING SENT: {report.aborted}"]
    if report.errors:
        lines += ["", "  line  address                         problem"]
        for e in report.errors:
            lines.append(f"  {e.line:>4}  {(e.email or '-')[:30]:<30}  {e.message}")
    return "\n".join(lines)


def cmd_dkim_keygen(args, config) -> int:
    from pathlib import Path

    from sender.dkim import keygen, record_name, txt_record, write_key, zone_text

    selector = args.selector or config.sender.dkim_selector
    domain = (args.domain or config.sender.dkim_domain or domain_of(config.sender.from_address)).lower()
    out = Path(args.out or f"var/dkim/{selector}.pem")
    if out.exists():
        return fail(f"{out} already exists: choose another --out (a key in use is never replaced)")
    pem, public = keygen(args.bits)
    try:
        write_key(out, pem)
    except OSError as exc:
        return fail(f"cannot write {out}: {exc.strerror}")
    print(f"; private key written to {out} — set sender.dkim_key_file = \"{out}\", "
          f"sender.dkim_selector = \"{selector}\", sender.dkim_domain = \"{domain}\"", file=sys.stderr)
    print(f"{record_name(selector, domain)}. IN TXT {zone_text(txt_record(public))}")
    return 0
