"""`postwatch parse` over many inputs: worker processes, the parent's share, one CPU."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from ingest.parse import parse_bytes
from ingest.parsers import reports
from ingest.parsers.reports import ReportsElsewhere, reports_elsewhere
from postwatch import cli
from tests.conftest import ROOT

SAMPLES = ROOT / "sample_reports"


def many_inputs(folder, copies=30):
    """Every sample report (reports that need parsedmarc among them), `copies` times: more
    inputs than one job, so the workers run."""
    files = sorted(p for p in SAMPLES.rglob("*") if p.is_file() and p.suffix != ".md" and p.name != "expected.json")
    for i in range(copies):
        for src in files:
            shutil.copyfile(src, folder / f"{i:03d}-{src.parent.name}-{src.name}")
    return sorted(folder.iterdir())


def parse(args, cwd, one_cpu=False):
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}

    def pin():
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    proc = subprocess.run([sys.executable, "-m", "postwatch.cli", "parse", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=pin if one_cpu else None)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def few_reports(folder):
    """Many bounces and a few reports among them: the reports are left to the parent."""
    bounces = sorted((SAMPLES / "bounces").glob("*.eml"))
    reports = [SAMPLES / "dmarc" / "dmarc-failure-report.eml", SAMPLES / "dmarc" / "google-aggregate-mail.eml",
               SAMPLES / "tls" / "google-tls-report-mail.eml"]
    for i in range(200):
        src = reports[i // 70] if i % 70 == 35 else bounces[i % len(bounces)]
        shutil.copyfile(src, folder / f"{i:03d}-{src.name}")
    return sorted(folder.iterdir())


@pytest.mark.parametrize("inputs", [many_inputs, few_reports])
def test_workers_answer_every_input_in_order_as_one_process_would(tmp_path, inputs):
    files = inputs(tmp_path)
    assert len(files) > cli.PARSE_CHUNK
    lines = parse(["--json", str(tmp_path)], tmp_path).splitlines()
    assert [json.loads(line)["file"] for line in lines] == [str(p) for p in files]
    for path, line in zip(files, lines):
        assert line == json.dumps(parse_bytes(path.read_bytes()).as_json(str(path)), default=str)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity")
def test_one_cpu_parses_every_input(tmp_path):
    files = many_inputs(tmp_path, copies=3)
    assert len(files) > cli.PARSE_CHUNK
    one = parse(["--json", str(tmp_path)], tmp_path, one_cpu=True)
    assert one == parse(["--json", str(tmp_path)], tmp_path)


def test_a_worker_leaves_report_inputs_to_another_process(monkeypatch):
    raw = (SAMPLES / "dmarc" / "dmarc-failure-report.eml").read_bytes()
    monkeypatch.setattr(reports._Parsedmarc, "module", None)
    monkeypatch.setattr(reports._Parsedmarc, "elsewhere", False)
    reports_elsewhere(True)
    with pytest.raises(ReportsElsewhere):
        parse_bytes(raw)
    assert parse_bytes((SAMPLES / "bounces" / "postfix-user-unknown.eml").read_bytes()).kind == "bounce"
    reports_elsewhere(False)
    assert parse_bytes(raw).kind == "dmarc_failure"


@pytest.mark.parametrize("argv", [
    ["parse", "x"], ["parse", "--json", "a", "b"], ["-v", "parse", "x"], ["-vv", "--config", "c.toml", "parse", "x"],
    ["--config=c.toml", "parse", "--json", "x"], ["--conf", "parse", "parse", "x"], ["--verb", "parse", "x"],
    ["parse"], ["parse", "--bogus", "x"], ["parse", "-v", "x"], ["parse", "--help"], ["-v", "parse", "--config", "c"],
])
def test_the_parse_command_alone_reads_its_arguments_as_the_whole_command_line(argv, capsys):
    assert cli._parse_command(argv)

    def outcome(parser):
        try:
            return vars(parser.parse_args(argv)), None
        except SystemExit as exc:
            return capsys.readouterr(), exc.code

    assert outcome(cli.build_parser(only_parse=True)) == outcome(cli.build_parser())


@pytest.mark.parametrize("argv", [["--help", "parse"], ["-h"], ["--version", "parse"], ["ingest", "parse"],
                                  ["--ver", "parse"], ["explain", "x"], []])
def test_any_other_command_line_gets_the_whole_parser(argv):
    assert not cli._parse_command(argv)
