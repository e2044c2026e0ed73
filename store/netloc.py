"""HOST:PORT, the one reader and writer of it for every listen address, smarthost and server.

IPv6 literals are written in brackets (`[::1]:2525`, RFC 3986's authority form); a bare IPv6
address with no port (`::1`) is read as a host. Used by the collectors, the web server, the
sender's smarthost, alert mail and the DNS resolver settings.
"""
from __future__ import annotations


class HostPortError(ValueError):
    """Not HOST:PORT; the message names the setting and says what is wrong."""


def parse_hostport(text: str, default_port: int | None = None, key: str = "") -> tuple[str, int]:
    """`(host, port)` from `host:port`, `[v6]:port`, or a bare host when `default_port` is given.

    The host comes back without brackets and may be "" (`:2525`: the caller picks its default
    host). Raises `HostPortError`, naming `key` (the configuration key) when given.
    """
    where = f" ({key})" if key else ""
    value = (text or "").strip()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or not host:
            raise HostPortError(f"{text!r} is not HOST:PORT{where}: an IPv6 address is written [ADDRESS]:PORT")
        if rest and not rest.startswith(":"):
            raise HostPortError(f"{text!r} is not HOST:PORT{where}: unexpected {rest!r} after ']'")
        port = rest[1:] if rest else ""
    elif value.count(":") > 1:  # a bare IPv6 address: no port can follow without brackets
        host, port = value, ""
    else:
        host, sep, port = value.rpartition(":")
        if not sep:
            host, port = value, ""
        elif not port:
            raise HostPortError(f"{text!r} is not HOST:PORT{where}: the port is missing after ':'")
    if not port:
        if default_port is None:
            raise HostPortError(f"{text!r} is not HOST:PORT{where}: no port")
        if not host:
            raise HostPortError(f"{text!r} is not HOST:PORT{where}: no host")
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise HostPortError(f"{text!r} is not HOST:PORT{where}: {port!r} is not a port (1-65535)")
    return host, int(port)


def format_hostport(host: str, port: int) -> str:
    """The inverse of `parse_hostport`: an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
