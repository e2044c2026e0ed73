"""`postwatch send` and `postwatch dkim keygen` as a person runs them, against a real sink."""
import json
import os
import stat
from email import message_from_bytes
from email.policy import default

from tests.conftest import ROOT
from tests.postwatch.test_cli import run
from tests.sender.helpers import sink  # noqa: F401

EXAMPLE = ROOT / "examples" / "campaign"


def _env(sink, tmp_path):
    return {"POSTWATCH_SENDER__SMARTHOST": sink.address, "POSTWATCH_SENDER__FROM_ADDRESS": "news@send.example.com",
            "POSTWATCH_SENDER__RETRY_BACKOFF": "0", "POSTWATCH_INGEST__VERP_SECRET": "v" * 32,
            "POSTWATCH_WEB__SECRET": "w" * 32, "POSTWATCH_PROVIDERS__MX_LOOKUPS": "false"}


def test_the_example_campaign_sends_then_a_rerun_sends_nothing(tmp_path, sink):
    env = _env(sink, tmp_path)
    args = ["send", "--template", str(EXAMPLE / "template"), "--recipients", str(EXAMPLE / "recipients.csv"),
            "--campaign", "spring"]
    dry = run(args + ["--dry-run"], cwd=tmp_path, env=env, check=False)
    assert "dry run" in dry.stdout and sink.received == []
    first = run(args + ["--utm", "source=newsletter"], cwd=tmp_path, env=env, check=False)
    assert first.returncode == 1, first.stderr  # the example has bad rows on purpose
    lines = first.stdout.splitlines()
    assert any(line.split() == ["sent", "4"] for line in lines)
    assert any(line.split() == ["row", "errors", "3"] for line in lines)
    assert "duplicate of line 2" in first.stdout and "the row has 3 fields, the header 4" in first.stdout
    assert len(sink.received) == 4 and all(m.tls for m in sink.received)
    body = message_from_bytes(sink.received[0].data, policy=default).get_body(("plain",)).get_content()
    assert "https://shop.example.com/spring?utm_source=newsletter&utm_campaign=spring" in body
    again = json.loads(run(args + ["--json"], cwd=tmp_path, env=env, check=False).stdout)
    assert (again["sent"], again["already_sent"]) == (0, 4)
    assert len(sink.received) == 4


def test_send_refuses_to_start_when_its_generated_secrets_cannot_be_read(tmp_path):
    # with no secret configured, send generates them into var/secrets.toml (tests/postwatch/test_first_run.py)
    (tmp_path / "r.csv").write_text("email\na@example.org\n")
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secrets.toml").write_text("[ingest\n")
    out = run(["send", "--template", str(EXAMPLE / "template"), "--recipients", "r.csv", "--campaign", "x"],
              cwd=tmp_path, check=False)
    assert out.returncode == 2 and "var/secrets.toml is not valid TOML" in out.stderr
    assert (tmp_path / "var" / "secrets.toml").read_text() == "[ingest\n"


def test_dkim_keygen_writes_a_private_key_and_prints_the_record(tmp_path):
    out = run(["dkim", "keygen", "--selector", "s2026", "--domain", "send.example.com", "--out", "k/s.pem",
               "--bits", "1024"], cwd=tmp_path)
    assert out.stdout.startswith('s2026._domainkey.send.example.com. IN TXT "v=DKIM1; k=rsa; p=')
    key = tmp_path / "k" / "s.pem"
    assert b"PRIVATE KEY" in key.read_bytes() and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    again = run(["dkim", "keygen", "--out", "k/s.pem"], cwd=tmp_path, check=False)
    assert again.returncode == 2 and "already exists" in again.stderr
