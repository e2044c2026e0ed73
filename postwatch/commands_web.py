"""`postwatch web`: the web server alone (the web role of `postwatch serve`)."""
from __future__ import annotations

import logging
import sys

log = logging.getLogger("postwatch.web")


def register(sub) -> None:
    p = sub.add_parser(
        "web", help="serve the dashboard, the suppression API and one-click unsubscribe over HTTP",
        description="The web role of `postwatch serve` alone: on web.listen with a production WSGI "
                    "server (waitress), the dashboard behind its login (web.users), the suppression "
                    "feed and look-ups (bearer tokens from web.read_tokens / web.write_tokens), the "
                    "unsubscribe links of the mail postwatch sends (signed with web.secret), /healthz "
                    "and /metrics. Logs every request; stops on Ctrl-C or SIGTERM after the requests "
                    "in progress.")
    p.add_argument("--listen", metavar="HOST:PORT", help="override web.listen")
    p.set_defaults(func=cmd_web)


def cmd_web(args, config) -> int:
    """The web role of `postwatch serve` alone."""
    from postwatch.serving import ServeError, serve

    if args.verbose == 0:  # the request log is the record of who read the feed and who unsubscribed
        for name in ("sender", "postwatch", "dashboard"):
            logging.getLogger(name).setLevel(logging.INFO)
    try:
        return serve(config, {"web"}, config_path=args.config, verbose=args.verbose, listen=args.listen)
    except ServeError as exc:
        print(f"postwatch: {exc}", file=sys.stderr)
        return 2
