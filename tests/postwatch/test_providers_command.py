"""`postwatch providers` as a user runs it: a subprocess on a real store."""
from __future__ import annotations

import json
from pathlib import Path

from tests.postwatch.test_cli import run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "providers"


def test_import_twice_stores_once_and_show_puts_both_sides_together(tmp_path, database):
    env = {"POSTWATCH_DATABASE__URL": database.url}
    files = [str(EXAMPLES / "domain-stats.json"), str(EXAMPLES / "compliance-status.json")]
    for _ in range(2):
        out = run(["providers", "import", "postmaster", *files, "--day", "2026-12-02", "--json"], tmp_path, env)
        summary = json.loads(out.stdout)
        assert (summary["stats"], summary["compliance"], summary["errors"]) == (9, 11, [])
    run(["providers", "import", "snds", str(EXAMPLES / "snds-data.csv")], tmp_path, env)
    out = run(["providers", "import", "snds", str(EXAMPLES / "snds-ipstatus.csv"), "--day", "2026-12-02"], tmp_path, env)
    assert "2 IP status range(s) stored for 2026-12-02" in out.stdout
    shown = json.loads(run(["providers", "show", "--since", "2026-12-01", "--until", "2026-12-02", "--json"],
                           tmp_path, env).stdout)
    assert [(r["day"], r["gmail_spam_rate"]) for r in shown["spam_rates"]] == [("2026-12-01", 0.0008),
                                                                             ("2026-12-02", 0.0034)]
    assert {"gmail_spam_rate", "our_complaint_rate", "snds_colour", "our_block_rate"} <= set(shown["sources"])
    assert [(r["ip"], r["snds_colour"], r["snds_blocked"]) for r in shown["snds"]][-1] == ("192.0.2.11", "RED", True)
    text = run(["providers", "show", "--since", "2026-12-01", "--until", "2026-12-02"], tmp_path, env).stdout
    assert "gmail   0.34%" in text and "BLOCKED" in text and "one_click_unsubscribe    google needs_work" in text


def test_unreadable_records_are_reported_and_exit_1(tmp_path, database):
    env = {"POSTWATCH_DATABASE__URL": database.url}
    bad = tmp_path / "data.csv"
    bad.write_text("192.0.2.10,12/1/2026 12:00 AM,12/1/2026 11:59 PM,10,10,10,GREEN,< 0.1%,,,0,h,m,\n"
                   "192.0.2.10,12/2/2026 12:00 AM,12/2/2026 11:59 PM,10,10,10,ORANGE,< 0.1%,,,0,h,m,\n")
    out = run(["providers", "import", "snds", str(bad)], tmp_path, env, check=False)
    assert out.returncode == 1
    assert f"postwatch: {bad} line 2: filter result 'ORANGE' is not GREEN, YELLOW or RED" in out.stderr
    assert "1 IP-day(s) of activity" in out.stdout and "1 unreadable record(s)" in out.stdout
    missing = run(["providers", "import", "postmaster", str(tmp_path / "nope.json")], tmp_path, env, check=False)
    assert missing.returncode == 2 and "not a file" in missing.stderr


def test_fetch_without_its_key_says_what_to_set(tmp_path, database):
    env = {"POSTWATCH_DATABASE__URL": database.url}
    out = run(["providers", "fetch", "snds"], tmp_path, env, check=False)
    assert out.returncode == 2 and "snds.key is not set" in out.stderr
    out = run(["providers", "fetch", "postmaster"], tmp_path, env, check=False)
    assert out.returncode == 2 and "postmaster.domains is empty" in out.stderr
    shown = run(["config", "show"], tmp_path, {**env, "POSTWATCH_SNDS__KEY": "secret-key-value"}).stdout
    assert "snds.key = '(set)'" in shown and "secret-key-value" not in shown
