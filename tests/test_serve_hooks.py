"""The webhooks on `postwatch serve --role web` as an operator runs it (waitress, the
configuration from the environment): a Postmark bounce posted with its secret is stored with
its reason; without the secret it is refused."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

from sqlalchemy import create_engine, select

from store import models as m
from tests.test_serve import Served

SECRET = "postmark-secret-0123456789"
BOUNCE = {"RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1, "Email": "gone@example.net",
          "From": "news@pm.example.com", "BouncedAt": "2026-06-01T12:00:00Z", "Tag": "spring-sale",
          "Details": "smtp;550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown in virtual "
                     "mailbox table"}


def post(s: Served, headers: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{s.web}/hooks/postmark", data=json.dumps(BOUNCE).encode(),
                                 method="POST", headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_postmark_bounce_posted_to_postwatch_serve_is_stored_with_its_reason(tmp_path, database, store):
    s = Served(tmp_path, database.url, "web", env={"POSTWATCH_WEBHOOKS__PROVIDERS": "postmark",
                                                   "POSTWATCH_WEBHOOKS__POSTMARK_SECRET": SECRET})
    try:
        s.until(lambda: _up(s), why="the web server")
        assert post(s, {})[0] == 401
        assert post(s, {"X-Postmark-Secret": "not-it"})[0] == 403
        status, answer = post(s, {"X-Postmark-Secret": SECRET})
        assert status == 200 and answer["events"] == 1, answer
        assert post(s, {"X-Postmark-Secret": SECRET})[1]["duplicate"] is True
    finally:
        assert s.stop() == 0, s.log
    engine = create_engine(database.url)
    with engine.connect() as conn:
        rows = conn.execute(select(m.BounceEvent.recipient, m.BounceEvent.reason, m.BounceEvent.hard,
                                   m.BounceEvent.campaign)).all()
        sources = conn.execute(select(m.InboundMessage.source)).scalars().all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("gone@example.net", "userunknown", True, "spring-sale")]
    assert sources == ["webhook:postmark"]


def _up(s: Served) -> bool:
    try:
        return s.get("/healthz")[0] == 200
    except OSError:
        return False
