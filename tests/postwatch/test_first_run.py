"""The first run: postwatch's own secrets, when the operator set none, are made once into
var/secrets.toml (mode 0600) and read back on every later run."""
import os
import re
import stat
import tomllib

import pytest

from postwatch.config import CREATE, GENERATED_SECRETS, READ, TEMPORARY, load, secrets_mode_for
from tests.conftest import query
from tests.ingest.messages import postfix_dsn
from tests.postwatch.test_cli import run
from tests.sender.helpers import make_template, sink  # noqa: F401


def _env(sink):
    return {"POSTWATCH_SENDER__SMARTHOST": sink.address, "POSTWATCH_SENDER__FROM_ADDRESS": "news@send.example.com",
            "POSTWATCH_SENDER__RETRY_BACKOFF": "0", "POSTWATCH_PROVIDERS__MX_LOOKUPS": "false"}


def _send(tmp_path, env, campaign, recipients):
    (tmp_path / f"{campaign}.csv").write_text("email,name\n" + "".join(f"{r},R\n" for r in recipients))
    return run(["send", "--template", str(make_template(tmp_path / "template")), "--recipients",
                f"{campaign}.csv", "--campaign", campaign, "--no-progress"], cwd=tmp_path, env=env, check=False)


def _stored(tmp_path) -> dict:
    with open(tmp_path / "var" / "secrets.toml", "rb") as fh:
        return tomllib.load(fh)


def test_send_works_on_the_first_run_and_the_second_run_keeps_the_secrets(tmp_path, sink):
    env = _env(sink)
    first = _send(tmp_path, env, "spring", ["a@example.org"])
    assert first.returncode == 0, first.stderr
    assert len(sink.received) == 1
    path = tmp_path / "var" / "secrets.toml"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    stored = _stored(tmp_path)
    assert set(stored) == {"ingest", "web", "privacy"}
    values = {"ingest.verp_secret": stored["ingest"]["verp_secret"], "web.secret": stored["web"]["secret"],
              "privacy.salt": stored["privacy"]["salt"]}
    assert all(len(v) >= 40 for v in values.values()) and len(set(values.values())) == 3
    for key in GENERATED_SECRETS:  # one line per key: the key, the file, and what several machines must do
        line = next(line for line in first.stderr.splitlines() if line.split(": ", 1)[-1].startswith(key + " "))
        assert "var/secrets.toml" in line and "share one store must each set" in line
    assert not any(v in first.stderr + first.stdout for v in values.values())

    # The second run makes nothing new, and a bounce to the first run's return path is tied to its send.
    return_path = sink.received[0].mail_from
    assert re.fullmatch(r"bounces\+t-[a-z2-7]+@send\.example\.com", return_path)
    second = _send(tmp_path, env, "summer", ["b@example.org"])
    assert second.returncode == 0, second.stderr
    assert "generated" not in second.stderr and _stored(tmp_path) == stored
    dsn = postfix_dsn((("a@example.org", "5.1.1", "550 5.1.1 <a@example.org>: User unknown"),))
    (tmp_path / "dsn.eml").write_bytes(dsn.replace(b"To: bounces@example.com", f"To: {return_path}".encode()))
    run(["ingest", "--no-progress", "dsn.eml"], cwd=tmp_path, env=env)
    url = f"sqlite:///{tmp_path}/var/postwatch.db"
    [(send_id,)] = query(url, "SELECT id FROM send_log WHERE recipient = 'a@example.org'")
    assert query(url, "SELECT recipient, send_id FROM bounce_events") == [("a@example.org", send_id)]
    # the one-click link of the first run is accepted by the web server's key of a later run
    from email import message_from_bytes
    from email.policy import default

    from sender.unsubscribe import resolve
    from store.config import DatabaseConfig
    from store.engine import session_factory

    header = message_from_bytes(sink.received[0].data, policy=default)["List-Unsubscribe"]
    token = re.search(r"/unsubscribe/([a-z2-7]+)>", header)
    assert token, header
    config = _in(tmp_path, lambda: load(environ={}))
    assert config.web.secret == values["web.secret"] and config.generated == GENERATED_SECRETS
    with session_factory(DatabaseConfig(url=url))() as session:
        assert resolve(session, token.group(1), config.web.secret) is not None
        assert resolve(session, token.group(1), "another key entirely") is None


def _in(folder, fn):
    here = os.getcwd()
    os.chdir(folder)
    try:
        return fn()
    finally:
        os.chdir(here)


