"""store.netloc: the one HOST:PORT reader, IPv6 in brackets."""
from __future__ import annotations

import pytest

from store.netloc import HostPortError, format_hostport, parse_hostport


@pytest.mark.parametrize("text,default,expected", [
    ("127.0.0.1:2525", None, ("127.0.0.1", 2525)),
    ("mail.example.org:587", None, ("mail.example.org", 587)),
    ("[::1]:2525", None, ("::1", 2525)),
    ("[2001:db8::25]:25", None, ("2001:db8::25", 25)),
    (" [::1]:53 ", None, ("::1", 53)),
    (":8025", None, ("", 8025)),
    ("mail.example.org", 25, ("mail.example.org", 25)),
    ("::1", 53, ("::1", 53)),
    ("2001:db8::53", 53, ("2001:db8::53", 53)),
    ("[::1]", 53, ("::1", 53)),
])
def test_reads(text, default, expected):
    assert parse_hostport(text, default) == expected


@pytest.mark.parametrize("text,default,words", [
    ("mail.example.org", None, "no port"),
    ("host:", 25, "port is missing"),
    ("host:0", None, "not a port"),
    ("host:65536", None, "not a port"),
    ("host:smtp", None, "not a port"),
    ("[::1", None, "[ADDRESS]:PORT"),
    ("[::1]x25", None, "after ']'"),
    ("", 25, "no host"),
    ("::1", None, "no port"),
])
def test_refuses_with_a_reason_naming_the_key(text, default, words):
    with pytest.raises(HostPortError) as caught:
        parse_hostport(text, default, key="web.listen")
    assert words in str(caught.value) and "(web.listen)" in str(caught.value)


@pytest.mark.parametrize("host,port", [("127.0.0.1", 25), ("::1", 2525), ("mx.example.org", 587)])
def test_format_is_read_back(host, port):
    assert parse_hostport(format_hostport(host, port)) == (host, port)


def test_format_brackets_ipv6_only():
    assert format_hostport("::1", 25) == "[::1]:25"
    assert format_hostport("10.0.0.1", 25) == "10.0.0.1:25"
