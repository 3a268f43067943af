"""A misbehaving SMTP receiver for tests: a raw asyncio server on loopback whose replies per command are scripted.

:class:`~deliveryhub.testing.smtp.SMTPSink` (aiosmtpd) is a well-behaved server. :class:`FaultSMTP` writes its
replies itself, so a test can make it do what real receivers get wrong::

    with FaultSMTP(tls=True) as sink:
        sink.script("STARTTLS", "220 Ready\\r\\n250 SIZE 10")   # two replies in one write, then the TLS handshake
        sink.script("RCPT", ["250 OK\\r\\n250 OK", "250 OK"])  # an extra reply on the first RCPT only
        sink.script("END", DROP)                              # hang up instead of answering the end of data
        sink.script("END", SILENT)                            # never answer the end of data
    FaultSMTP(greeting=SILENT)                                # a tarpit: accepts TCP, never greets
    FaultSMTP(greeting="421 4.3.2 Too busy")                  # refuses every session at the greeting

Scripts are per command verb (``GREETING``, ``EHLO``, ``HELO``, ``STARTTLS``, ``MAIL``, ``RCPT``, ``DATA`` — the
354 —, ``END`` — the reply to the end of data —, ``RSET``, ``NOOP``, ``QUIT``): a list of replies used one per
occurrence of the command over the server's life, the last one repeating. A reply is one or more lines (written in
one write, CRLF-terminated), :data:`SILENT` (read on, never answer) or :data:`DROP` (close the connection). A reply
starting with ``421`` closes the connection after it is written, as real servers do.

The server keeps its own honest state machine: it enters DATA mode only when it answered DATA with a 354, and a
message counts as received (``messages``) only when its end-of-data reply was a 2xx. So a test compares what the
client recorded with what the receiver really took. Also recorded: ``connections`` (accepted), ``peak_connections``
(most open at once, also per client address in ``peak_by_peer``), ``accepted_at`` (monotonic time of each received
message, to count messages per window) and ``commands`` (every command line, decoded).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self

from .smtp import self_signed_certificate

__all__ = ["DROP", "SILENT", "FaultSMTP", "FaultMessage"]

#: Never answer (keep reading what the client sends).
SILENT = "<silent>"
#: Close the connection instead of answering.
DROP = "<drop>"

_DEFAULTS = {
    "GREETING": "220 fault.test ESMTP",
    "HELO": "250 fault.test",
    "STARTTLS": "220 2.0.0 Ready to start TLS",
    "MAIL": "250 2.1.0 OK",
    "RCPT": "250 2.1.5 OK",
    "DATA": "354 End data with <CR><LF>.<CR><LF>",
    "END": "250 2.0.0 OK queued",
    "RSET": "250 2.0.0 OK",
    "NOOP": "250 2.0.0 OK",
    "QUIT": "221 2.0.0 Bye",
}
STOP_TIMEOUT = 2.0


@dataclass
class FaultMessage:
    """A message the server accepted (2xx to its end of data)."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # dot-unstuffed, CRLF line endings
    peer: tuple[str, int]
    tls: bool


