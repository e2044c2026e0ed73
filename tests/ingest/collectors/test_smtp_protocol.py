"""The SMTP protocol's pieces: the one DATA reader (both session paths read through it), the
listen address, and what the log shows of the envelope."""
from __future__ import annotations

import logging
import random
from dataclasses import replace

import pytest

from ingest.collectors import smtp_protocol
from ingest.collectors.smtp import bracketed, parse_listen
from ingest.collectors.smtp_protocol import DataReader
from store.netloc import HostPortError
from tests.ingest.collectors.test_smtp import FAST, Running, dialog, server  # noqa: F401  (the fixture)

MESSAGE = b"Subject: dots\r\n\r\n.leading\r\n..two\r\n.\r\nend.\r\nbare\n.\nLF\r\n"
STUFFED = MESSAGE.replace(b"\r\n.", b"\r\n..")
WIRE = b"." + STUFFED + b".\r\nMAIL FROM:<a@example.net>\r\n"  # a first line starting with a dot


def _read(blocks, limit=None) -> DataReader:
    reader = DataReader(limit)
    for i, block in enumerate(blocks):
        if reader.feed(block):
            assert i == len(blocks) - 1, "ended before its end"
            return reader
    raise AssertionError("never ended")


def test_the_data_reader_reads_a_message_split_anywhere():
    whole = _read([WIRE])
    assert whole.content() == MESSAGE and whole.rest == b"MAIL FROM:<a@example.net>\r\n"
    end = len(WIRE) - len(whole.rest)
    for cut in range(1, end):
        two = _read([WIRE[:cut], WIRE[cut:]])
        assert (two.content(), two.rest) == (MESSAGE, whole.rest), cut
    rng = random.Random(5)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, end), rng.randint(1, 12)))
        blocks = [WIRE[a:b] for a, b in zip([0] + cuts, cuts + [len(WIRE)])]
        assert _read(blocks).content() == MESSAGE


def test_the_data_reader_ends_only_at_crlf_dot_crlf():
    assert _read([b".\r\n"]).content() == b""  # the empty message, right after DATA's CRLF
    reader = DataReader(None)
    assert not reader.feed(b"a\n.\nb\r.\r\nc.\r\n")
    assert reader.feed(b".\r\n") and reader.content() == b"a\n.\nb\r.\r\nc.\r\n"


def test_the_data_reader_limits_the_message_and_keeps_only_a_tail():
    body = b"y" * 98 + b"\r\n"
    assert _read([body + b".\r\n"], limit=100).content() == body  # exactly the limit
    reader = DataReader(100)
    for _ in range(1000):
        assert not reader.feed(b"x" * 998 + b"\r\n")
    assert reader.too_big and len(reader.data) <= 4  # a megabyte in, a few bytes kept
    assert reader.feed(b".\r\nQUIT\r\n")
    assert reader.content() is None and reader.rest == b"QUIT\r\n"


def test_both_session_paths_read_data_through_the_one_reader(server, monkeypatch):  # noqa: F811
    fed = []

    class Counting(DataReader):
        __slots__ = ()

        def feed(self, block):
            done = super().feed(block)
            if done:
                fed.append(self.content())
            return done

    monkeypatch.setattr(smtp_protocol, "DataReader", Counting)
    s = server.raw()
    # the first message on the fast path; MAIL with a parameter hands the session to aiosmtpd's loop
    out = dialog(s, b"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<fbl@example.com>\r\nDATA\r\n" + WIRE
                 + b"RCPT TO:<fbl@example.com>\r\nDATA\r\n" + STUFFED + b".\r\n"
                 + b"MAIL FROM:<a@example.net> BODY=8BITMIME\r\nRCPT TO:<fbl@example.com>\r\nDATA\r\n"
                 + STUFFED + b".\r\nQUIT\r\n", wait=0.5)
    assert out.count(b"250 2.0.0 OK queued") == 3, out
    assert fed == [MESSAGE, MESSAGE, MESSAGE]
    assert [server.spool.read(p).raw for p in server.spool.pending()] == [MESSAGE, MESSAGE, MESSAGE]


# -- the log ---------------------------------------------------------------------------------

def test_the_log_shows_the_null_sender_as_angle_brackets(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="ingest.collectors.smtp")
    srv = Running(tmp_path, replace(FAST, messages_per_minute=2))
    try:
        s = srv.raw()
        one = b"RCPT TO:<fbl@example.com>\r\nDATA\r\nSubject: dsn\r\n\r\nx\r\n.\r\n"
        out = dialog(s, b"EHLO x\r\nMAIL FROM:<>\r\n" + one  # the fast path
                     + b"MAIL FROM:<> BODY=8BITMIME\r\n" + one  # aiosmtpd's path
                     + b"MAIL FROM:<>\r\n", wait=0.5)  # over messages_per_minute
        assert out.count(b"250 2.0.0 OK queued") == 2 and b"421 4.7.0" in out, out
    finally:
        srv.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "ingest.collectors.smtp"]
    assert len([line for line in lines if "accepted" in line and " from <> for <fbl@example.com>" in line]) == 2, lines
    assert any("refused MAIL FROM <>: " in line for line in lines), lines
    assert not any("<<>>" in line for line in lines), lines


def test_the_log_of_a_message_too_big_names_its_sender(server, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="ingest.collectors.smtp")
    s = server.raw()
    out = dialog(s, b"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<fbl@example.com>\r\nDATA\r\n"
                 + b"x" * 100_001 + b"\r\n.\r\n")
    assert out.endswith(b"552 5.3.4 Message too big (the limit is 100000 bytes)\r\n"), out[-200:]
    assert any("refused a message over 100000 bytes from <a@example.net>" in r.getMessage()
               for r in caplog.records), caplog.text


def test_bracketed():
    assert bracketed("<>") == "<>" and bracketed("") == "<>" and bracketed(None) == "<>"
    assert bracketed("a@example.net") == "<a@example.net>"


# -- the listen address ----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:2525", ("127.0.0.1", 2525)), (" 127.0.0.1:25 ", ("127.0.0.1", 25)),
    ("[::1]:2525", ("::1", 2525)), ("[::]:25", ("::", 25)), (":25", ("0.0.0.0", 25)),
    ("mx.example.com:2525", ("mx.example.com", 2525)),
])
def test_listen_addresses(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text, why", [
    ("localhost", "no port"), ("127.0.0.1:", "the port is missing"), ("127.0.0.1:99999", "is not a port"),
    ("::1", "no port"), ("[::1]2525", "unexpected"), ("127.0.0.1:smtp", "is not a port"),
])
def test_listen_addresses_that_are_not_host_port_say_why(text, why):
    with pytest.raises(HostPortError) as caught:
        parse_listen(text)
    message = str(caught.value)
    assert message.startswith(f"smtp.listen {text!r} is not HOST:PORT (for example 127.0.0.1:2525): "), message
    assert why in message
    assert isinstance(caught.value, ValueError)  # what the service catches
