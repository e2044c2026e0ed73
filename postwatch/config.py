"""The one configuration loader: a TOML file plus `POSTWATCH_SECTION__KEY` overrides.

Each package defines the typed sections it reads; this module finds the file, applies the
environment, builds those sections and hands each part what it needs. With no file at all
the embedded defaults run.

postwatch's own keys (GENERATED_SECRETS) that the operator has not set are made once and kept
in the data folder (`var/secrets.toml` beside the SQLite database), so that the return paths,
unsubscribe links and hashes made with them stay valid from one run to the next.
"""
from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import re
import secrets
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from analysis.config import (AlertsConfig, BlocklistsConfig, DmarcConfig, DnsConfig, DomainsConfig,
                             PostmasterConfig, PrivacyConfig, ProvidersConfig, ReportsConfig, SchedulerConfig,
                             ScoresConfig, SndsConfig, SunsetConfig, SuppressionConfig)
from dashboard.config import WebConfig
from sender.config import PreferencesConfig, SenderConfig, TrackingConfig, WebhooksConfig
from ingest.config import IMAPConfig, IngestConfig, SMTPConfig, SpoolConfig
from ingest.logs.config import LogsConfig
from store.config import DatabaseConfig

DEFAULT_FILE = "postwatch.toml"
ENV_PREFIX = "POSTWATCH_"

log = logging.getLogger(__name__)

# Keys postwatch both makes and checks (HMAC keys), so it may invent them; never a password of
# another system (IMAP, SMTP) nor a bearer token a client must be given.
GENERATED_SECRETS: tuple[str, ...] = ("ingest.verp_secret", "web.secret", "privacy.salt")
SECRETS_FILE = "secrets.toml"  # in the data folder (data_dir)
DATA_DIR = "var"  # the data folder when the store is not a SQLite file

# How `load` treats a generated secret the file does not hold yet:
READ = "read"  # leave it empty (commands that only read: parse, explain, config show, doctor...)
CREATE = "create"  # make it and write it to the file (commands that send, receive or serve)
TEMPORARY = "temporary"  # make it for this run only, write nothing (send --dry-run)

# The commands that may create the file: those that send mail (its return paths and links are
# signed), serve the links and logins, and the collectors, which run for long and must agree
# with a sender that starts after them. A key made by a command that only checks tokens
# (ingest, reprocess) could make none valid; `forget` erases for good, and waits for a salt
# someone chose or kept.
CREATING_COMMANDS = frozenset({"send", "serve", "web", "collect"})

# section name -> the dataclass that holds it
SECTIONS: dict[str, type] = {
    "database": DatabaseConfig,
    "ingest": IngestConfig,
    "smtp": SMTPConfig,
    "imap": IMAPConfig,
    "spool": SpoolConfig,
    "dns": DnsConfig,
    "domains": DomainsConfig,
    "blocklists": BlocklistsConfig,
    "alerts": AlertsConfig,
    "scheduler": SchedulerConfig,
    "providers": ProvidersConfig,
    "scores": ScoresConfig,
    "dmarc": DmarcConfig,
    "suppression": SuppressionConfig,
    "sunset": SunsetConfig,
    "privacy": PrivacyConfig,
    "sender": SenderConfig,
    "web": WebConfig,
    "preferences": PreferencesConfig,
    "reports": ReportsConfig,
    "webhooks": WebhooksConfig,
    "tracking": TrackingConfig,
    "logs": LogsConfig,
    "postmaster": PostmasterConfig,
    "snds": SndsConfig,
}


