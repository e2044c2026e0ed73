"""The one engine and session factory, and schema upgrades through Alembic."""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from store.config import DatabaseConfig

MIGRATIONS = Path(__file__).with_name("migrations")
_engines: dict[str, Engine] = {}


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; safe with WAL
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# PostgreSQL text cannot hold a NUL character ("text fields cannot contain NUL"), and one in a
# value taken from a message (a diagnostic, an address, a header) would fail the whole
# transaction, and with it every message of the batch, again at each retry. It is written as
# U+FFFD instead, by this listener on every statement and by store.bulk's COPY. SQLite keeps it.
NUL_STANDIN = "\ufffd"


def _has_nul(values) -> bool:
    for v in values.values() if isinstance(values, dict) else values:
        if type(v) is str and "\x00" in v:
            return True
    return False


def without_nul(values):
    """`values` (a dict, tuple or list of parameters) with NUL in its strings replaced."""
    def clean(v):
        return v.replace("\x00", NUL_STANDIN) if type(v) is str else v

    if isinstance(values, dict):
        return {k: clean(v) for k, v in values.items()}
    return type(values)(clean(v) for v in values) if isinstance(values, (tuple, list)) else values


def _text_without_nul(conn, cursor, statement, parameters, context, executemany):
    if not parameters:
        return statement, parameters
    if executemany and not isinstance(parameters, dict):  # (a dict: one batch of SQLAlchemy's insertmanyvalues)
        if any(_has_nul(p) for p in parameters):
            parameters = [without_nul(p) for p in parameters]
    elif isinstance(parameters, (dict, tuple, list)) and _has_nul(parameters):
        parameters = without_nul(parameters)
    return statement, parameters


def make_engine(config: DatabaseConfig) -> Engine:
    """A new engine for `config.url`; a SQLite file's folder is created when missing."""
    url = make_url(config.url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=config.echo)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("", "psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url, echo=config.echo, pool_pre_ping=True)
    if url.get_backend_name() == "postgresql":
        event.listen(engine, "before_cursor_execute", _text_without_nul, retval=True)
    return engine


def get_engine(config: DatabaseConfig) -> Engine:
    """The shared engine of this process for `config.url`."""
    key = f"{os.getpid()}:{config.url}"
    engine = _engines.get(key)
    if engine is None:
        engine = _engines[key] = make_engine(config)
    return engine


def forget_engine(url: str) -> None:
    """Close and forget this process's engine for `url` (before its database is dropped)."""
    engine = _engines.pop(f"{os.getpid()}:{url}", None)
    if engine is not None:
        engine.dispose()


def session_factory(config: DatabaseConfig) -> sessionmaker[Session]:
    return sessionmaker(get_engine(config), expire_on_commit=False)


def _alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(config: DatabaseConfig, revision: str = "heads") -> str | None:
    """Create or migrate the schema; returns the version the database is at."""
    from alembic import command

    engine = get_engine(config)
    command.upgrade(_alembic_config(engine), revision)
    if engine.dialect.name == "postgresql":
        from store.partitions import ensure_partitions

        with engine.begin() as conn:
            ensure_partitions(conn)
    return current_version(config)


def current_version(config: DatabaseConfig) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with get_engine(config).connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return "+".join(sorted(heads)) or None
