"""The web server around the pages: login, roles, TOTP, the signed session, the failed-login
limit, /healthz, /metrics against a store of known content, and the API and unsubscribe
links outside the login."""
from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta, timezone

import pyotp
import pytest

from dashboard.auth import SESSION_COOKIE, hash_password, safe_next
from dashboard.config import User, parse_user
from postwatch.config import ConfigError, load
from tests.clock import Clock
from tests.ingest.messages import dmarc_xml, postfix_dsn, vacation_reply

NOW = datetime(2024, 6, 3, 12, 0, tzinfo=timezone.utc)
TOKEN = "read-token-0123456789abcdef"
SECRET = "session-and-unsubscribe-key-0123456789"
TOTP = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
PASSWORDS = {"ann": "ann-password", "bob": "bob-password", "tia": "tia-password"}
HASHES = {name: hash_password(pw) for name, pw in PASSWORDS.items()}  # scrypt: made once per module


@pytest.fixture
def clock():
    return Clock(NOW)


def settings(database, **web):
    users = web.pop("users", [f"ann:editor:{HASHES['ann']}", f"bob:viewer:{HASHES['bob']}",
                              f"tia:viewer:{HASHES['tia']}:{TOTP}"])
    env = {"POSTWATCH_WEB__SECRET": SECRET, "POSTWATCH_WEB__READ_TOKENS": TOKEN,
           "POSTWATCH_WEB__USERS": ",".join(users)}
    env.update({f"POSTWATCH_WEB__{k.upper()}": str(v) for k, v in web.items()})
    config = load(environ=env)
    return dataclasses.replace(config, database=database)


def make(store, database, clock, pages=False, health=None, **web):
    from dashboard.server import create_server

    app = create_server(settings(database, **web), sessions=store, clock=clock, pages=pages, health=health)
    return app, app.test_client()


def login(client, name, password, code="", next_=None):
    page = client.get("/login" + (f"?next={next_}" if next_ else ""))
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    form = {"username": name, "password": password, "code": code, "csrf": csrf}
    if next_:
        form["next"] = next_
    return client.post("/login", data=form)


# -- the user entries ------------------------------------------------------------------------

def test_a_user_entry_splits_around_the_hash_and_its_colons():
    user = parse_user(f"tia:viewer:{HASHES['tia']}:{TOTP}")
    assert user == User("tia", "viewer", HASHES["tia"], TOTP)
    assert parse_user(user.entry) == user
    assert parse_user(f"ann:editor:{HASHES['ann']}").totp_secret == ""


@pytest.mark.parametrize("entry, says", [
    ("ann:admin:scrypt:1$a$b", "the roles are viewer and editor"),
    ("ann:editor:plaintext", "is not a hash"),
    ("ann:editor", "NAME:ROLE:HASH"),
    ("ann:editor:scrypt:1$a$b:notbase32!", "base32"),
    ("a n:editor:scrypt:1$a$b", "may only have"),
])
def test_a_bad_user_entry_stops_the_configuration_with_a_sentence(entry, says):
    with pytest.raises(ConfigError) as caught:
        load(environ={"POSTWATCH_WEB__USERS": entry})
    assert says in str(caught.value) and "$b" not in str(caught.value)  # the hash is never repeated


def test_a_user_listed_twice_is_refused():
    with pytest.raises(ConfigError, match="ann is listed twice"):
        load(environ={"POSTWATCH_WEB__USERS": f"ann:editor:{HASHES['ann']},ann:viewer:{HASHES['ann']}"})


# -- login -----------------------------------------------------------------------------------

def test_pages_need_a_login_and_data_requests_get_401(store, database, clock):
    _app, client = make(store, database, clock)
    answer = client.get("/")
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    answer = client.get("/bounces?start=2024-05-01&end=2024-05-30")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/login?next=/bounces%3Fstart%3D2024-05-01%26end%3D2024-05-30"
    answer = client.post("/_dash-update-component", json={})
    assert answer.status_code == 401 and "log in" in answer.get_json()["error"]
    assert client.get("/_dash-layout").status_code == 401


