"""`postwatch ingest-log`: its summary, and the sentences it stops with."""
from __future__ import annotations

from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "logs" / "postfix.log"


def test_the_summary_and_the_errors_a_user_can_meet(database, tmp_path, monkeypatch, capsys):
    from postwatch.cli import main

    monkeypatch.setenv("POSTWATCH_DATABASE__URL", database.url)
    monkeypatch.setenv("POSTWATCH_PROVIDERS__MX_LOOKUPS", "false")
    assert main(["ingest-log", str(EXAMPLE), "--format", "postfix", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "22 line(s): 2 sent, 2 bounced (" in out and "1 deferred" in out and "0 unreadable" in out
    assert main(["ingest-log", str(tmp_path / "missing.log"), "--format", "postfix"]) == 2
    assert "missing.log: not a readable file" in capsys.readouterr().err
    assert main(["ingest-log", str(EXAMPLE), "--format", "postfix", "--sending-ip", "mail"]) == 2
    assert "--sending-ip 'mail' is not an IP address" in capsys.readouterr().err
    assert main(["ingest-log", str(EXAMPLE), "--format", "postfix", "--timezone", "Mars/Olympus"]) == 2
    assert "unknown time zone 'Mars/Olympus'" in capsys.readouterr().err
    broken = tmp_path / "maillog"
    broken.write_text("Dec  6 10:00:01 mail postfix/smtp[1]: 0A1B2C3D4F: to=<b@gmail.com, status=sent\n")
    assert main(["ingest-log", str(broken), "--format", "postfix"]) == 0
    captured = capsys.readouterr()
    assert f"{broken}:1: a delivery result without to=<...> or status=..." in captured.err
    assert "1 unreadable" in captured.out
