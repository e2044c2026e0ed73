"""postwatch.serving's reading of a listen address (web.listen, --listen)."""
from __future__ import annotations

import pytest

from postwatch.serving import ServeError, split_listen


def test_a_listen_address_is_host_port_with_ipv6_in_brackets():
    assert split_listen("127.0.0.1:8050") == ("127.0.0.1", 8050)
    assert split_listen("[::1]:8050") == ("::1", 8050)
    assert split_listen(":8050") == ("0.0.0.0", 8050)  # every address
    for bad in ("nowhere", "::1:8050", "[::1]", "127.0.0.1:0", "127.0.0.1:http"):
        with pytest.raises(ServeError, match=r"is not HOST:PORT \(web\.listen, or --listen\)"):
            split_listen(bad)
    with pytest.raises(ServeError, match=r"\(smtp\.listen, or --listen\)"):
        split_listen("nowhere", key="smtp.listen")
