"""ingest.attribution reads a From address the way email.utils.getaddresses does."""
import itertools
import random
from email.utils import getaddresses

from ingest.attribution import first_address
from ingest.message import header_text, load_message
from tests.conftest import CORPUS, SAMPLES

EDGES = [
    "", " ", "a@b", "<a@b>", " <a@b.example> ", "Name <a@b.example>", '"Doe, John" <j.doe@x.example>',
    "John Q. Public <jqp@x.example>", ".John <a@b>", "John. <a@b>", "a@b <c@d>", "a@b, c@d", "<a@b> tail",
    "Name <a..b@x>", "Name <.a@x>", "Name <a.@x>", "Name <a@x.>", "Name <a@.x>", "Name < a@x >", "a @ b",
    "(comment) a@b", "a@b (comment)", "Name (c) <a@b>", '"q\\"uote" <a@b>', '"unterminated <a@b>',
    "group: a@b;", "undisclosed-recipients:;", "Name <a@[1.2.3.4]>", "Nom É <é@x.example>", "a@b\t",
    "Name\t<a@b>", "<<a@b>>", "Name <a@b", "a@@b", "@b", "a@", "Name <\"a b\"@x>", "x <a@b> <c@d>",
]


def from_values():
    values = list(EDGES)
    for folder in (CORPUS, SAMPLES):
        for path in sorted(folder.rglob("*.eml")):
            msg = load_message(path.read_bytes())
            for part in msg.walk():
                value = header_text(part, "From")
                if value:
                    values.append(value)
    return values


def test_first_address_is_what_getaddresses_finds_first():
    values = from_values()
    pieces = ['"x y"', "x", " ", ".", "<", ">", "a@b.c", "@", ",", ";", ":", "(", ")", "\\", '"', "é", "\t"]
    rng = random.Random(7)
    values += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 7))) for _ in range(20000)]
    values += ["".join(p) for p in itertools.product(["", "N ", '"N" '], ["<a@b.c>", "a@b.c"], ["", " ", "x"])]
    for value in values:
        want = [a for _, a in getaddresses([value]) if "@" in a]
        assert first_address(value) == (want[0] if want else None), value
