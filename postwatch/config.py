"""The one configuration loader: a TOML file plus `POSTWATCH_SECTION__KEY` overrides.

Each package defines the typed sections it reads; this module finds the file, applies the
environment, builds those sections and hands each part what it needs. With no file at all
the embedded defaults run.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from analysis.config import (AlertsConfig, BlocklistsConfig, DmarcConfig, DnsConfig, DomainsConfig,
                             PrivacyConfig, ProvidersConfig, ReportsConfig, SchedulerConfig,
                             ScoresConfig, SuppressionConfig)
from dashboard.config import WebConfig
from sender.config import SenderConfig
from ingest.config import IMAPConfig, IngestConfig, SMTPConfig, SpoolConfig
from store.config import DatabaseConfig

DEFAULT_FILE = "postwatch.toml"
ENV_PREFIX = "POSTWATCH_"

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
    "privacy": PrivacyConfig,
    "sender": SenderConfig,
    "web": WebConfig,
    "reports": ReportsConfig,
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
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    sender: SenderConfig = field(default_factory=SenderConfig)
    web: WebConfig = field(default_factory=WebConfig)
    reports: ReportsConfig = field(default_factory=ReportsConfig)
    source: str = "defaults"  # the file read, for `postwatch config show`


def load(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read `path` (or ./postwatch.toml when it exists) and the environment."""
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
    return Config(source=source, **built)


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
