"""The bounces of sample_reports/, one row per recipient: recipient, status, reply code,
reason and hard/soft as sample_reports/expected.json states them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.parse import parse_bytes

SAMPLES = Path(__file__).resolve().parents[2] / "sample_reports"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text("utf-8"))["files"]
FIELDS = ("recipient", "status", "reply_code", "reason", "hard_bounce")
ROWS = [(rel, i, row) for rel, want in sorted(EXPECTED.items())
        if want.get("kind") == "bounce" and not want.get("error")
        for i, row in enumerate(want.get("events", []))]


def test_the_table_covers_every_sample_bounce():
    assert len(ROWS) >= 5
    assert all(set(FIELDS) <= set(row) for _, _, row in ROWS), "every bounce row states all of " + str(FIELDS)


@pytest.mark.parametrize("rel,index,want", ROWS, ids=[f"{r}#{i}" for r, i, _ in ROWS])
def test_sample_bounce_recipient(rel, index, want):
    result = parse_bytes((SAMPLES / rel).read_bytes())
    assert result.kind == "bounce" and result.error is None, result.error
    by_recipient = {e["recipient"]: e for e in result.events}
    assert want["recipient"] in by_recipient, f"{rel}: recipients {sorted(by_recipient)}"
    got = by_recipient[want["recipient"]]
    assert {k: got.get(k) for k in FIELDS} == {k: want[k] for k in FIELDS}, got.get("rule")
