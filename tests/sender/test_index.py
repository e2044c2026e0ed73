"""The in-memory suppression index: loaded from the store, kept fresh from the change log."""
from datetime import datetime, timedelta, timezone

from store.addresses import address_hash
from store.suppressions import add_suppression, erase_address, remove_suppression
from sender.index import SuppressionIndex, scopes_for

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
SCOPES = scopes_for("send.example.com", "spring")


def _add(store, address, scope="global", expires=None, now=T0):
    with store.begin() as s:
        add_suppression(s, address, reason="userunknown", source="bounce", now=now, scope=scope, expires_at=expires)


def test_load_then_refresh_follows_adds_and_removes_in_every_scope(store):
    _add(store, "Gone@Example.org")
    _add(store, "dom@example.org", scope="domain:send.example.com")
    _add(store, "other@example.org", scope="domain:other.example.com")
    index = SuppressionIndex.load(store, clock=lambda: T0)
    assert index.suppressed("gone@example.org", SCOPES) == "global"
    assert index.suppressed("dom@example.org", SCOPES) == "domain:send.example.com"
    assert index.suppressed("other@example.org", SCOPES) is None  # another sending domain's list
    assert index.suppressed("new@example.org", SCOPES) is None

    _add(store, "new@example.org", scope="campaign:spring")
    with store.begin() as s:
        remove_suppression(s, "gone@example.org", reason="resubscribed", now=T0)
    assert index.suppressed("new@example.org", SCOPES) is None  # not yet read
    assert index.refresh(store) == 2
    assert index.suppressed("new@example.org", SCOPES) == "campaign:spring"
    assert index.suppressed("gone@example.org", SCOPES) is None
    assert index.refresh(store) == 0


def test_an_expiring_suppression_ends_without_a_change(store):
    now = [T0]
    _add(store, "full@example.org", expires=T0 + timedelta(days=3))
    index = SuppressionIndex.load(store, clock=lambda: now[0])
    assert index.suppressed("full@example.org") == "global"
    now[0] = T0 + timedelta(days=4)
    assert index.suppressed("full@example.org") is None
    _add(store, "full@example.org", now=now[0])  # permanent now
    index.refresh(store)
    assert index.suppressed("full@example.org") == "global"


def test_an_erased_address_stays_suppressed_by_its_salted_hash(store):
    _add(store, "secret@example.org")
    with store.begin() as s:
        erase_address(s, "secret@example.org", address_hash("secret@example.org", "pepper"))
    index = SuppressionIndex.load(store, salt="pepper", clock=lambda: T0)
    assert index.suppressed("secret@example.org") == "global"
    assert SuppressionIndex.load(store, clock=lambda: T0).suppressed("secret@example.org") is None  # no salt
    assert index.suppressed("someone@example.org") is None


def test_bulk_add_for_large_lists():
    index = SuppressionIndex()
    index.add_many((f"u{i}@example.org", "global") for i in range(1000))
    assert len(index) == 1000
    assert index.suppressed("u999@example.org", SCOPES) == "global"
    assert index.suppressed("u1000@example.org", SCOPES) is None
