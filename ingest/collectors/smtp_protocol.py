"""The SMTP collector's protocol: aiosmtpd's SMTP, made fast, and the server's setup.

`CollectorSMTP` speaks SMTP and decides nothing: what a recipient may be, how many
sessions and messages a client may have, and where a message goes are the handler's
(`ingest.collectors.smtp.FeedbackHandler`). It subclasses aiosmtpd's `SMTP` and relies on
some of its internals (and of asyncio's streams); `ingest.collectors.aiosmtpd_internals`
names every one, and tests/ingest/collectors/test_smtp_internals.py checks each against the
installed versions.
"""
from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import weakref
from typing import Callable

from aiosmtpd.smtp import (ALLOWED_BEFORE_STARTTLS, BOGUS_LIMIT, MISSING, SMTP, TLSSetupException,
                           login_always_fail, syntax)

from ingest.collectors.limits import ClientLimits
from ingest.collectors.smtp import CONTROL, NOT_TEXT, FeedbackHandler, bracketed, peer_ip
from ingest.config import SMTPConfig

log = logging.getLogger("ingest.collectors.smtp")


# Commands a client may repeat in one session before it is told goodbye (floods).
CALL_LIMITS = {"NOOP": 50, "VRFY": 10, "EXPN": 10, "HELP": 10, "EHLO": 20, "HELO": 20,
               "STARTTLS": 3, "RSET": 1000, "*": 100_000}

# the replies written in more than one place (the fast path and aiosmtpd's loop)
REPLY_OK = "250 OK"
REPLY_BYE = "221 Bye"
REPLY_START_DATA = "354 End data with <CR><LF>.<CR><LF>"
REPLY_TOO_LONG = "500 Command line too long"
REPLY_BAD_SYNTAX = "500 Error: bad syntax"
_REPLY_HELO_NOT_TEXT = "501 5.5.4 Syntax: {} hostname (" + NOT_TEXT + ")"

_SMTP_COMMANDS = tuple(name[5:] for name in dir(SMTP) if name.startswith("smtp_"))
# `<local@domain>` in dot-atoms, the form nearly every client sends: read without the
# RFC 5322 header parser (a tenth of a millisecond per address); anything else goes to it.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_PATH = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>")
_MAIL_LIMIT = SMTP.command_size_limit + 26 + 10  # SIZE= and SMTPUTF8, as aiosmtpd counts them
_DATA_READ_LIMIT = 1 << 16  # what the StreamReader reads at a time during DATA
# the fast path's commands, and its states: reading commands, reading DATA, committing it
_FAST_COMMANDS = {name.encode(): name for name in ("HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT")}
_DEFAULT_BUDGET = CALL_LIMITS["*"]
_COMMAND, _DATA, _WAIT = 0, 1, 2


class DataReader:
    """The one reader of a message after DATA, for both session paths: blocks go in as they
    arrive (`feed`), the message comes out with its dot-stuffing undone (`content`).

    `.` ends the data only after CRLF, so a bare LF never ends it (no smuggling). Lines may
    be long (feedback is kept, not judged, here); only the total is limited: past `limit`
    bytes only a tail is kept, to find the end by, and the message is refused."""

    __slots__ = ("limit", "data", "scanned", "too_big", "end", "rest")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.data = bytearray(b"\r\n")  # the DATA line's CRLF, then what came after it
        self.scanned = 0  # where to look for the end next
        self.too_big = False
        self.end = -1  # where the final CRLF.CRLF begins in data, once it has come
        self.rest = b""  # what came after the end (pipelined commands)

    def feed(self, block: bytes) -> bool:
        """Take the next block; True once the end has come (what follows it is in `rest`)."""
        data = self.data
        data += block
        end = data.find(b"\r\n.\r\n", self.scanned)
        limit = self.limit
        if end < 0:
            if limit and len(data) - 5 > limit:  # over the limit already: keep only a tail
                self.too_big = True
                del data[:-4]
            self.scanned = max(0, len(data) - 4)
            return False
        self.end = end
        self.rest = bytes(data[end + 5:])
        if limit and end > limit:
            self.too_big = True
        return True

    def content(self) -> bytes | None:
        """The message, unstuffed, once `feed` said it ended; None when it is too big."""
        if self.too_big:
            return None
        content = bytes(self.data[2:self.end + 2])
        if b"\r\n." in content:
            content = content.replace(b"\r\n.", b"\r\n")
        if content.startswith(b"."):
            content = content[1:]
        return content


