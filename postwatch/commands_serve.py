"""`postwatch serve`: the collectors, the scheduler and the web server from one command;
`postwatch user add|hash`: entries for the dashboard's logins."""
from __future__ import annotations

import sys

from postwatch.serving import ROLES  # light at import (no Flask, no SQLAlchemy): the command line stays quick


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="run the collectors, the scheduler and the web server (dashboard, API, unsubscribe)",
        description="Run postwatch: the SMTP collector and the IMAP collectors (child processes), the "
                    "analysis scheduler (a thread) and the web server on web.listen — the dashboard behind "
                    "its login, the suppression API, the unsubscribe links, /healthz and /metrics. A "
                    "collector or the scheduler that stops is started again. Ctrl-C or SIGTERM stops the web "
                    "server after the requests in progress, then the collectors and the running job. "
                    "--role runs only some of them, to split the work across machines.")
    p.add_argument("--role", action="append", choices=ROLES, metavar="ROLE",
                   help="collector, scheduler or web (repeatable); default: all three")
    p.set_defaults(func=cmd_serve)

    u = sub.add_parser("user", help="make entries for the dashboard's logins (web.users)",
                       description="Make the NAME:ROLE:HASH[:TOTP_SECRET] entries of web.users. The "
                                   "password is asked for (or read from standard input with "
                                   "--password-stdin); nothing is written: paste the entry into "
                                   "postwatch.toml or POSTWATCH_WEB__USERS.")
    usub = u.add_subparsers(dest="user_command", metavar="COMMAND", required=True)
    add = usub.add_parser("add", help="print a web.users entry for a new user",
                          description="Print the web.users entry for user NAME with the role given "
                                      "(viewer: reads every page; editor: may also remove suppressions). "
                                      "--totp adds a second factor and prints the otpauth:// URI to load "
                                      "into an authenticator app.")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", choices=("viewer", "editor"), default="viewer", help="default: viewer")
    add.add_argument("--totp", action="store_true", help="add a TOTP second factor")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(func=cmd_user_add)
    hsh = usub.add_parser("hash", help="print the hash of a password",
                          description="Print the salted scrypt hash of a password, the HASH part of a "
                                      "web.users entry.")
    hsh.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    hsh.set_defaults(func=cmd_user_hash)


def cmd_serve(args, config) -> int:
    import logging

    from postwatch.serving import ServeError, serve

    if args.verbose == 0:  # a server's log is the record of what it did
        for name in ("postwatch", "sender", "dashboard", "analysis", "ingest.collectors"):
            logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)  # run_job says it better
    try:
        return serve(config, set(args.role or ROLES), config_path=args.config, verbose=args.verbose)
    except ServeError as exc:
        print(f"postwatch: {exc}", file=sys.stderr)
        return 2


def _password(args) -> str | None:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass

        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("postwatch: the two passwords differ; nothing made", file=sys.stderr)
            return None
    if len(password) < 8:
        print("postwatch: a password needs at least 8 characters", file=sys.stderr)
        return None
    return password


def cmd_user_hash(args, config) -> int:
    from dashboard.auth import hash_password

    password = _password(args)
    if password is None:
        return 2
    print(hash_password(password))
    return 0


def cmd_user_add(args, config) -> int:
    from dashboard.auth import hash_password, new_totp_secret, totp_uri
    from dashboard.config import User, parse_user

    try:
        parse_user(f"{args.name}:{args.role}:x$y$z")
    except ValueError as exc:
        print(f"postwatch: {exc}", file=sys.stderr)
        return 2
    if args.name in config.web.accounts():
        print(f"postwatch: note: {args.name} is already in web.users; replace that entry with this one",
              file=sys.stderr)
    password = _password(args)
    if password is None:
        return 2
    user = User(args.name, args.role, hash_password(password), new_totp_secret() if args.totp else "")
    print(user.entry)
    print(f"# add it to web.users in postwatch.toml: users = [..., \"{user.entry}\"]", file=sys.stderr)
    if user.totp_secret:
        print(f"# load this into an authenticator app: {totp_uri(user.name, user.totp_secret)}", file=sys.stderr)
    return 0
