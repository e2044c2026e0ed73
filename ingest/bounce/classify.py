"""A first classifier: the status code alone."""
from __future__ import annotations

CATEGORY = {
    "userunknown": "hygiene", "hostunknown": "hygiene", "hasmoved": "hygiene", "notaccept": "hygiene",
    "suspend": "hygiene", "suppressed": "hygiene",
    "mailboxfull": "transient", "systemfull": "transient", "expired": "transient",
    "networkerror": "transient", "systemerror": "transient", "mailererror": "transient",
    "syntaxerror": "transient",
    "blocked": "reputation", "badreputation": "reputation", "requireptr": "reputation",
    "authfailure": "reputation", "toomanyconn": "reputation", "speeding": "reputation",
    "spamdetected": "content", "virusdetected": "content", "contenterror": "content",
    "mesgtoobig": "content", "exceedlimit": "content", "notcompliantrfc": "content",
    "policyviolation": "policy", "filtered": "policy", "securityerror": "policy",
    "failedstarttls": "policy", "norelaying": "policy", "rejected": "policy",
    "undefined": "unknown", "onhold": "unknown",
    "delivered": "delivered", "vacation": "auto_reply",
}
BY_STATUS = {
    "5.1.1": "userunknown", "5.1.2": "hostunknown", "5.1.6": "hasmoved", "5.2.1": "suspend",
    "5.2.2": "mailboxfull", "4.2.2": "mailboxfull", "5.2.3": "exceedlimit", "5.3.4": "mesgtoobig",
    "4.4.7": "expired", "5.4.7": "expired", "5.7.1": "rejected",
}


def classify(event: dict) -> dict:
    status = event.get("status") or ""
    reason = BY_STATUS.get(status, "undefined")
    if event.get("action") == "delivered":
        reason = "delivered"
    hard = reason in ("userunknown", "hostunknown", "hasmoved") or (
        reason == "notaccept" and status.startswith("5"))
    return {"reason": reason, "hard_bounce": hard, "category": CATEGORY[reason], "rule": f"status {status}"}
