"""`postwatch web`: the suppression feed and one-click unsubscribe over HTTP."""
from __future__ import annotations

import logging
import sys

log = logging.getLogger("postwatch.web")


def register(sub) -> None:
    p = sub.add_parser(
        "web", help="serve the suppression feed and one-click unsubscribe over HTTP",
        description="Serve the sender's HTTP API on web.listen with a production WSGI server "
                    "(waitress): the suppression feed and look-ups (bearer tokens from "
                    "web.read_tokens / web.write_tokens) and the unsubscribe links of the mail "
                    "postwatch sends (signed with web.secret). Logs every request; stops on "
                    "Ctrl-C or SIGTERM after the requests in progress.")
    p.add_argument("--listen", metavar="HOST:PORT", help="override web.listen")
    p.set_defaults(func=cmd_web)


def _split(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"the listen address {listen!r} is not HOST:PORT (web.listen, or --listen)")
    return host.strip("[]") or "0.0.0.0", int(port)


def cmd_web(args, config) -> int:
    import signal

    from waitress.server import create_server

    from sender.web import access_log, create_app
    from store.engine import upgrade

    if args.verbose == 0:  # the request log is the record of who read the feed and who unsubscribed
        for name in ("sender", "postwatch.web"):
            logging.getLogger(name).setLevel(logging.INFO)
    try:
        host, port = _split(args.listen or config.web.listen)
    except ValueError as exc:
        print(f"postwatch: {exc}", file=sys.stderr)
        return 2
    upgrade(config.database)
    app = create_app(config)
    try:
        server = create_server(access_log(app), host=host, port=port, threads=config.web.threads,
                               ident="postwatch", clear_untrusted_proxy_headers=True)
    except OSError as exc:
        print(f"postwatch: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 2

    def stop(signum, _frame) -> None:
        log.info("%s received: stopping after the requests in progress", signal.Signals(signum).name)
        raise SystemExit(0)  # waitress's loop ends on SystemExit and waits for its threads

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    log.info("serving on http://%s:%s (database %s)", host, getattr(server, "effective_port", port),
             config.database.url)
    server.run()
    log.info("stopped")
    return 0
