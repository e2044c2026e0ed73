import pytest

from postwatch.config import ConfigError, describe, load


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load(environ={})
    assert cfg.source == "defaults"
    assert cfg.database.url == "sqlite:///var/postwatch.db"
    assert cfg.smtp.listen == "127.0.0.1:2525"
    assert "bounces+*@*" in cfg.smtp.accept and "tls-reports@*" in cfg.smtp.accept


def test_file_then_environment_override(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "postwatch.toml").write_text(
        '[database]\nurl = "sqlite:///file.db"\n[ingest]\nbatch_size = 7\n[smtp]\naccept = ["a@*"]\n')
    cfg = load(environ={"POSTWATCH_DATABASE__URL": "postgresql://h/db",
                        "POSTWATCH_SMTP__ACCEPT": "x@*, y@*", "POSTWATCH_INGEST__OFFLINE": "false"})
    assert cfg.source == "postwatch.toml"
    assert cfg.database.url == "postgresql://h/db"  # the environment wins over the file
    assert cfg.ingest.batch_size == 7
    assert cfg.smtp.accept == ("x@*", "y@*")
    assert cfg.ingest.offline is False


@pytest.mark.parametrize("text, message", [
    ("[nosuch]\na = 1\n", "unknown section [nosuch]"),
    ("[database]\nuri = 'x'\n", "unknown key database.uri"),
    ("[ingest]\nbatch_size = 'many'\n", "ingest.batch_size: 'many' is not a valid int"),
    ("[database\n", "is not valid TOML"),
])
def test_bad_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(path, environ={})


def test_bad_environment_value_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="POSTWATCH_INGEST__BATCH_SIZE"):
        load(environ={"POSTWATCH_INGEST__BATCH_SIZE": "x"})


def test_missing_named_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "absent.toml", environ={})


def test_describe_lists_the_fixed_keys():
    keys = {row[0]: row for row in describe()}
    for key in ("database.url", "smtp.listen", "smtp.accept"):
        assert key in keys
    assert keys["database.url"][1] == "POSTWATCH_DATABASE__URL"


def test_a_section_that_checks_its_values_is_a_config_error(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[providers]\ndomains = ["example.org"]\n')
    with pytest.raises(ConfigError, match=r"providers.domains: 'example.org' is not NAME=PROVIDER"):
        load(path, environ={})
