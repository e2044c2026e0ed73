"""Shared fixtures: a real store per test, the shared corpus, the sample reports.

The store is a SQLite file under the test's folder, or, when POSTWATCH_DATABASE__URL names a
PostgreSQL server, a database of its own on that server, created for the test and dropped
after it. The variable is taken out of the environment here, so that the `postwatch`
processes a test starts read the test's own database from its configuration.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_reports"
CORPUS = Path(os.environ.get("POSTWATCH_CORPUS", ROOT.parent / "shared" / "corpus"))


def query(url: str, sql: str, **params) -> list[tuple]:
    """Rows of `sql` on the store at `url` (the tests' view of what other processes stored);
    no rows while the schema is not there yet."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError, ProgrammingError
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    except (OperationalError, ProgrammingError):  # no such table (yet)
        return []
    finally:
        engine.dispose()


def need(condition: bool, why: str) -> None:
    """Skip on a developer's machine; fail under CI, where a missing part is a missing install step."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI: {why}")
    pytest.skip(why)


SERVER_URL = os.environ.pop("POSTWATCH_DATABASE__URL", "")
ON_POSTGRES = SERVER_URL.startswith("postgresql")
_names = itertools.count()


class PostgresServer:
    """Creates and drops the tests' databases on the server SERVER_URL names."""

    TEMPLATE = f"pw_template_{os.getpid()}"

    def __init__(self, url: str):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.url = make_url(url).set(drivername="postgresql+psycopg")
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT")
        self.migrated = False

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def execute(self, sql: str) -> None:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(sql))

    def create(self, name: str, migrated: bool = False) -> None:
        """An empty database, or (`migrated`) a copy of a template migrated once per session:
        copying is much faster than migrating each."""
        from store.config import DatabaseConfig
        from store.engine import forget_engine, upgrade

        if migrated and not self.migrated:
            self.create(self.TEMPLATE)
            upgrade(DatabaseConfig(url=self.url_of(self.TEMPLATE)))
            forget_engine(self.url_of(self.TEMPLATE))  # a template takes no connections
            self.migrated = True
        self.drop(name)
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.TEMPLATE if migrated else "template0"}"')

    def drop(self, name: str) -> None:
        from store.engine import forget_engine

        forget_engine(self.url_of(name))
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self.migrated:
            self.drop(self.TEMPLATE)
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres_server():
    """The PostgreSQL server of this run, or None when the suite runs on SQLite."""
    if not ON_POSTGRES:
        yield None
        return
    server = PostgresServer(SERVER_URL)
    yield server
    server.close()


@pytest.fixture(scope="session")
def database_factory(postgres_server):
    """For fixtures that share one store across a module: `make(folder)` returns an empty
    store's DatabaseConfig (a SQLite file in `folder`, or a new PostgreSQL database, dropped
    at the end of the session)."""
    from store.config import DatabaseConfig

    made: list[str] = []

    def make(folder: Path) -> DatabaseConfig:
        if postgres_server is None:
            return DatabaseConfig(url=f"sqlite:///{folder}/postwatch.db")
        name = f"pw_shared_{os.getpid()}_{next(_names)}"
        postgres_server.create(name)
        made.append(name)
        return DatabaseConfig(url=postgres_server.url_of(name))

    yield make
    for name in made:
        postgres_server.drop(name)


@pytest.fixture
def database(request, tmp_path, postgres_server):
    """The test's store: a SQLite file, or a fresh PostgreSQL database — empty, or already
    migrated when the test also asks for `store` (a copy of the session's migrated template)."""
    from store.config import DatabaseConfig

    if postgres_server is None:
        yield DatabaseConfig(url=f"sqlite:///{tmp_path}/var/postwatch.db")
        return
    name = f"pw_test_{os.getpid()}_{next(_names)}"
    postgres_server.create(name, migrated="store" in request.fixturenames)
    yield DatabaseConfig(url=postgres_server.url_of(name))
    postgres_server.drop(name)


@pytest.fixture
def store(database, postgres_server):
    """A migrated store; yields its session factory."""
    from store.engine import session_factory, upgrade

    if postgres_server is None:  # on PostgreSQL `database` is a migrated copy already
        upgrade(database)
    return session_factory(database)


@pytest.fixture
def pipeline(store):
    from ingest.pipeline import Pipeline

    return Pipeline(store)


@pytest.fixture(scope="session")
def corpus() -> Path:
    need((CORPUS / "manifest.json").is_file(),
         f"the shared corpus is not at {CORPUS} (set POSTWATCH_CORPUS to its folder)")
    return CORPUS


@pytest.fixture(scope="session")
def _dns_server():
    from tests.dns_server import LocalDNS

    server = LocalDNS().start()
    yield server
    server.stop()


@pytest.fixture
def dns_server(_dns_server):
    """A loopback DNS server with an empty zone; add records with `.add(name, type, value)`."""
    _dns_server.clear()
    return _dns_server
