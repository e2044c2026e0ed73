"""The bounce markers' faster searches find what the plain patterns find."""
import random
import re

import pytest

from ingest.bounce.markers import RETURNED_MESSAGE, LineStartPattern
from ingest.message import load_message, part_text
from tests.conftest import CORPUS, SAMPLES

TEXTS = [
    "",
    "Return-Path: <a@b.example>\n",
    "no marker here\nat all",
    "intro\n\n\nMessage Hops\nx",  # \s* reaches back over the blank lines
    "intro\n------ This is a copy of the message, including all the headers. ------\nFrom: a",
    "intro\n---------\n\nFrom: a@b\n",  # EZweb's dashes, a blank line, then a header
    "a\r\nReceived: from x by y\r\n",
    "x\n+++ MailMarshal\n",
    "first\n  Below is a copy of the original message:\n",
]


def corpus_texts():
    texts = []
    for folder in (CORPUS / "sisimai", SAMPLES / "bounces"):
        for path in sorted(folder.glob("*.eml"))[:150] if folder.is_dir() else ():
            msg = load_message(path.read_bytes())
            texts.extend(part_text(p) for p in msg.walk() if not p.is_multipart())
    return texts


@pytest.mark.parametrize("alternatives", [RETURNED_MESSAGE.anchored.pattern[4:-1], r"b|\s*c$", r"[ \t]*x"])
def test_line_start_search_finds_what_the_anchored_pattern_finds(alternatives):
    fast = LineStartPattern(alternatives, re.I)
    plain = re.compile(f"^(?:{alternatives})", re.M | re.I)
    for text in TEXTS + corpus_texts() + ["b", "a\nb", "\nb", "xb\nb", "c\n\nc", "x\n\n\nc"]:
        for pos, endpos in ((0, len(text)), (1, len(text)), (3, len(text) - 1), (-2, len(text) + 5)):
            want = plain.search(text, pos, endpos)
            got = fast.search(text, pos, endpos)
            assert (got and (got.span(), got.group(0))) == (want and (want.span(), want.group(0))), (text, pos)


def test_the_phrase_before_an_address_matches_as_the_plain_alternation():
    from ingest.bounce.markers import PHRASE_BEFORE, PHRASES_BEFORE

    plain = re.compile(r"(?:" + "|".join(PHRASES_BEFORE) + r")['\"]?<?$", re.I)
    assert PHRASE_BEFORE.pattern != plain.pattern
    words = ["to", "sent", "mail", "your", "the following", "recipient:", "delivery failed", ":", " ", "x", "<",
             '"', "rcpt to:", "unknown user", "Final-Recipient: rfc822; ", "Adresse:", "\n", "was addressed,",
             "non-existent", "é", "-", "_"]
    rng = random.Random(3)
    texts = ["".join(rng.choice(words) for _ in range(rng.randint(1, 9))) for _ in range(30000)]
    texts += [line for text in corpus_texts() for line in text.splitlines()]
    for text in texts:
        want, got = plain.search(text), PHRASE_BEFORE.search(text)
        assert (got and got.span()) == (want and want.span()), text
