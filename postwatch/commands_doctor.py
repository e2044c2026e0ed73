"""`postwatch doctor`: what is configured, what postwatch generated, and what production lacks."""
from __future__ import annotations

import json
import sys

LABELS = {"blocking": "BLOCKING", "warning": "warning", "ok": "ok"}


def register(sub) -> None:
    p = sub.add_parser(
        "doctor", help="say what is configured, what was generated and what production still lacks",
        description="Check the configuration in effect and say what is configured, which secrets postwatch "
                    "generated (and where), and what production still lacks: SPF and DMARC of the sending "
                    "domains, the collector's TLS certificate and the web server's, the DKIM key published "
                    "in DNS, the MX of the report addresses. Each finding names the key or DNS record to set. "
                    "Changes nothing. Exit status 0 when nothing blocks production, 1 otherwise.")
    p.add_argument("--json", action="store_true", help="print the findings as one JSON object")
    p.add_argument("--offline", action="store_true", help="skip every DNS look-up and network check")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args, config) -> int:
    from postwatch.doctor import BLOCKING, configured, run_checks, secret_states

    findings = run_checks(config, offline=args.offline)
    ready = not any(f.severity == BLOCKING for f in findings)
    if args.json:
        print(json.dumps({"ready": ready, "source": config.source, "configured": configured(config),
                          "secrets_file": config.secrets_file, "secrets": secret_states(config),
                          "findings": [f.as_dict() for f in findings]}, default=str))
        return 0 if ready else 1
    out = sys.stdout
    out.write(f"Configuration read from: {config.source}\n\nConfigured (keys that differ from the defaults)\n")
    sections = configured(config)
    for section, values in sections.items():
        out.write(f"  [{section}] " + ", ".join(f"{k} = {v!r}" for k, v in values.items()) + "\n")
    if not sections:
        out.write("  nothing: the embedded defaults run\n")
    out.write("\nSecrets\n")
    for row in secret_states(config):
        state = {"generated": f"generated, kept in {row['file']}", "set": "set in the configuration",
                 "missing": "not set yet"}[row["state"]]
        out.write(f"  {row['key']:<20} {state}\n")
    out.write("\nChecks\n")
    order = {"blocking": 0, "warning": 1, "ok": 2}
    for f in sorted(findings, key=lambda f: order[f.severity]):
        out.write(f"  {LABELS[f.severity]:<9} {f.check:<8} {f.subject}: {f.message}\n")
        if f.fix:
            out.write(f"  {'':<9} {'':<8} set: {f.fix}\n")
    blocking = sum(f.severity == BLOCKING for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    out.write(f"\n{blocking} blocking, {warnings} warning(s): "
              + ("nothing blocks production.\n" if ready else "not ready for production.\n"))
    return 0 if ready else 1