class ConfigError(ValueError):
    """A configuration problem, said as a sentence the operator can act on."""


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    smtp: SMTPConfig = field(default_factory=SMTPConfig)
    imap: IMAPConfig = field(default_factory=IMAPConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    domains: DomainsConfig = field(default_factory=DomainsConfig)
    blocklists: BlocklistsConfig = field(default_factory=BlocklistsConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    providers: ProvidersConfig = field(default_factory=ProvidersConfig)
    scores: ScoresConfig = field(default_factory=ScoresConfig)
    dmarc: DmarcConfig = field(default_factory=DmarcConfig)
    suppression: SuppressionConfig = field(default_factory=SuppressionConfig)
    sunset: SunsetConfig = field(default_factory=SunsetConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    sender: SenderConfig = field(default_factory=SenderConfig)
    web: WebConfig = field(default_factory=WebConfig)
    preferences: PreferencesConfig = field(default_factory=PreferencesConfig)
    reports: ReportsConfig = field(default_factory=ReportsConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    logs: LogsConfig = field(default_factory=LogsConfig)
    postmaster: PostmasterConfig = field(default_factory=PostmasterConfig)
    snds: SndsConfig = field(default_factory=SndsConfig)
    source: str = "defaults"  # the file read, for `postwatch config show`
    secrets_file: str = ""  # where generated secrets are kept (read or written)
    generated: tuple[str, ...] = ()  # the GENERATED_SECRETS whose value came from it, not from the operator


def load(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None,
         secrets_mode: str = READ) -> Config:
    """Read `path` (or ./postwatch.toml when it exists) and the environment; then fill the
    generated secrets the operator left empty from the secrets file (`secrets_mode`: READ,
    CREATE or TEMPORARY says what to do about one the file does not hold)."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source = "defaults"
    if path is None and Path(DEFAULT_FILE).is_file():
        path = DEFAULT_FILE
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
        source = str(path)
    for name in data:
        if name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{name}]; known sections: "
                              + ", ".join(sorted(SECTIONS)))
    built = {name: _section(name, cls, data.get(name, {}), environ, source)
             for name, cls in SECTIONS.items()}
    return with_secrets(Config(source=source, **built), secrets_mode)


def secrets_mode_for(args) -> str:
    """What a command line may do about missing secrets: CREATE for the commands that send,
    receive or serve (TEMPORARY for `send --dry-run`, which writes nothing), READ for the others."""
    if getattr(args, "command", None) not in CREATING_COMMANDS:
        return READ
    return TEMPORARY if getattr(args, "dry_run", False) else CREATE


# ---------------------------------------------------------------- generated secrets

def data_dir(database: DatabaseConfig) -> Path:
    """The folder of what postwatch makes for itself: the SQLite database's folder (var/ by
    default), or ./var when the store is a database server."""
    match = re.match(r"sqlite(?:\+\w+)?:///([^?]*)", database.url)
    if match and match.group(1) and match.group(1) != ":memory:":
        return Path(match.group(1)).parent
    return Path(DATA_DIR)


def secrets_path(config: Config) -> Path:
    return data_dir(config.database) / SECRETS_FILE


def write_private(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` readable by its owner only (mode 0600), replacing the file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no half-written file left beside the real one
        raise


def with_secrets(config: Config, mode: str = READ) -> Config:
    """`config` with each generated secret the operator left empty taken from the secrets file;
    one the file lacks is made (CREATE: and written there, with a warning per key; TEMPORARY:
    for this run only). A configured value always wins and is never written."""
    if mode not in (READ, CREATE, TEMPORARY):
        raise ValueError(f"unknown secrets mode {mode!r}")
    path = secrets_path(config)
    unset = [key for key in GENERATED_SECRETS if not _get(config, key)]
    if not unset:
        return dataclasses.replace(config, secrets_file=str(path))
    if mode == CREATE:
        stored = _read_or_make(path, unset)
    else:
        stored = _read_secrets(path, must=False)
        if mode == TEMPORARY:
            stored.update({key: secrets.token_urlsafe(32) for key in unset if key not in stored})
    taken = {key: stored[key] for key in unset if stored.get(key)}
    sections: dict[str, Any] = {}
    for key, value in taken.items():
        section, name = key.split(".", 1)
        sections.setdefault(section, {})[name] = value
    changed = {section: dataclasses.replace(getattr(config, section), **values)
               for section, values in sections.items()}
    return dataclasses.replace(config, secrets_file=str(path), generated=tuple(taken), **changed)


def _get(config: Config, key: str) -> Any:
    section, name = key.split(".", 1)
    return getattr(getattr(config, section), name)


def _parse_secrets(path: Path, text: str) -> dict[str, str]:
    try:
        data = tomllib.loads(text) if text.strip() else {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}): repair it from a backup, or set the keys it "
                          "held in the configuration") from None
    return {f"{section}.{name}": value for section, values in data.items() if isinstance(values, dict)
            for name, value in values.items() if isinstance(value, str) and value}


def _read_secrets(path: Path, must: bool = True) -> dict[str, str]:
    """What the secrets file holds ({} when there is none); creates nothing. A file this user
    may not read stops a command that would otherwise make new secrets (`must`); one that only
    reads goes on without them, as it would before any were made."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        if must:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        log.warning("cannot read %s (%s): going on without the secrets it keeps", path, exc.strerror)
        return {}
    with os.fdopen(fd, "r", encoding="utf-8") as fh:  # written whole by a rename: never half
        return _parse_secrets(path, fh.read())


def _read_or_make(path: Path, wanted: list[str]) -> dict[str, str]:
    """The secrets file's values, after adding those of `wanted` it lacked. Processes that start
    together (serve's roles) take turns on a lock, so they all end up with one value per key."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(path.parent, os.O_RDONLY)  # the lock: the data folder itself
    except OSError as exc:
        raise ConfigError(f"cannot keep the generated secrets in {path}: {exc.strerror}; set "
                          + ", ".join(wanted) + " in the configuration instead") from None
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        stored = _read_secrets(path)
        made = {key: secrets.token_urlsafe(32) for key in wanted if key not in stored}
        if not made:
            return stored
        stored.update(made)
        try:
            write_private(path, _secrets_text(stored))
        except OSError as exc:
            raise ConfigError(f"cannot write the generated secrets to {path}: {exc.strerror}; set "
                              + ", ".join(made) + " in the configuration instead") from None
    finally:
        os.close(folder)  # and with it the lock
    for key in made:
        section, name = key.split(".", 1)
        log.warning("%s was not set: generated one into %s (mode 0600), read from there on later runs; "
                    "machines that share one store must each set %s (%s%s__%s) to the same value",
                    key, path, key, ENV_PREFIX, section.upper(), name.upper())
    return stored


def _secrets_text(values: dict[str, str]) -> str:
    lines = ["# Secrets postwatch generated because the configuration set none (see docs/first-run.md).",
             "# Keep this file: mail already sent carries return paths and unsubscribe links signed with",
             "# them. A key set in postwatch.toml or the environment wins over this file.", ""]
    by_section: dict[str, list[str]] = {}
    for key in sorted(values):
        section, name = key.split(".", 1)
        by_section.setdefault(section, []).append(f"{name} = {_toml_string(values[key])}")
    for section, entries in by_section.items():
        lines += [f"[{section}]", *entries, ""]
    return "\n".join(lines)


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _section(name: str, cls: type, values: dict[str, Any], environ: Mapping[str, str], source: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in fields:
            raise ConfigError(f"{source}: unknown key {name}.{key}; known keys: "
                              + ", ".join(sorted(fields)))
    kwargs: dict[str, Any] = {}
    for key in fields:
        env_name = f"{ENV_PREFIX}{name.upper()}__{key.upper()}"
        if env_name in environ:
            kwargs[key] = _coerce(hints[key], environ[env_name], env_name, from_env=True)
        elif key in values:
            kwargs[key] = _coerce(hints[key], values[key], f"{name}.{key}", from_env=False)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # a section that checks its own values says why
        raise ConfigError(f"{source}: [{name}] {exc}") from None


def _coerce(hint: Any, value: Any, where: str, from_env: bool) -> Any:
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if hint is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if origin in (tuple, list):
            if isinstance(value, str):
                items = [v.strip() for v in value.split(",") if v.strip()]
            elif isinstance(value, (list, tuple)):
                items = [str(v) for v in value]
            else:
                raise ValueError(value)
            return tuple(items)
        if hint is str:
            if not isinstance(value, str) and not from_env:
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a valid {getattr(hint, '__name__', hint)}") from None
    return value


def describe() -> list[tuple[str, str, Any, str]]:
    """Every key: (section.key, environment variable, default, type) — for docs and `config show`."""
    rows = []
    for name, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            rows.append((f"{name}.{f.name}", f"{ENV_PREFIX}{name.upper()}__{f.name.upper()}",
                         default, getattr(hints[f.name], "__name__", str(hints[f.name]))))
    return rows
