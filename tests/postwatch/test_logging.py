"""-v shows postwatch's own lines without the libraries' bookkeeping; -vv shows everything."""
import logging
import os
import subprocess
import sys

import pytest
import sqlalchemy  # noqa: F401  (sets its logger's level on import, as in every postwatch run)

from postwatch.cli import OWN_LOGGERS, QUIET_LOGGERS, setup_logging
from tests.conftest import ROOT, SAMPLES


@pytest.fixture
def levels():
    names = ("", *OWN_LOGGERS, *QUIET_LOGGERS)
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("verbose", [1, 2])
def test_levels_per_verbosity(levels, verbose):
    logging.getLogger().setLevel(logging.WARNING)
    setup_logging(verbose)
    logging.getLogger().setLevel(logging.INFO if verbose == 1 else logging.DEBUG)  # basicConfig is once
    assert logging.getLogger("ingest.pipeline").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("postwatch.serve").isEnabledFor(logging.DEBUG)
    for name in ("flufl.bounce", "alembic.runtime.migration", "urllib3.connectionpool", "werkzeug", "asyncio",
                 "mail.log"):
        assert logging.getLogger(name).isEnabledFor(logging.INFO) == (verbose == 2), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name
    # SQLAlchemy keeps its own logger at WARNING (its statements are database.echo's to show)
    assert not logging.getLogger("sqlalchemy.engine").isEnabledFor(logging.INFO)
    assert logging.getLogger("sqlalchemy.engine").isEnabledFor(logging.WARNING)


def _stderr(tmp_path, *flags: str) -> str:
    env = {**os.environ, "POSTWATCH_DATABASE__URL": f"sqlite:///{tmp_path / flags[0].strip('-')}.db"}
    out = subprocess.run([sys.executable, "-m", "postwatch.cli", *flags, "ingest", "--no-progress",
                          str(SAMPLES / "bounces")], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stderr


def test_v_keeps_alembic_quiet_and_vv_shows_it(tmp_path):
    assert ROOT.exists()
    one = _stderr(tmp_path, "-v")
    assert "alembic" not in one and "flufl.bounce" not in one
    two = _stderr(tmp_path, "-vv")
    assert "alembic.runtime.migration" in two
