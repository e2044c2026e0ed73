"""RFC 3834 automatic replies (vacation, out-of-office): recognised, then ignored."""
from __future__ import annotations

import email.message
import re

SUBJECT = re.compile(r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|vacation|"
                     r"abwesenheit|absence|r[ée]ponse automatique|autosvar)", re.I)


def is_auto_reply(msg: email.message.Message) -> bool:
    auto = (msg.get("Auto-Submitted") or "").strip().lower()
    if auto.startswith("auto-replied"):
        return True
    if any(msg.get(h) is not None for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress-Reply")):
        return True
    if (msg.get("Precedence") or "").strip().lower() == "auto_reply":
        return True
    return bool(SUBJECT.match(str(msg.get("Subject") or "")))
