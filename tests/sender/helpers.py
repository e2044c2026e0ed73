"""What the sender's tests share: a sink fixture, a template folder, campaign settings."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sender.campaign import Settings
from sender.config import SenderConfig
from tests.sender.sink import Sink

VERP_KEY = "verp-key-for-tests-0123456789"
UNSUB_KEY = "unsubscribe-key-for-tests-0123"


@pytest.fixture
def sink(tmp_path):
    server = Sink(tmp_path / "tls")
    yield server
    server.stop()


def make_template(folder: Path, *, subject: str = "Hello {{ name }}",
                  text: str = "Hi {{ name }}: https://shop.example.com/new\nLeave: {{ unsubscribe_url }}\n",
                  html: str | None = '<p>Hi {{ name }}</p><a href="https://shop.example.com/new?a=1">new</a>'
                                     '<a href="{{ unsubscribe_url }}">leave</a>') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "subject.txt").write_text(subject)
    (folder / "body.txt").write_text(text)
    if html is not None:
        (folder / "body.html").write_text(html)
    return folder


def settings(smarthost: str, campaign: str = "spring", **sender) -> Settings:
    base = SenderConfig(smarthost=smarthost, retry_backoff=0.0, timeout=10.0)
    return Settings(campaign=campaign, sender=replace(base, **sender), from_address="news@send.example.com",
                    base_url="https://pw.example.com", verp_secret=VERP_KEY, unsubscribe_secret=UNSUB_KEY)
