"""The SMTP collector's fast path (commands answered in data_received, DATA read in blocks)
against its edges: bytes arriving one at a time, a pipelined session in one packet, the
hand-over to aiosmtpd's loop in the middle of a session, and a message over the size limit
arriving in pieces."""
from __future__ import annotations

import time

from tests.ingest.collectors.test_smtp import dialog, server  # noqa: F401  (the fixture)

BODY = b"Subject: dots\r\n\r\n.leading\r\n..two\r\n.\r\nend.\r\n.\r\n"  # the lines ".x", "..x", "." stuffed
STUFFED = BODY.replace(b"\r\n.", b"\r\n..")


def _replies(out: bytes) -> list[bytes]:
    return [line[:3] for line in out.split(b"\r\n") if line and line[3:4] != b"-"]


def test_a_session_sent_one_byte_at_a_time_is_read_whole(server):  # noqa: F811
    s = server.raw()
    session = (b"HELO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<fbl@example.com>\r\nDATA\r\n"
               + b".." + STUFFED + b".\r\nQUIT\r\n")  # the first line is ".Subject..."
    for i in range(len(session)):
        s.sendall(session[i:i + 1])
        if i % 7 == 0:
            time.sleep(0.001)
    out = dialog(s, b"", wait=0.5)
    assert _replies(out) == [b"250", b"250", b"250", b"354", b"250", b"221"]
    [path] = server.spool.pending()
    assert server.spool.read(path).raw == b"." + BODY  # the leading stuffed dot is undone too
    s.close()


def test_a_whole_pipelined_session_in_one_packet(server):  # noqa: F811
    s = server.raw()
    one = b"MAIL FROM:<a@example.net>\r\nRCPT TO:<fbl@example.com>\r\nDATA\r\n" + STUFFED + b".\r\n"
    out = dialog(s, b"EHLO x\r\n" + one + b"RSET\r\nNOOP\r\n" + one + b"QUIT\r\n", wait=0.5)
    assert _replies(out) == [b"250"] + [b"250", b"250", b"354", b"250", b"250", b"250"] + [b"250", b"250", b"354", b"250", b"221"]
    raws = [server.spool.read(p).raw for p in server.spool.pending()]
    assert raws == [BODY, BODY]


def test_commands_the_fast_path_leaves_to_aiosmtpd_keep_the_session_going(server):  # noqa: F811
    s = server.raw()
    # MAIL with a parameter, a bare LF, an unknown command: aiosmtpd's loop from there on
    out = dialog(s, b"EHLO x\r\nMAIL FROM:<a@example.net> SIZE=100\r\nRCPT TO:<fbl@example.com>\nXYZZY\r\n"
                    b"DATA\r\n" + STUFFED + b".\r\nMAIL FROM:<b@example.net>\r\nRCPT TO:<a@example.com>\r\nQUIT\r\n")
    assert _replies(out) == [b"250", b"250", b"250", b"500", b"354", b"250", b"250", b"550", b"221"]
    [path] = server.spool.pending()
    assert server.spool.read(path).raw == BODY


def test_a_message_over_the_limit_in_pieces_gets_552_and_the_next_one_is_taken(server):  # noqa: F811
    s = server.raw()
    dialog(s, b"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<fbl@example.com>\r\nDATA\r\n")
    for _ in range(30):  # 30 x 5000 bytes against a limit of 100,000; the end split over two sends
        s.sendall(b"x" * 4998 + b"\r\n")
    s.sendall(b"\r")
    time.sleep(0.05)
    out = dialog(s, b"\n.\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<fbl@example.com>\r\nDATA\r\nsmall\r\n.\r\n")
    assert _replies(out) == [b"552", b"250", b"250", b"354", b"250"]
    [path] = server.spool.pending()
    assert server.spool.read(path).raw == b"small\r\n"


def test_a_message_of_exactly_the_limit_is_taken(server):  # noqa: F811
    body = b"y" * (100_000 - 2) + b"\r\n"
    s = server.raw()
    out = dialog(s, b"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<fbl@example.com>\r\nDATA\r\n" + body + b".\r\n")
    assert _replies(out)[-1] == b"250"
    [path] = server.spool.pending()
    assert server.spool.read(path).raw == body
    out = dialog(s, b"MAIL FROM:<a@example.net>\r\nRCPT TO:<fbl@example.com>\r\nDATA\r\n" + b"y" + body + b".\r\n")
    assert _replies(out)[-1] == b"552"