def test_login_sets_a_signed_session_with_the_role_and_returns_to_the_page(store, database, clock):
    _app, client = make(store, database, clock)
    answer = login(client, "ann", PASSWORDS["ann"], next_="/bounces?start=2024-05-01")
    assert answer.status_code == 302 and answer.headers["Location"] == "/bounces?start=2024-05-01"
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie.http_only and cookie.same_site == "Lax"
    with client.session_transaction() as session:
        assert session["user"] == "ann" and session["role"] == "editor"
    assert client.get("/").status_code == 200
    assert "editor" in client.get("/").text
    client.get("/logout")
    assert client.get("/").status_code == 302


def test_a_wrong_password_or_user_is_refused_alike(store, database, clock):
    _app, client = make(store, database, clock)
    for name, password in (("ann", "not-her-password"), ("nobody", "whatever-it-is")):
        answer = login(client, name, password)
        assert answer.status_code == 401
        assert "user name, password or one-time code is wrong" in answer.text
        assert client.get("/").status_code == 302


def test_a_session_signed_with_another_key_or_edited_is_not_a_login(store, database, clock):
    from flask.sessions import SecureCookieSessionInterface

    app, client = make(store, database, clock)
    login(client, "bob", PASSWORDS["bob"])
    good = client.get_cookie(SESSION_COOKIE).value
    # the same content signed with another key, claiming editor
    other = app.__class__("other")
    other.secret_key = b"another key"
    forged = SecureCookieSessionInterface().get_signing_serializer(other).dumps(
        {"user": "ann", "role": "editor", "at": int(NOW.timestamp()), "fp": "x"})
    fresh = app.test_client()
    fresh.set_cookie(SESSION_COOKIE, forged)
    assert fresh.get("/").status_code == 302
    fresh.set_cookie(SESSION_COOKIE, good[:-2] + ("AA" if not good.endswith("AA") else "BB"))
    assert fresh.get("/").status_code == 302
    fresh.set_cookie(SESSION_COOKIE, good)  # the untouched cookie works anywhere
    assert fresh.get("/").status_code == 200


def test_the_role_comes_from_the_configuration_at_each_request(store, database, clock):
    from dashboard.server import create_server

    app, client = make(store, database, clock)
    login(client, "bob", PASSWORDS["bob"])
    cookie = client.get_cookie(SESSION_COOKIE).value
    # the same key, bob now an editor: the old cookie sees the new role
    promoted = create_server(settings(database, users=[f"bob:editor:{HASHES['bob']}"]), sessions=store, clock=clock,
                             pages=False).test_client()
    promoted.set_cookie(SESSION_COOKIE, cookie)
    assert "editor" in promoted.get("/").text
    # bob removed, or given a new password: logged out
    for users in ([f"ann:editor:{HASHES['ann']}"], [f"bob:viewer:{hash_password('a-new-password')}"]):
        gone = create_server(settings(database, users=users), sessions=store, clock=clock, pages=False).test_client()
        gone.set_cookie(SESSION_COOKIE, cookie)
        assert gone.get("/").status_code == 302


def test_a_login_ends_after_session_hours(store, database, clock):
    _app, client = make(store, database, clock, session_hours=2)
    login(client, "ann", PASSWORDS["ann"])
    clock.now += timedelta(hours=1, minutes=59)
    assert client.get("/").status_code == 200
    clock.now += timedelta(minutes=2)
    assert client.get("/").status_code == 302