class CollectorSMTP(SMTP):
    """aiosmtpd's SMTP with per-client limits, separate command and data timeouts, a DATA
    reader that works on blocks instead of lines, and less work per command: the common
    commands answered as they arrive, without a coroutine (the fast path, below), the rest
    in one loop without per-line logging, a timer per session instead of one per command,
    replies written without waiting when nothing is queued, and simple addresses read
    directly."""

    _COMMANDS: dict[str, Callable] = {}  # the smtp_* functions by command, filled in below the class

    def __init__(self, handler: FeedbackHandler, *, config: SMTPConfig, hostname: str,
                 tls_context: ssl.SSLContext | None = None, loop: asyncio.AbstractEventLoop | None = None):
        # aiosmtpd's own __init__ inspects the handler and itself on every connection,
        # which costs more than receiving a small message; the attributes the rest of its code
        # reads are set here instead (not those read only by its _handle_client and smtp_EHLO,
        # which this class replaces: AIOSMTPD_INIT_SKIPPED).
        self.__ident__ = "postwatch"
        self.loop = loop or asyncio.get_event_loop()
        # no StreamReader yet: the fast path reads without one (_streams makes it when needed)
        asyncio.StreamReaderProtocol.__init__(self, None, loop=self.loop)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.event_handler = handler
        self.data_size_limit = config.max_message_bytes or None
        self.enable_SMTPUTF8 = True
        self._decode_data = False
        self.hostname = hostname
        self.tls_context = tls_context
        self.require_starttls = bool(tls_context) and config.require_tls
        self._timeout_duration = config.command_timeout
        self._data_timeout = config.data_timeout
        self._timeout_handle = None
        self._deadline = 0.0
        self._timer_at = 0.0
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = True
        self._proxy_timeout = None
        self._authenticator = None
        self._auth_callback = login_always_fail
        self._auth_required = False
        self._auth_methods = {}
        self._handle_hooks = handler.hooks
        self._smtp_methods = self._COMMANDS  # plain functions, made once (HELP reads them too)
        self._limits: ClientLimits = handler.limits
        self._ip: str | None = None
        self._quit = False
        self._greeting = f"220 {hostname} {self.__ident__}\r\n".encode()
        self._budget = dict(CALL_LIMITS)  # what is left of each command's CALL_LIMITS
        self._bogus = BOGUS_LIMIT
        # the fast path (see data_received)
        self._fast = False
        self._state = _COMMAND
        self._buf = b""  # received, not yet read
        self._message: DataReader | None = None  # the message being read (in _DATA)
        self._eof = False

    # -- the session -------------------------------------------------------------------------

    async def _handle_client(self) -> None:
        """The whole session in aiosmtpd's way: used when STARTTLS is required."""
        if not self._greet():
            return
        await self._serve()

    def _greet(self) -> bool:
        """The per-client session limit, then the greeting; False if the session is refused."""
        ip = self._ip = peer_ip(self.session)
        why = self._limits.enter(ip)
        if why:
            self._ip = None
            self.event_handler.stats.refused_sessions += 1
            log.warning("smtp %s: connection refused: %s", ip, why)
            self.transport.write(f"421 4.7.0 {self.hostname} {why}\r\n".encode())
            self.transport.close()
            return False
        self.event_handler.stats.sessions += 1
        log.debug("smtp %s: connected", ip)
        self.transport.write(self._greeting)
        return True

    async def _serve(self) -> None:
        """Commands read through the StreamReader, each run as aiosmtpd's `smtp_*` coroutine."""
        ip = self._ip
        reader = self._reader
        methods = self._smtp_methods
        budget = self._budget
        while self.transport is not None and not self._quit:
            try:
                try:
                    line: bytes = await reader.readuntil()
                except asyncio.LimitOverrunError as error:
                    # too long: read to the end of the line, then say so and go on
                    await reader.read(error.consumed)
                    while True:
                        try:
                            await reader.readuntil()
                            break
                        except asyncio.LimitOverrunError as e:
                            await reader.read(e.consumed)
                    await self.push(REPLY_TOO_LONG)
                    continue
                line = line.rstrip(b"\r\n")
                if not line:
                    await self.push(REPLY_BAD_SYNTAX)
                    continue
                command_bytes, _, arg_bytes = line.partition(b" ")
                try:
                    command = command_bytes.upper().decode("ascii")
                except UnicodeDecodeError:
                    await self.push(REPLY_BAD_SYNTAX)
                    continue
                # the argument keeps any 8-bit bytes (surrogateescape), as aiosmtpd does
                arg = str(arg_bytes.strip(), "utf-8", "surrogateescape") if arg_bytes else None
                limit = _MAIL_LIMIT if command == "MAIL" and self.session.extended_smtp else SMTP.command_size_limit
                if len(line) > limit:
                    await self.push(REPLY_TOO_LONG)
                    continue
                if not self._tls_handshake_okay and command != "QUIT":
                    await self.push("554 Command refused due to lack of security")
                    continue
                if self.require_starttls and not self._tls_protocol and command not in ALLOWED_BEFORE_STARTTLS:
                    await self.push("530 Must issue a STARTTLS command first")
                    continue
                left = budget.get(command, _DEFAULT_BUDGET)
                if left < 1:
                    log.warning("smtp %s: %s sent too many times; connection closed", ip, command)
                    await self.push(f"421 4.7.0 {command} sent too many times")
                    self.transport.close()
                    continue
                budget[command] = left - 1
                method = methods.get(command)
                if method is None:
                    self._bogus -= 1
                    if self._bogus < 1:
                        log.warning("smtp %s: too many unknown commands; connection closed", ip)
                        await self.push("502 5.5.1 Too many unrecognized commands, goodbye.")
                        self.transport.close()
                        continue
                    await self.push(f'500 Error: command "{command}" not recognized')
                    continue
                self._reset_timeout()
                await method(self, arg)
            except (asyncio.CancelledError, ConnectionResetError):
                self._writer.close()
                raise
            except Exception as error:
                status = await self._error_reply(error)
                if isinstance(error, TLSSetupException):
                    self.transport.close()
                    self.connection_lost(error)
                else:
                    await self.push(status)

    async def _error_reply(self, error: Exception) -> str:
        """The reply to a command that raised: the handler's, or aiosmtpd's 500."""
        try:
            return await self.handle_exception(error)
        except Exception as inner:
            return f"500 Error: ({inner.__class__.__name__}) {inner}"

    async def push(self, status: str | bytes) -> None:
        self._writer.write((status.encode("utf-8") if isinstance(status, str) else status) + b"\r\n")
        # wait only when the client does not read its replies (or is gone)
        if self._paused or self._writer.transport.is_closing():
            await self._writer.drain()

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        if hostname and CONTROL.search(hostname):
            await self.push(_REPLY_HELO_NOT_TEXT.format("HELO"))
            return
        await super().smtp_HELO(hostname)

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        # aiosmtpd's, with the reply written at once rather than a write per line
        if not hostname:
            await self.push("501 Syntax: EHLO hostname")
            return
        if CONTROL.search(hostname):
            await self.push(_REPLY_HELO_NOT_TEXT.format("EHLO"))
            return
        self._set_rset_state()
        self.session.extended_smtp = True
        lines = await self._call_handler_hook("EHLO", hostname, self._ehlo_lines())
        await self.push("\r\n".join(lines))

    def _ehlo_lines(self) -> list[str]:
        lines = [f"250-{self.hostname}"]
        if self.data_size_limit:
            lines.append(f"250-SIZE {self.data_size_limit}")
        lines += ["250-8BITMIME", "250-SMTPUTF8"]
        if self.tls_context and not self._tls_protocol:
            lines.append("250-STARTTLS")
        lines.append("250 HELP")
        return lines

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        if arg.startswith("<>"):  # the null reverse path, as the header parser reads it
            return "<>", arg[2:]
        m = _SIMPLE_PATH.match(arg)
        if m is None:
            return super()._getaddr(arg)
        address = m.group(1)
        if self.local_part_limit and address.rindex("@") > self.local_part_limit:
            return None, None
        return address, arg[m.end():]

    def _simple_path(self, command: str, arg: str | None) -> str | None:
        """The address of `MAIL FROM:<local@domain>` or `RCPT TO:<...>` (or `<>`) with no
        parameters after it, the form nearly every client sends, in a session where that
        command is accepted (after HELO/EHLO, MAIL before RCPT, no AUTH required): nothing of
        aiosmtpd's checks applies then. None for anything else (aiosmtpd's parser reads it)."""
        session, envelope = self.session, self.envelope
        if not session.host_name or self._auth_required or bool(envelope.mail_from) != (command == "RCPT"):
            return None
        keyword = "FROM:" if command == "MAIL" else "TO:"
        n = len(keyword)
        if not arg or arg[:n].upper() != keyword:
            return None
        rest = arg[n:].strip()
        if rest == "<>":
            return rest
        m = _SIMPLE_PATH.fullmatch(rest)
        if m is None:
            return None
        address = m.group(1)
        if self.local_part_limit and address.rindex("@") > self.local_part_limit:
            return None
        return address

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        # the plain form without aiosmtpd's parameter checks (BODY, SMTPUTF8, SIZE absent)
        address = self._simple_path("MAIL", arg)
        if address is None:
            return await super().smtp_MAIL(arg)
        status = await self._call_handler_hook("MAIL", address, [])
        if status is MISSING:
            self.envelope.mail_from = address
            status = REPLY_OK
        await self.push(status)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        address = self._simple_path("RCPT", arg)
        if address is None:
            return await super().smtp_RCPT(arg)
        status = await self._call_handler_hook("RCPT", address, [])
        if status is MISSING:
            self.envelope.rcpt_tos.append(address)
            status = REPLY_OK
        await self.push(status)

    @syntax("QUIT")
    async def smtp_QUIT(self, arg: str | None) -> None:
        # aiosmtpd's, ending the session loop rather than cancelling its task
        if arg:
            await self.push("501 Syntax: QUIT")
            return
        status = await self._call_handler_hook("QUIT")
        await self.push(REPLY_BYE if status is MISSING else status)
        self._quit = True
        self.transport.close()

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        self._reset_timeout(self._data_timeout)  # the whole message must arrive within this
        await self.push(REPLY_START_DATA)
        message = await self._read_data()
        self._reset_timeout()
        content = message.content()
        await self.push(self._too_big() if content is None else await self._deliver(content))

    async def _read_data(self) -> DataReader:
        """The message through the StreamReader, into the DataReader: read to each `.CRLF`
        (or a block without one), so nothing after the end of the data is taken."""
        reader = self._reader
        message = DataReader(self.data_size_limit)
        reader._limit = _DATA_READ_LIMIT  # block reads during DATA (aiosmtpd's limit is one command line)
        try:
            while True:
                try:
                    block = await reader.readuntil(b".\r\n")
                except asyncio.LimitOverrunError as e:  # no `.CRLF` in this block yet
                    block = await reader.readexactly(e.consumed)
                if message.feed(block):
                    return message
        finally:
            reader._limit = self.line_length_limit

    def _too_big(self) -> str:
        """A message over smtp.max_message_bytes: logged, the transaction ended, the 552."""
        log.info("smtp %s: refused a message over %d bytes from %s", self._ip,
                 self.data_size_limit, bracketed(self.envelope.mail_from))
        self._set_post_data_state()
        return f"552 5.3.4 Message too big (the limit is {self.data_size_limit} bytes)"

    async def _deliver(self, content: bytes) -> str:
        """The DATA hook (the spool's fsync); the transaction ends; its reply."""
        envelope = self.envelope
        envelope.content = envelope.original_content = content
        try:
            status = await self._call_handler_hook("DATA")
        except Exception as error:
            status = await self._error_reply(error)
        self._set_post_data_state()
        return REPLY_OK if status is MISSING else status

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is not None:  # the TLS transport after STARTTLS
            return super().connection_made(transport)
        # aiosmtpd's for a new connection, without its log call and second envelope
        self.envelope = self._create_envelope()
        self.session = self._create_session()
        self.session.peer = transport.get_extra_info("peername")
        self._reset_timeout()
        self._transport = self.transport = transport  # the rest of StreamReaderProtocol's: _streams
        if self.require_starttls:  # every command is checked for TLS: aiosmtpd's way throughout
            self._streams()
            self._handler_coroutine = self.loop.create_task(self._handle_client())
        elif self._greet():
            self._fast = True

    # -- the fast path ----------------------------------------------------------------------
    # Without required TLS, a session starts here: data_received reads the commands and
    # answers the common ones in their plain form (HELO, EHLO, MAIL FROM:<a>, RCPT TO:<a>,
    # DATA, RSET, NOOP, QUIT) directly, with the same checks and replies as the `smtp_*`
    # methods, and reads DATA in blocks; only the message's commit runs as a task. Anything
    # else (STARTTLS, AUTH, parameters, a syntax error, a command over its limit or its
    # CALL_LIMITS, a bare LF, a client not reading its replies) hands the session, from
    # that command on, to _serve, which reads the rest through the StreamReader.

    def data_received(self, data: bytes) -> None:
        if not self._fast:
            return asyncio.StreamReaderProtocol.data_received(self, data)
        self._buf = self._buf + data if self._buf else data
        if self._state == _WAIT:
            if len(self._buf) > 1 << 16:  # pipelined far ahead of the commit: wait
                self.transport.pause_reading()
            return
        try:
            self._run()
        except Exception:
            log.exception("smtp %s: error in the session; connection closed", self._ip)
            self.transport.close()

    def _slow(self) -> None:
        """From here on the session is aiosmtpd's loop, reading what is not read yet."""
        self._fast = False
        self._streams()
        if self._buf:
            self._reader.feed_data(self._buf)
            self._buf = b""
        if self._eof:
            self._reader.feed_eof()
        self._handler_coroutine = self.loop.create_task(self._serve())

    def _streams(self) -> None:
        """The StreamReader and StreamWriter aiosmtpd's code reads and writes through, as
        StreamReaderProtocol.connection_made makes them."""
        reader = asyncio.StreamReader(limit=self.line_length_limit, loop=self.loop)
        reader.set_transport(self.transport)
        self._stream_reader_wr = weakref.ref(reader)
        self._reader = reader
        self._writer = self._stream_writer = asyncio.StreamWriter(self.transport, self, reader, self.loop)

    def _run(self) -> None:
        buf = self._buf
        while self.transport is not None and not self._quit:
            if self._state == _DATA:
                self._buf = buf
                if not self._read_block():
                    return
                buf = self._buf
                continue
            if self._state == _WAIT:
                break
            end = buf.find(b"\n")
            if end < 0:
                self._buf = buf
                if len(buf) > SMTP.command_size_limit:
                    self._slow()
                return
            if end > SMTP.command_size_limit or buf[end - 1:end] != b"\r" or self._paused:
                self._buf = buf
                self._slow()
                return
            if not self._command(buf[:end - 1]):
                self._buf = buf
                self._slow()
                return
            buf = buf[end + 1:]
        self._buf = buf

    def _reply(self, status: str) -> None:
        self.transport.write(status.encode("utf-8") + b"\r\n")

    def _command(self, line: bytes) -> bool:
        """Answer one command line (without its CRLF); False to leave it to _serve."""
        command_bytes, _, arg_bytes = line.partition(b" ")
        command = _FAST_COMMANDS.get(command_bytes.upper())
        if command is None:
            return False
        left = self._budget.get(command, _DEFAULT_BUDGET)
        if left < 1:
            return False
        arg = str(arg_bytes.strip(), "utf-8", "surrogateescape") if arg_bytes else None
        session, envelope, hooks = self.session, self.envelope, self._handle_hooks
        if command == "MAIL" or command == "RCPT":
            address = self._simple_path(command, arg)
            if address is None or command not in hooks:
                return False
            self._reset_timeout()
            hook = self.event_handler.mail if command == "MAIL" else self.event_handler.rcpt
            status = hook(self, session, envelope, address, [])
        elif command == "DATA":
            if arg or not session.host_name or not envelope.rcpt_tos or self._auth_required:
                return False
            self._reset_timeout(self._data_timeout)  # the whole message must arrive within this
            self._state = _DATA
            self._message = DataReader(self.data_size_limit)
            status = REPLY_START_DATA
        elif command == "EHLO":
            if not arg or "EHLO" not in hooks or CONTROL.search(arg):
                return False
            self._reset_timeout()
            self._set_rset_state()
            session.extended_smtp = True
            status = "\r\n".join(self.event_handler.ehlo(self, session, self.envelope, arg, self._ehlo_lines()))
        elif command == "HELO":
            if not arg or "HELO" in hooks or CONTROL.search(arg):
                return False
            self._reset_timeout()
            self._set_rset_state()
            session.extended_smtp = False
            session.host_name = arg
            status = f"250 {self.hostname}"
        elif command == "QUIT":
            if arg or "QUIT" in hooks:
                return False
            self._budget[command] = left - 1
            self._reply(REPLY_BYE)
            self._quit = True
            self.transport.close()
            return True
        else:  # RSET, NOOP
            if (arg and command == "RSET") or command in hooks or hasattr(self, "rset_hook"):
                return False
            self._reset_timeout()
            if command == "RSET":
                self._set_rset_state()
            status = REPLY_OK
        self._budget[command] = left - 1
        self._reply(status)
        return True

    def _read_block(self) -> bool:
        """Take what arrived into the message; True once it is complete (then in _WAIT, or
        back in _COMMAND after a 552)."""
        message = self._message
        if not message.feed(self._buf):
            self._buf = b""
            return False
        self._buf = message.rest
        self._message = None
        self._reset_timeout()
        content = message.content()
        if content is None:
            self._state = _COMMAND
            self._reply(self._too_big())
            return True
        self._state = _WAIT
        self.loop.create_task(self._commit(content))
        return True

    async def _commit(self, content: bytes) -> None:
        """The DATA hook (the spool's fsync), then its reply and on to the next command."""
        status = await self._deliver(content)
        if self.transport is None:
            return
        self._reset_timeout()
        self._reply(status)
        self._state = _COMMAND
        if self._eof:
            self.transport.close()
            return
        self.transport.resume_reading()
        try:
            self._run()
        except Exception:
            log.exception("smtp %s: error in the session; connection closed", self._ip)
            self.transport.close()

    # -- timeouts: one timer per session, moved forward lazily --------------------------------

    def _reset_timeout(self, duration: float | None = None) -> None:
        self._deadline = self.loop.time() + (duration or self._timeout_duration)
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or self._deadline < self._timer_at:
            if handle is not None:
                handle.cancel()
            self._timer_at = self._deadline
            self._timeout_handle = self.loop.call_at(self._deadline, self._check_timeout)

    def _check_timeout(self) -> None:
        if self.loop.time() < self._deadline:  # activity since: wait for the new deadline
            self._timer_at = self._deadline
            self._timeout_handle = self.loop.call_at(self._deadline, self._check_timeout)
            return
        self._timeout_cb()

    def connection_lost(self, error: Exception | None) -> None:
        if self._ip is not None:
            self._limits.leave(self._ip)
            log.debug("smtp %s: disconnected", self._ip)
            self._ip = None
        # aiosmtpd's, without its log call, and with no session task on the fast path
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        if self._original_transport is not None:
            self._original_transport.close()
        asyncio.StreamReaderProtocol.connection_lost(self, error)
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()
        self.transport = None

    def eof_received(self) -> bool | None:
        if self._fast:
            if self._state == _WAIT:  # the message is being written: answer, then close
                self._eof = True
                return True
            return False  # closes the transport
        self._handler_coroutine.cancel()
        if self.session.ssl is not None:
            return False
        return asyncio.StreamReaderProtocol.eof_received(self)

    def _timeout_cb(self):
        log.info("smtp %s: timed out; connection closed", self._ip or peer_ip(self.session))
        if self.transport is not None:
            self.transport.close()


CollectorSMTP._COMMANDS = {name: getattr(CollectorSMTP, "smtp_" + name) for name in _SMTP_COMMANDS}


# -- the server's setup ----------------------------------------------------------------------

def default_hostname(config: SMTPConfig) -> str:
    """The name in the greeting: smtp.hostname, or this machine's."""
    return config.hostname or socket.gethostname() or "postwatch"


def make_factory(handler: FeedbackHandler, config: SMTPConfig, hostname: str,
                 context: ssl.SSLContext | None) -> Callable[[], CollectorSMTP]:
    def factory() -> CollectorSMTP:
        return CollectorSMTP(handler, config=config, hostname=hostname, tls_context=context)
    return factory