def test_a_configured_secret_wins_and_is_never_written(tmp_path, sink):
    env = {**_env(sink), "POSTWATCH_WEB__SECRET": "configured-web-secret-0123456789"}
    (tmp_path / "postwatch.toml").write_text('[ingest]\nverp_secret = "configured-verp-secret-0123456789"\n')
    out = _send(tmp_path, env, "spring", ["a@example.org"])
    assert out.returncode == 0, out.stderr
    stored = _stored(tmp_path)
    assert stored == {"privacy": {"salt": stored["privacy"]["salt"]}}
    text = (tmp_path / "var" / "secrets.toml").read_text()
    assert "configured-" not in text
    assert "privacy.salt was not set" in out.stderr and "web.secret was not set" not in out.stderr
    # what the file holds never overrides the configuration
    (tmp_path / "var" / "secrets.toml").write_text(text + '\n[web]\nsecret = "from-the-file-0123456789"\n')
    config = _in(tmp_path, lambda: load(environ=env))
    assert config.web.secret == "configured-web-secret-0123456789"
    assert config.ingest.verp_secret == "configured-verp-secret-0123456789"
    assert config.generated == ("privacy.salt",)


def test_commands_that_only_read_create_nothing(tmp_path):
    (tmp_path / "dsn.eml").write_bytes(postfix_dsn())
    for args in (["parse", "--json", "dsn.eml"], ["explain", "dsn.eml"], ["config", "show"],
                 ["doctor", "--offline"]):
        proc = run(args, cwd=tmp_path, check=False)
        assert proc.returncode in (0, 1), proc.stderr
        assert not (tmp_path / "var" / "secrets.toml").exists(), args
    assert not (tmp_path / "var").exists()
    ingest = run(["ingest", "--no-progress", "dsn.eml"], cwd=tmp_path)  # it stores, but only checks tokens
    assert ingest.stderr == "" and not (tmp_path / "var" / "secrets.toml").exists()


def test_send_dry_run_needs_no_secret_and_writes_none(tmp_path, sink):
    (tmp_path / "r.csv").write_text("email,name\na@example.org,A\n")
    out = run(["send", "--template", str(make_template(tmp_path / "t")), "--recipients", "r.csv", "--campaign",
               "x", "--dry-run"], cwd=tmp_path, env=_env(sink), check=False)
    assert out.returncode == 0 and "dry run" in out.stdout, out.stderr
    assert not (tmp_path / "var" / "secrets.toml").exists() and sink.received == []


def test_which_commands_create_the_file(tmp_path):
    from postwatch.cli import build_parser

    parser = build_parser()
    mode = {" ".join(args): secrets_mode_for(parser.parse_args(args)) for args in (
        ["send", "--template", "t", "--recipients", "r.csv", "--campaign", "c"],
        ["send", "--template", "t", "--recipients", "r.csv", "--campaign", "c", "--dry-run"],
        ["serve"], ["web"], ["collect", "smtp"], ["collect", "imap"], ["ingest", "x"], ["reprocess"],
        ["parse", "x"], ["explain", "x"], ["config", "show"], ["doctor"], ["forget", "a@example.com"],
        ["db", "upgrade"], ["suppression", "list"])}
    creating = {k for k, v in mode.items() if v == CREATE}
    assert creating == {"send --template t --recipients r.csv --campaign c", "serve", "web", "collect smtp",
                        "collect imap"}
    assert mode["send --template t --recipients r.csv --campaign c --dry-run"] == TEMPORARY
    assert mode["parse x"] == mode["ingest x"] == mode["forget a@example.com"] == READ


def test_the_data_folder_follows_the_sqlite_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load(environ={"POSTWATCH_DATABASE__URL": f"sqlite:///{tmp_path}/data/pw.db"}, secrets_mode=CREATE)
    assert config.secrets_file == f"{tmp_path}/data/secrets.toml"
    assert (tmp_path / "data" / "secrets.toml").is_file() and not (tmp_path / "var").exists()
    server = load(environ={"POSTWATCH_DATABASE__URL": "postgresql://db.example/pw"})
    assert server.secrets_file == "var/secrets.toml" and server.generated == ()


def test_a_secrets_file_this_user_cannot_read(tmp_path, monkeypatch, caplog):
    import postwatch.config as config_module
    from postwatch.config import ConfigError

    monkeypatch.chdir(tmp_path)
    load(environ={}, secrets_mode=CREATE)
    real_open = os.open

    def refuse(path, flags, *args):
        if str(path).endswith("secrets.toml") and not flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(config_module.os, "open", refuse)
    # a command that only reads goes on without them, and says so
    assert load(environ={}).generated == () and "cannot read var/secrets.toml" in caplog.text
    # one that would make new ones stops: it must not replace what mail already carries
    with pytest.raises(ConfigError, match="cannot read var/secrets.toml: Permission denied"):
        load(environ={}, secrets_mode=CREATE)


def test_config_show_says_which_secrets_were_generated_and_where(tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secrets.toml").write_text(
        '[web]\nsecret = "generated-web-secret-0123456789"\n[privacy]\nsalt = "generated-salt-0123456789"\n')
    out = run(["config", "show"], cwd=tmp_path, env={"POSTWATCH_PRIVACY__SALT": "set-by-the-operator-0123"}).stdout
    assert "web.secret = '(generated, kept in var/secrets.toml)'" in out
    assert "privacy.salt = '(set)'" in out  # the operator's value wins, and is not called generated
    assert "ingest.verp_secret = ''" in out  # not made by a command that only reads
    assert "generated-web-secret" not in out and "set-by-the-operator" not in out
