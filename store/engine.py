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
    return create_engine(url, echo=config.echo, pool_pre_ping=True)


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
