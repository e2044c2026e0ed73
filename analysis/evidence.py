"""When a rate can be believed: a rate decides a grade or an alert only when its count can carry it.

A day with 1 complaint in 200 sends has a complaint rate of 0.5 % — past Gmail's 0.3 % line —
but one more or one fewer complaint changes everything: the rate says little. A rate
*passes* a line when

    rate >= line  and  count >= min_events
                  and  (count >= min_count  or  wilson_low(count, total, z) >= line)

that is, when there are enough events for the rate to mean something, or when even the lower
end of its Wilson score interval (z = 1.96: 95 % two-sided) is past the line — and never on
fewer than `min_events` (3): one or two complaints are not an episode, whatever the
denominator. A rate that is past the line without passing it is "too few to say", and is
shown as such.
"""
from __future__ import annotations

import math


def wilson_low(count: float, total: float, z: float = 1.96) -> float:
    """The lower bound of the Wilson score interval of count/total (0 when total is 0)."""
    if total <= 0:
        return 0.0
    p = min(max(count / total, 0.0), 1.0)
    z2 = z * z
    centre = p + z2 / (2 * total)
    spread = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return max(0.0, (centre - spread) / (1 + z2 / total))


def carried(count: float, total: float, min_count: int, z: float, min_events: int = 3) -> float:
    """The rate the counts can carry: the rate itself with at least `min_count` events, else
    the lower end of its Wilson interval; nothing under `min_events` events."""
    if total <= 0 or count < min_events:
        return 0.0
    return count / total if count >= min_count else wilson_low(count, total, z)


def passes(count: float, total: float, line: float, min_count: int, z: float, min_events: int = 3) -> bool:
    """Whether count/total is at or past `line` and its counts can carry it (module docstring)."""
    return total > 0 and count / total >= line and carried(count, total, min_count, z, min_events) >= line


def complaint_base(sent: float, sent_fbl: float) -> tuple[float, str]:
    """The complaint rate's denominator and its name: the sends to providers that send a
    complaint report per complaint (`sent.fbl`: Yahoo, Microsoft, Comcast ... — Gmail and Apple
    send none, so their mail cannot complain), or all sends when none went to such a provider."""
    if sent_fbl > 0:
        return sent_fbl, "sent.fbl"
    return sent, "sent"
