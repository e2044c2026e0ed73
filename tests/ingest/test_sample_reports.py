"""Every file in sample_reports/ is described in expected.json and README.md, and parses to it.

Bounce reasons are the classifier's business (tests/ingest/bounce); here a bounce sample is
checked for kind, recipient and status only.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.parse import parse_bytes

SAMPLES = Path(__file__).resolve().parents[2] / "sample_reports"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text("utf-8"))["files"]
FILES = sorted(str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*")
               if p.is_file() and p.name not in ("README.md", "expected.json"))
BOUNCE_FIELDS = ("recipient", "status")


def test_every_file_is_expected_and_documented():
    assert sorted(EXPECTED) == FILES
    readme = (SAMPLES / "README.md").read_text("utf-8")
    missing = [f for f in FILES if f"`{f}`" not in readme]
    assert not missing, f"not in sample_reports/README.md: {missing}"


def test_every_kind_is_covered():
    kinds = {e.get("kind") for e in EXPECTED.values() if not e.get("error")}
    assert kinds == {"bounce", "complaint", "dmarc_aggregate", "dmarc_failure", "smtp_tls", "auto_reply"}
    assert any(e.get("error") for e in EXPECTED.values())


@pytest.mark.parametrize("rel", FILES)
def test_sample(rel):
    want = EXPECTED[rel]
    r = parse_bytes((SAMPLES / rel).read_bytes())
    if "kind" in want:
        assert r.kind == want["kind"], r.error
    if want.get("error"):
        assert r.error and "\n" not in r.error
        return
    assert r.error is None
    if "events" in want:
        assert len(r.events) == len(want["events"])
        for got, exp in zip(r.events, want["events"]):
            fields = BOUNCE_FIELDS if r.kind == "bounce" else exp.keys()
            assert {k: got.get(k) for k in fields} == {k: exp[k] for k in fields}
    for key, value in want.get("report", {}).items():
        assert r.report[key] == value, key
