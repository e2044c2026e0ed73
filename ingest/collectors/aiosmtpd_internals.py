"""Every internal of aiosmtpd and asyncio that the SMTP collector's protocol relies on.

`ingest/collectors/smtp_protocol.py` subclasses aiosmtpd's `SMTP` for speed and so uses some
of its (and asyncio's streams') private names. They are listed here, as data, so that
tests/ingest/collectors/test_smtp_internals.py can check each against the installed versions
(naming the internal and the version when one is gone or changed its shape) and fail when
the protocol uses a private name of theirs that is not listed. pyproject.toml pins aiosmtpd
to the minor version this list was checked with; run that test before raising the pin.
"""
from __future__ import annotations

from typing import NamedTuple


class Internal(NamedTuple):
    """One aiosmtpd or asyncio internal this module relies on, and the shape it relies on."""

    owner: str  # a module ("aiosmtpd.smtp"), a class ("SMTP"), or a class's instances ("SMTP()")
    name: str
    kind: str  # "value", "int", "strings", "class", "function", "method", "coroutine" or "attribute"
    params: tuple[str, ...] = ()  # the leading parameters a call passes (after self), in order


# Everything of aiosmtpd and asyncio smtp_protocol.py uses beyond their documented interfaces:
# the names it imports from aiosmtpd, the private methods it calls or replaces (aiosmtpd's
# own code calls the replacements), and the private attributes it reads or sets (its
# __init__ sets those aiosmtpd's code reads, in place of SMTP.__init__).
AIOSMTPD_INTERNALS: tuple[Internal, ...] = (
    # names imported from aiosmtpd.smtp
    Internal("aiosmtpd.smtp", "ALLOWED_BEFORE_STARTTLS", "strings"),
    Internal("aiosmtpd.smtp", "BOGUS_LIMIT", "int"),
    Internal("aiosmtpd.smtp", "MISSING", "value"),
    Internal("aiosmtpd.smtp", "SMTP", "class"),
    Internal("aiosmtpd.smtp", "TLSSetupException", "class"),
    Internal("aiosmtpd.smtp", "login_always_fail", "function", ("mechanism", "login", "password")),
    Internal("aiosmtpd.smtp", "syntax", "function", ("text", "extended", "when")),
    # aiosmtpd's methods, called here or replaced here (and called by aiosmtpd's own code)
    Internal("SMTP", "_call_handler_hook", "coroutine", ("command",)),
    Internal("SMTP", "_create_envelope", "method"),
    Internal("SMTP", "_create_session", "method"),
    Internal("SMTP", "_set_post_data_state", "method"),
    Internal("SMTP", "_set_rset_state", "method"),
    Internal("SMTP", "_getaddr", "method", ("arg",)),
    Internal("SMTP", "_handle_client", "coroutine"),
    Internal("SMTP", "_reset_timeout", "method", ("duration",)),
    Internal("SMTP", "_timeout_cb", "method"),
    Internal("SMTP", "check_helo_needed", "coroutine"),
    Internal("SMTP", "handle_exception", "coroutine", ("error",)),
    # SMTP's instance attributes, set here as SMTP.__init__ and its connection_made set them
    Internal("SMTP()", "__ident__", "attribute"),
    Internal("SMTP()", "_decode_data", "attribute"),
    Internal("SMTP()", "_timeout_duration", "attribute"),
    Internal("SMTP()", "_timeout_handle", "attribute"),
    Internal("SMTP()", "_tls_handshake_okay", "attribute"),
    Internal("SMTP()", "_tls_protocol", "attribute"),
    Internal("SMTP()", "_original_transport", "attribute"),
    Internal("SMTP()", "_handler_coroutine", "attribute"),
    Internal("SMTP()", "_auth_require_tls", "attribute"),
    Internal("SMTP()", "_proxy_timeout", "attribute"),
    Internal("SMTP()", "_authenticator", "attribute"),
    Internal("SMTP()", "_auth_callback", "attribute"),
    Internal("SMTP()", "_auth_required", "attribute"),
    Internal("SMTP()", "_auth_methods", "attribute"),
    Internal("SMTP()", "_handle_hooks", "attribute"),
    Internal("SMTP()", "_smtp_methods", "attribute"),
    Internal("SMTP()", "_reader", "attribute"),
    Internal("SMTP()", "_writer", "attribute"),
    Internal("SMTP()", "transport", "attribute"),
    # asyncio's stream protocol and reader, under aiosmtpd's SMTP
    Internal("asyncio.StreamReaderProtocol", "__init__", "method", ("stream_reader", "client_connected_cb", "loop")),
    Internal("asyncio.StreamReaderProtocol()", "_stream_reader_wr", "attribute"),
    Internal("asyncio.StreamReaderProtocol()", "_stream_writer", "attribute"),
    Internal("asyncio.StreamReaderProtocol()", "_transport", "attribute"),
    Internal("asyncio.StreamReaderProtocol()", "_paused", "attribute"),
    Internal("asyncio.StreamReader()", "_limit", "attribute"),
)

# Attributes SMTP.__init__ sets that CollectorSMTP.__init__ leaves out: aiosmtpd's
# _handle_client and smtp_EHLO read the first four, and CollectorSMTP replaces both; asyncio's
# StreamReaderProtocol sets the last two for the StreamReader it is given (here: none; the
# reader is made by _streams, when needed, and kept in _reader).
AIOSMTPD_INIT_SKIPPED = ("_ehlo_hook_ver", "_enforce_call_limit", "_call_limit_base", "_call_limit_default",
                         "_source_traceback", "_strong_reader")
