"""The `postwatch` command as a user runs it: a subprocess in a fresh working directory."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from postwatch.cli import build_parser, iter_commands
from tests.ingest.messages import dmarc_xml, postfix_dsn, vacation_reply

EXE = [sys.executable, "-m", "postwatch.cli"]


def run(args, cwd, env=None, check=True):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    full_env.update(env or {})
    proc = subprocess.run(EXE + args, cwd=cwd, capture_output=True, text=True, env=full_env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def inbox(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "bounce.eml").write_bytes(postfix_dsn())
    (d / "ooo.eml").write_bytes(vacation_reply())
    (d / "agg.xml").write_bytes(dmarc_xml())
    (d / "junk.eml").write_bytes(b"Subject: hi\n\nnothing to see\n")
    return d


def test_parse_json_speaks_the_contract_and_writes_nothing(tmp_path, inbox):
    proc = run(["parse", "--json", str(inbox)], cwd=tmp_path)
    rows = {Path(r["file"]).name: r for r in map(json.loads, proc.stdout.splitlines())}
    assert set(rows) == {"bounce.eml", "ooo.eml", "agg.xml", "junk.eml"}
    for r in rows.values():
        assert set(r) >= {"file", "kind", "events", "report", "error"}
    assert rows["ooo.eml"]["kind"] == "auto_reply"
    assert rows["junk.eml"]["kind"] == "unknown" and rows["junk.eml"]["error"]
    agg = rows["agg.xml"]["report"]
    assert rows["agg.xml"]["kind"] == "dmarc_aggregate"
    assert {k: agg[k] for k in ("report_id", "org_name", "domain", "records", "messages")} == {
        "report_id": "rpt-1", "org_name": "google.com", "domain": "send.example.com", "records": 1,
        "messages": 12}
    ev = rows["bounce.eml"]["events"][0]
    assert set(ev) >= {"recipient", "action", "status", "reply_code", "diagnostic", "remote_mta", "reason",
                       "hard_bounce", "category"}
    assert (ev["recipient"], ev["status"], ev["reply_code"]) == ("gone@example.net", "5.1.1", "550")
    assert not (tmp_path / "var").exists()


def test_ingest_twice_stores_once_and_prints_a_summary(tmp_path, inbox):
    first = run(["ingest", "--no-progress", "--json", str(inbox)], cwd=tmp_path)
    summary = json.loads(first.stdout)
    assert summary["kinds"]["bounce"]["parsed"] == 1
    assert summary["kinds"]["auto_reply"]["ignored"] == 1
    assert summary["kinds"]["unknown"]["quarantined"] == 1
    reasons = summary["quarantine_reasons"]
    assert len(reasons) == 1 and reasons[0]["example"].endswith("junk.eml")
    assert (tmp_path / "var" / "postwatch.db").is_file()
    second = json.loads(run(["ingest", "--no-progress", "--json", str(inbox)], cwd=tmp_path).stdout)
    assert all(v == {"messages": 1, "duplicate": 1} for v in second["kinds"].values())
    human = run(["ingest", "--no-progress", str(inbox)], cwd=tmp_path).stdout
    assert "quarantined, by reason" not in human  # nothing new this time
    assert "bounce" in human and "4 messages" in human


def test_environment_names_the_database(tmp_path, inbox):
    url = f"sqlite:///{tmp_path}/elsewhere.db"
    run(["ingest", "--no-progress", str(inbox)], cwd=tmp_path, env={"POSTWATCH_DATABASE__URL": url})
    assert (tmp_path / "elsewhere.db").is_file() and not (tmp_path / "var").exists()
    current = run(["db", "current"], cwd=tmp_path, env={"POSTWATCH_DATABASE__URL": url}).stdout
    assert current.strip() and "empty" not in current


def test_a_bad_configuration_is_a_sentence_and_exit_2(tmp_path):
    (tmp_path / "postwatch.toml").write_text("[database]\nuri = 1\n")
    proc = run(["db", "upgrade"], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "unknown key database.uri" in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_path_is_reported(tmp_path):
    proc = run(["ingest", "--no-progress", str(tmp_path / "absent")], cwd=tmp_path, check=False)
    assert proc.returncode == 1 and f"postwatch: {tmp_path / 'absent'}: no such file or folder" in proc.stderr


def test_every_command_has_help():
    for path, sub in iter_commands(build_parser()):
        assert sub.description, f"postwatch {' '.join(path)} has no description"
        text = sub.format_help()
        assert "usage: postwatch" in text


def test_a_broken_rules_file_stops_the_command_with_its_reason(tmp_path, inbox):
    (tmp_path / "rules.toml").write_text("[[rule]]\nreason = 'nosuchreason'\nmatch = ['x']\n")
    env = {"POSTWATCH_INGEST__RULES_FILE": str(tmp_path / "rules.toml")}
    for command in (["parse", "--json", str(inbox)], ["ingest", "--no-progress", str(inbox)]):
        proc = run(command, cwd=tmp_path, env=env, check=False)
        assert proc.returncode == 2, command
        assert "rules.toml" in proc.stderr and "Traceback" not in proc.stderr


def test_the_operators_rules_file_decides_first_in_parse(tmp_path, inbox):
    (tmp_path / "ours.toml").write_text(
        "[[rule]]\nname = 'our-filter'\nreason = 'filtered'\nmatch = ['recipient address rejected']\n")
    env = {"POSTWATCH_INGEST__RULES_FILE": str(tmp_path / "ours.toml")}
    plain = json.loads(run(["parse", "--json", str(inbox / "bounce.eml")], cwd=tmp_path).stdout)
    ours = json.loads(run(["parse", "--json", str(inbox / "bounce.eml")], cwd=tmp_path, env=env).stdout)
    assert plain["events"][0]["reason"] == "userunknown"
    assert ours["events"][0]["reason"] == "filtered" and "our-filter" in ours["events"][0]["rule"]


def test_the_command_line_loads_no_database_code():
    """`postwatch parse` is timed whole-process: building the CLI must stay light."""
    code = ("import sys; from postwatch.cli import build_parser; build_parser(); "
            "from postwatch.commands_analysis import COMPARE_FIELDS; from analysis.compare import FIELDS; "
            "assert COMPARE_FIELDS == FIELDS; "
            "print(sorted(m for m in ('sqlalchemy', 'pandas', 'dns.resolver', 'parsedmarc') if m in sys.modules))")
    heavy_before = subprocess.run([sys.executable, "-c", code.replace(
        "from postwatch.commands_analysis import COMPARE_FIELDS; from analysis.compare import FIELDS; "
        "assert COMPARE_FIELDS == FIELDS; ", "")], capture_output=True, text=True, check=True).stdout
    assert heavy_before.strip() == "[]"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
