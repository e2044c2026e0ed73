"""Open and click tracking in the mail the sender composes.

With tracking on for a campaign, the HTML part of each message gets a 1x1 pixel
`BASE/t/o/TOKEN` and each of its http(s) links goes through `BASE/t/c/TOKEN/INDEX`: TOKEN is
`ingest.verp.make_token(send_id, web.secret, purpose="track")` (the unsubscribe token's key,
another purpose, so neither is accepted for the other), INDEX the link's place in the
campaign's link list (store.engagement.TrackedCampaign), which the web server redirects to
and nothing else. The unsubscribe link, mailto:, tel: and #anchors are never rewritten; the
text part is left as it is (a rewritten link there is one a reader cannot check).

The link list is made before anything is sent, from every row's rendered HTML (the run
renders every row first anyway), so that INDEX is known when a message is composed.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ingest import verp

PURPOSE = "track"
OPEN_PATH, CLICK_PATH = "/t/o/", "/t/c/"
# an http(s) href of an HTML part: one pattern for compose.tag_links and the link list, so the
# links the sender tags with UTM are the ones the list holds
HREF = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"']+)\2""", re.I)
_BODY_END = re.compile(r"</body\s*>", re.I)


@dataclass(frozen=True)
class Tracking:
    """What a campaign's messages are tracked with: opens, clicks, and its link list."""

    base_url: str
    secret: str
    opens: bool = True
    clicks: bool = True
    links: Mapping[str, int] = field(default_factory=dict)  # url (as sent, UTM included) -> INDEX

    def urls(self, send_id: int) -> tuple[str, str]:
        """(the pixel's URL, the click URLs' prefix: INDEX follows) of send `send_id`."""
        token = verp.make_token(send_id, self.secret, purpose=PURPOSE)
        base = self.base_url.rstrip("/")
        return f"{base}{OPEN_PATH}{token}", f"{base}{CLICK_PATH}{token}/"

    def skipped(self, url: str) -> bool:
        """Links of our own unsubscribe and tracking endpoints are never rewritten."""
        base = self.base_url.rstrip("/")
        return any(url.startswith(base + p) for p in ("/unsubscribe/", "/t/"))


def html_links(body: str | None) -> list[str]:
    """The http(s) hrefs of an HTML part, unescaped, in order (repeats kept)."""
    if not body:
        return []
    return [html.unescape(m.group(3)) for m in HREF.finditer(body)]


def campaign_links(bodies: Iterable[str | None], tracking: Tracking) -> list[str]:
    """The distinct links of a campaign's rendered HTML parts, in order of first appearance."""
    seen: dict[str, None] = {}
    for body in bodies:
        for url in html_links(body):
            if not tracking.skipped(url):
                seen.setdefault(url, None)
    return list(seen)


def track_html(body: str, send_id: int, tracking: Tracking) -> str:
    """`body` with its links rewritten (clicks) and the pixel added (opens). A link missing from
    the link list (the unsubscribe link never is in it) stays as it is."""
    pixel_url, click_prefix = tracking.urls(send_id)
    if tracking.clicks and tracking.links:
        def rewrite(match: re.Match) -> str:
            url = html.unescape(match.group(3))
            index = tracking.links.get(url)
            if index is None or tracking.skipped(url):
                return match.group(0)
            return f"{match.group(1)}{match.group(2)}{html.escape(f'{click_prefix}{index}')}{match.group(2)}"

        body = HREF.sub(rewrite, body)
    if tracking.opens:
        pixel = (f'<img src="{html.escape(pixel_url)}" width="1" height="1" alt="" '
                 'style="display:block;width:1px;height:1px;border:0">')
        ends = list(_BODY_END.finditer(body))
        if ends:
            at = ends[-1].start()
            body = body[:at] + pixel + body[at:]
        else:
            body += pixel
    return body
