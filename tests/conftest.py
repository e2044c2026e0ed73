"""Shared fixtures: a real SQLite file per test, the shared corpus, the sample reports."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_reports"
CORPUS = Path(os.environ.get("POSTWATCH_CORPUS", ROOT.parent / "shared" / "corpus"))


def need(condition: bool, why: str) -> None:
    """Skip on a developer's machine; fail under CI, where a missing part is a missing install step."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI: {why}")
    pytest.skip(why)


@pytest.fixture
def database(tmp_path):
    from store.config import DatabaseConfig

    return DatabaseConfig(url=f"sqlite:///{tmp_path}/var/postwatch.db")


@pytest.fixture
def store(database):
    """A migrated SQLite store; yields its session factory."""
    from store.engine import session_factory, upgrade

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