def test_totp_user_needs_the_current_code_once(store, database, clock):
    _app, client = make(store, database, clock, login_attempts=10)
    totp = pyotp.TOTP(TOTP)
    assert login(client, "tia", PASSWORDS["tia"]).status_code == 401  # no code
    assert login(client, "tia", PASSWORDS["tia"], code="000000" if totp.at(NOW) != "000000" else "111111"
                 ).status_code == 401
    assert login(client, "tia", "wrong-password", code=totp.at(NOW)).status_code == 401
    answer = login(client, "tia", PASSWORDS["tia"], code=totp.at(NOW))
    assert answer.status_code == 302 and client.get("/").status_code == 200
    other = _app.test_client()
    assert login(other, "tia", PASSWORDS["tia"], code=totp.at(NOW)).status_code == 401  # used already
    clock.now += timedelta(seconds=30)
    assert login(other, "tia", PASSWORDS["tia"], code=totp.at(clock.now - timedelta(seconds=30))).status_code == 401
    assert login(other, "tia", PASSWORDS["tia"], code=totp.at(clock.now)).status_code == 302


def test_failed_logins_are_limited_per_user_and_age_out(store, database, clock):
    _app, client = make(store, database, clock, login_attempts=3, login_window=600)
    for _ in range(3):
        assert login(client, "ann", "guess-guess").status_code == 401
    refused = login(client, "ann", PASSWORDS["ann"])  # even the right password, for now
    assert refused.status_code == 429 and "Too many failed logins. Try again in 10 minutes." in refused.text
    assert login(client, "bob", PASSWORDS["bob"]).status_code == 429  # the same client address
    clock.now += timedelta(seconds=601)
    assert login(client, "ann", PASSWORDS["ann"]).status_code == 302


def test_the_login_form_needs_its_token_and_returns_only_to_local_pages(store, database, clock):
    _app, client = make(store, database, clock)
    answer = client.post("/login", data={"username": "ann", "password": PASSWORDS["ann"]})
    assert answer.status_code == 400 and "expired" in answer.text
    answer = login(client, "ann", PASSWORDS["ann"], next_="//evil.example/")
    assert answer.headers["Location"] == "/"
    assert [safe_next(t) for t in ("https://evil.example/x", "/\\evil", "javascript:x", "/tls?a=1", None)] == [
        "/", "/", "/", "/tls?a=1", "/"]


# -- what stays outside the login --------------------------------------------------------------

def test_the_api_and_unsubscribe_links_keep_their_own_auth(store, database, clock):
    _app, client = make(store, database, clock)
    feed = client.get("/api/v1/suppressions?since=0", headers={"Authorization": f"Bearer {TOKEN}"})
    assert feed.status_code == 200 and feed.get_json() == {"changes": [], "next": 0}
    no_token = client.get("/api/v1/suppressions")
    assert no_token.status_code == 401 and "bearer token" in no_token.get_json()["error"]
    assert client.get("/unsubscribe/abcdefgh").status_code == 404  # the blueprint's answer, not a redirect
    assert client.post("/unsubscribe/abcdefgh", data={"List-Unsubscribe": "One-Click"}).status_code == 404
    login(client, "ann", PASSWORDS["ann"])  # a login is not a token
    assert client.get("/api/v1/suppressions").status_code == 401


# -- health and metrics -------------------------------------------------------------------------

def test_healthz_reports_each_part(store, database, clock):
    _app, client = make(store, database, clock, health={"scheduler": lambda: None})
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.get_json() == {"status": "ok", "checks": {"database": "ok", "scheduler": "ok"}}
    _app, client = make(store, database, clock, health={"smtp": lambda: "the smtp collector is not running"})
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.get_json()["checks"] == {"database": "ok", "smtp": "the smtp collector is not running"}


