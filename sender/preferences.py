"""The preference centre behind the unsubscribe link: leave a topic, pause for a while, get
fewer messages, or leave altogether.

Every choice is a suppression (store/suppressions.py), so the change log, the feed and the
sender's index see it like any other:

    leave topic NAME           scope topic:NAME, for good (ticking it again removes it)
    pause for N days           the unsubscribe scope (global, or domain:<sending domain>), reason
                               `pause`, expiring after N days: it lapses by itself
    one message every N days   scope frequency:<N>d, for good; a limit, not a block: the sender
                               skips the recipient while the send log has a message to them less
                               than N days old (any other frequency:* row is removed first)
    unsubscribe from all       the unsubscribe scope, for good (as RFC 8058 one-click)

The signed token in the URL (sender/unsubscribe.py) is the only credential: the page sets no
cookie and reads none, so a forged cross-site form has nothing to ride on, and a GET never
changes anything (link scanners fetch every link).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy.orm import Session

from sender.config import PreferencesConfig
from sender.unsubscribe import Request
from store.suppressions import (FREQUENCY, GLOBAL, TOPIC, add_suppression, frequency_days, remove_suppression,
                                suppressions_of)
from store.timeparse import utc

PAUSE = "pause"
METHOD = "preferences"  # in the details of every suppression the page adds
CHOICES = ("topics", "pause", "frequency")


class ChoiceError(ValueError):
    """A form that asks for something the page does not offer."""


@dataclass
class State:
    """What the recipient chose so far, as the page shows it."""

    unsubscribed: bool = False  # a permanent suppression in the unsubscribe scope (or global)
    paused_until: datetime | None = None
    left_topics: set[str] = field(default_factory=set)
    frequency: int | None = None  # at most one message every N days


def state(session: Session, req: Request, *, now: datetime, salt: str = "") -> State:
    out = State()
    for row in suppressions_of(session, req.recipient, now=now, salt=salt):
        if row.scope in (req.scope, GLOBAL):
            if row.expires_at is None:
                out.unsubscribed = True
            elif row.reason == PAUSE:
                out.paused_until = max(filter(None, (out.paused_until, utc(row.expires_at))))
        elif row.scope.startswith(TOPIC):
            out.left_topics.add(row.scope[len(TOPIC):])
        elif (days := frequency_days(row.scope)) is not None:
            out.frequency = max(days, out.frequency or 0)
    return out


def choose(session: Session, req: Request, prefs: PreferencesConfig, choice: str, *, topics: Iterable[str] = (),
           days: str = "", now: datetime, salt: str = "") -> str:
    """Store one choice of the page's forms; returns the sentence the page shows. Raises
    ChoiceError for a choice or a value the configuration does not offer."""
    if choice == "topics":
        return _topics(session, req, prefs, set(topics), now, salt)
    try:
        n = int(days)
    except ValueError:
        raise ChoiceError(f"{days!r} is not a number of days") from None
    if choice == "pause":
        if n not in prefs.pauses():
            raise ChoiceError(f"a pause of {n} days is not offered")
        until = utc(now) + timedelta(days=n)
        add_suppression(session, req.recipient, reason=PAUSE, source="unsubscribe", now=now, scope=req.scope,
                        expires_at=until, event_table="send_log", event_id=req.send_id,
                        details=req.details(METHOD, days=n))
        return f"Paused: no mail until {until:%d %B %Y}."
    if choice == "frequency":
        if n and n not in prefs.frequencies():
            raise ChoiceError(f"one message every {n} days is not offered")
        for row in suppressions_of(session, req.recipient, now=now, salt=salt):
            if row.scope.startswith(FREQUENCY) and row.scope != f"{FREQUENCY}{n}d":
                remove_suppression(session, row.shown_address, reason="preference changed", now=now, scope=row.scope)
        if not n:
            return "Saved: you get every message again."
        add_suppression(session, req.recipient, reason="frequency", source="unsubscribe", now=now,
                        scope=f"{FREQUENCY}{n}d", event_table="send_log", event_id=req.send_id,
                        details=req.details(METHOD, days=n))
        return f"Saved: at most one message every {n} days."
    raise ChoiceError(f"{choice!r} is not one of the page's choices")


def _topics(session: Session, req: Request, prefs: PreferencesConfig, kept: set[str], now: datetime,
            salt: str) -> str:
    offered = prefs.topic_names()
    if not offered:
        raise ChoiceError("no topics are offered")
    unknown = kept - set(offered)
    if unknown:
        raise ChoiceError(f"{sorted(unknown)[0]!r} is not one of the topics")
    left = state(session, req, now=now, salt=salt).left_topics
    for name in offered:
        scope = TOPIC + name
        if name not in kept and name not in left:
            add_suppression(session, req.recipient, reason="topic", source="unsubscribe", now=now, scope=scope,
                            event_table="send_log", event_id=req.send_id, details=req.details(METHOD))
        elif name in kept and name in left:
            remove_suppression(session, req.recipient, reason="topic chosen again", now=now, scope=scope)
    return "Saved: your topics are updated."


# The page: plain HTML, one form per choice, no script. The button of the last form posts
# List-Unsubscribe=One-Click, exactly what RFC 8058 clients post.
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>{{ title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}
fieldset{border:1px solid #ccc;border-radius:.4rem;margin:1rem 0;padding:.8rem 1rem}
legend{font-weight:600}label{display:block;margin:.3rem 0}
button{font-size:1rem;padding:.5rem 1rem;margin:.3rem .3rem 0 0;cursor:pointer}
.notice{background:#eef7ee;border-left:4px solid #3a3;padding:.5rem .8rem}</style></head>
<body><h1>{{ title }}</h1><p>Mail to {{ who }}.</p>
{% if notice %}<p class="notice" id="notice" role="status">{{ notice }}</p>{% endif %}
{% if topics %}<form method="post" id="topics-form"><input type="hidden" name="choice" value="topics">
<fieldset><legend>Topics you receive</legend>
{% for name, label, on in topics %}<label><input type="checkbox" name="topic" value="{{ name }}"
 id="topic-{{ name }}"{% if on %} checked{% endif %}> {{ label }}</label>
{% endfor %}<button type="submit" id="save-topics">Save topics</button></fieldset></form>{% endif %}
{% if pauses %}<form method="post" id="pause-form"><input type="hidden" name="choice" value="pause">
<fieldset><legend>Take a break</legend>
{% if paused_until %}<p id="paused">Paused until {{ paused_until }}.</p>{% endif %}
{% for d in pauses %}<button type="submit" name="days" value="{{ d }}" id="pause-{{ d }}">Pause for {{ d }} days</button>
{% endfor %}</fieldset></form>{% endif %}
{% if frequencies %}<form method="post" id="frequency-form"><input type="hidden" name="choice" value="frequency">
<fieldset><legend>Fewer messages</legend>
<label><input type="radio" name="days" value="0" id="every-0"{% if not frequency %} checked{% endif %}>
 Every message</label>
{% for d in frequencies %}<label><input type="radio" name="days" value="{{ d }}" id="every-{{ d }}"
{% if frequency == d %} checked{% endif %}> At most one message every {{ d }} days</label>
{% endfor %}<button type="submit" id="save-frequency">Save</button></fieldset></form>{% endif %}
<fieldset><legend>Leave</legend><p>Stop all mail{{ sender }} to {{ who }}.</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit" id="unsubscribe-all">Unsubscribe from all</button></form></fieldset>
</body></html>
"""


def page_values(s: State, prefs: PreferencesConfig) -> dict:
    """The template's values for a recipient still subscribed somewhere."""
    return {"topics": [(name, label, name not in s.left_topics) for name, label in prefs.topic_labels()],
            "pauses": prefs.pauses(), "frequencies": prefs.frequencies(), "frequency": s.frequency,
            "paused_until": f"{s.paused_until:%d %B %Y}" if s.paused_until else ""}