class FaultSMTP:
    """A scripted raw SMTP server on 127.0.0.1 in a thread of its own (see the module docstring).

    Arguments: ``tls`` offers STARTTLS (a throwaway certificate trusted through ``ca_cert_path``), ``pipelining``
    offers PIPELINING, ``greeting`` is the first reply (:data:`SILENT` for a tarpit), ``reply_delay`` seconds before
    every reply after the greeting.
    """

    def __init__(self, *, tls: bool = False, pipelining: bool = False, greeting: str | None = None,
                 reply_delay: float = 0.0, host: str = "127.0.0.1"):  # fmt: skip
        self.host = host
        self.port = 0
        self.tls = tls
        self.pipelining = pipelining
        self.reply_delay = reply_delay
        self.cert_path = self.key_path = self.ca_cert_path = None
        if tls:
            self.cert_path, self.key_path, self.ca_cert_path = self_signed_certificate()
        self._scripts: dict[str, list[str]] = {}
        self._counts: collections.Counter = collections.Counter()
        self._changed = threading.Condition()
        if greeting is not None:
            self.script("GREETING", greeting)
        self.messages: list[FaultMessage] = []
        self.accepted_at: list[float] = []
        self.commands: list[str] = []
        self.connections = 0
        self.open_connections = 0
        self.peak_connections = 0
        self.peak_by_peer: dict[str, int] = collections.Counter()
        self._open_by_peer: dict[str, int] = collections.Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def __repr__(self) -> str:
        return f"<FaultSMTP {self.host}:{self.port} messages={len(self.messages)}>"

    # -- scripting ------------------------------------------------------------------------------------------------

    def script(self, verb: str, replies: str | Iterable[str]) -> None:
        """Answer ``verb`` with ``replies``, one per occurrence, the last one repeating (see the module docstring)."""
        replies = [replies] if isinstance(replies, str) else list(replies)
        if not replies:
            raise ValueError("a script needs at least one reply")
        with self._changed:
            self._scripts[verb.upper()] = replies

    def _reply_for(self, verb: str, default: str | None = None) -> str:
        with self._changed:
            index = self._counts[verb]
            self._counts[verb] += 1
            replies = self._scripts.get(verb)
        if replies is None:
            return default if default is not None else _DEFAULTS.get(verb, "502 5.5.2 Command not recognized")
        return replies[min(index, len(replies) - 1)]

    def count(self, verb: str) -> int:
        """How many times `verb` was answered (or left unanswered) so far."""
        with self._changed:
            return self._counts[verb.upper()]

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        """Block until ``predicate(self)`` holds (True) or the timeout passes (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[FaultMessage]:
        """Block until at least ``count`` messages were accepted; TimeoutError otherwise."""
        if not self.wait_for(lambda sink: len(sink.messages) >= count, timeout):
            raise TimeoutError(f"{self!r}: expected {count} message(s) within {timeout}s")
        return list(self.messages)

    def max_in_window(self, seconds: float) -> int:
        """The most messages accepted within any `seconds` long window."""
        times, best, start = sorted(self.accepted_at), 0, 0
        for end, moment in enumerate(times):
            while moment - times[start] > seconds:
                start += 1
            best = max(best, end - start + 1)
        return best

    # -- life cycle -----------------------------------------------------------------------------------------------

    def start(self) -> Self:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run():
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._listen())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fault-smtp", daemon=True)
        self._thread.start()
        ready.wait(STOP_TIMEOUT)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(STOP_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_TIMEOUT)
        self._loop.close()
        self._loop = None

    async def _shutdown(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.sleep(0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- the session ----------------------------------------------------------------------------------------------

    def _opened(self, peer: str) -> None:
        with self._changed:
            self.connections += 1
            self.open_connections += 1
            self._open_by_peer[peer] += 1
            self.peak_connections = max(self.peak_connections, self.open_connections)
            self.peak_by_peer[peer] = max(self.peak_by_peer[peer], self._open_by_peer[peer])
            self._changed.notify_all()

    def _closed(self, peer: str) -> None:
        with self._changed:
            self.open_connections -= 1
            self._open_by_peer[peer] -= 1
            self._changed.notify_all()

    def _ehlo_reply(self) -> str:
        lines = ["fault.test", "8BITMIME", "SIZE 10000000"]
        if self.tls:
            lines.append("STARTTLS")
        if self.pipelining:
            lines.append("PIPELINING")
        return "\r\n".join(f"250{'-' if i < len(lines) - 1 else ' '}{line}" for i, line in enumerate(lines))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[:2]
        self._writers.add(writer)
        self._opened(peer[0])
        try:
            await self._session(reader, writer, peer)
        except (ConnectionError, ssl.SSLError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._closed(peer[0])
            self._writers.discard(writer)
            writer.transport.abort()

    async def _answer(self, writer, reply: str, *, delay: bool = True) -> bool:
        """Write a reply; False when the connection is to be closed (DROP, 421)."""
        if reply == SILENT:
            return True
        if reply == DROP:
            return False
        if delay and self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        lines = reply.replace("\r\n", "\n").split("\n")
        writer.write("".join(line + "\r\n" for line in lines).encode())
        await writer.drain()
        return not reply.startswith("421")

    async def _session(self, reader, writer, peer) -> None:
        if not await self._answer(writer, self._reply_for("GREETING"), delay=False):
            return
        tls, mail_from, rcpts = False, None, []
        while True:
            line = await reader.readline()
            if not line:
                return
            command = line.rstrip(b"\r\n").decode("utf-8", "replace")
            with self._changed:
                self.commands.append(command)
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                reply = self._reply_for("EHLO", self._ehlo_reply())
            elif verb in ("MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "HELO", "STARTTLS"):
                reply = self._reply_for(verb)
            else:
                reply = "502 5.5.2 Command not recognized"
            if not await self._answer(writer, reply):
                return
            code = reply[:3]
            if verb == "QUIT" and code == "221":
                return
            if verb == "STARTTLS" and code == "220" and self.tls and not tls:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(self.cert_path, self.key_path)
                await writer.start_tls(context)
                tls, mail_from, rcpts = True, None, []
            elif verb == "MAIL" and code.startswith("2"):
                mail_from, rcpts = command[10:].split(">", 1)[0].lstrip("<"), []
            elif verb == "RCPT" and code.startswith("2") and mail_from is not None:
                rcpts.append(command[8:].split(">", 1)[0].lstrip("<"))
            elif verb in ("RSET", "EHLO", "HELO") and code.startswith("2"):
                mail_from, rcpts = None, []
            elif verb == "DATA" and code == "354":
                data = await self._read_data(reader)
                reply = self._reply_for("END")
                if reply[:1] == "2":
                    with self._changed:
                        self.messages.append(FaultMessage(mail_from or "", list(rcpts), data, peer, tls))
                        self.accepted_at.append(time.monotonic())
                        self._changed.notify_all()
                mail_from, rcpts = None, []
                if not await self._answer(writer, reply):
                    return

    @staticmethod
    async def _read_data(reader) -> bytes:
        lines = []
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("closed in DATA")
            if line == b".\r\n":
                return b"".join(lines)
            lines.append(line[1:] if line.startswith(b".") else line)