def _known_content(store) -> None:
    from ingest.envelope import Envelope
    from ingest.pipeline import Pipeline
    from store.alerts import raise_alert
    from store.checks import JobRun
    from store.suppressions import add_suppression, remove_suppression

    pipeline = Pipeline(store)
    two = postfix_dsn(recipients=(("a@example.net", "5.1.1", "550 5.1.1 User unknown"),
                                  ("b@example.net", "5.2.2", "552 5.2.2 Mailbox full")))
    for raw in (two, vacation_reply(), b"Subject: hi\n\nnothing to see\n", dmarc_xml()):
        pipeline.ingest(raw, Envelope("file"))
    with store.begin() as s:
        for job, seconds, error in (("rollups", 2.0, None), ("rollups", 4.0, None), ("alerts", 1.5, "boom")):
            s.add(JobRun(job=job, trigger="scheduler", started_at=NOW - timedelta(minutes=10),
                         finished_at=NOW - timedelta(minutes=10) + timedelta(seconds=seconds), error=error))
        s.add(JobRun(job="scores", trigger="scheduler", started_at=NOW))  # running: not counted
        for address in ("x@example.net", "y@example.net"):
            add_suppression(s, address, reason="userunknown", source="bounce", now=NOW)
        add_suppression(s, "m@example.net", reason="manual", source="manual", now=NOW)
        add_suppression(s, "gone@example.net", reason="manual", source="manual", now=NOW)
        remove_suppression(s, "gone@example.net", reason="asked", now=NOW)
        add_suppression(s, "old@example.net", reason="mailboxfull", source="bounce", now=NOW - timedelta(days=9),
                        expires_at=NOW - timedelta(days=1))
        raise_alert(s, rule="complaint_rate", dimension="all", key="", severity="warning", message="m", now=NOW)


def _samples(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def test_metrics_count_the_store(store, database, clock):
    _known_content(store)
    _app, client = make(store, database, clock)
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.content_type.startswith("text/plain; version=0.0.4")
    m = _samples(answer.text)
    assert m['postwatch_messages_received_total{kind="bounce",status="parsed"}'] == 1
    assert m['postwatch_messages_received_total{kind="auto_reply",status="ignored"}'] == 1
    assert m['postwatch_messages_received_total{kind="unknown",status="quarantined"}'] == 1
    assert m['postwatch_messages_received_total{kind="dmarc_aggregate",status="parsed"}'] == 1
    assert m["postwatch_quarantine_messages"] == 1
    assert m['postwatch_events_total{kind="bounce"}'] == 2
    assert m['postwatch_events_total{kind="complaint"}'] == 0
    assert m['postwatch_events_total{kind="dmarc_aggregate"}'] == 1
    assert m['postwatch_bounce_events_total{category="hygiene"}'] == 1
    assert m['postwatch_bounce_events_total{category="transient"}'] == 1
    assert m['postwatch_job_duration_seconds_count{job="rollups"}'] == 2
    assert m['postwatch_job_duration_seconds_sum{job="rollups"}'] == pytest.approx(6.0, abs=0.01)
    assert m['postwatch_job_runs_total{job="alerts",result="failed"}'] == 1
    assert m['postwatch_job_runs_total{job="rollups",result="ok"}'] == 2
    assert 'postwatch_job_duration_seconds_count{job="scores"}' not in m
    assert m['postwatch_job_last_duration_seconds{job="alerts"}'] == pytest.approx(1.5, abs=0.01)
    assert m['postwatch_job_last_success{job="alerts"}'] == 0
    assert m['postwatch_job_last_success{job="rollups"}'] == 1
    assert m['postwatch_job_last_finished_timestamp_seconds{job="rollups"}'] == pytest.approx(
        (NOW - timedelta(minutes=10) + timedelta(seconds=4)).timestamp(), abs=0.01)
    assert m['postwatch_suppressions{source="bounce"}'] == 2  # the expired one is not in force
    assert m['postwatch_suppressions{source="manual"}'] == 1  # nor the removed one
    assert m['postwatch_alerts_open{severity="warning"}'] == 1


# -- with the real pages ----------------------------------------------------------------------

def test_the_dashboard_pages_are_served_behind_the_login(store, database, clock):
    _app, client = make(store, database, clock, pages=True)
    assert client.get("/").status_code == 302
    assert client.get("/_dash-layout").status_code == 401
    assert client.get("/healthz").status_code == 200  # the pages' catch-all route takes none of these
    assert client.get("/api/v1/suppressions", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    login(client, "bob", PASSWORDS["bob"])
    page = client.get("/bounces")
    assert page.status_code == 200 and "_dash-renderer" in page.text
    assert client.get("/_dash-layout").status_code == 200
    assert client.get("/_dash-dependencies").status_code == 200
