"""One SMTP connection to one MX host address from one source IP: `connect()`, `send(message)`, `reset()`, `quit()`.

A small asyncio SMTP client written for the hot path (RFC 5321): source-address binding, EHLO (HELO fallback),
STARTTLS with a verifying context when TLS is required (CERT_NONE otherwise, but the TLS version is recorded either
way), AUTH PLAIN/LOGIN for relays, PIPELINING (MAIL, RCPT and DATA in one write, plus a pending RSET), SIZE,
8BITMIME and SMTPUTF8 parameters when offered, a timeout per stage, dot-stuffing and CRLF normalisation.
`queues.delivery.senders.smtp.ConnectionPool` keeps these connections open and shares them out.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import functools
import ipaddress
import os
import re
import ssl
import time
from dataclasses import dataclass

from .dkim import to_crlf
from .result import CONNECT, DATA, END_OF_DATA, ENVELOPE, GREETING, HANDSHAKE, MAIL_FROM, RCPT_TO, SendResult

REQUIRED = "required"
OPPORTUNISTIC = "opportunistic"
TLS_POLICIES = (OPPORTUNISTIC, REQUIRED)
CRLF = b"\r\n"
MAX_REPLY_LINES = 100  # a longer multi-line reply is a protocol error
READ_LIMIT = 64 * 1024  # bytes of one reply line

_ADDRESS_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f<>\s]")


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed per stage."""

    connect: float  # TCP connect, greeting, EHLO, STARTTLS, AUTH
    command: float  # each MAIL/RCPT/DATA/RSET reply
    data: float  # sending the message and its end-of-data reply


@dataclass
class Reply:
    """An SMTP reply: code, enhanced status code (RFC 3463) if the first line starts with one, text (lines joined)."""

    code: int
    enhanced: str | None
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    def __str__(self) -> str:
        return " ".join(str(part) for part in (self.code, self.enhanced, self.text) if part)


class ConnectFailed(Exception):
    """Setting up a connection failed: `result` is the deferred/bounced SendResult for the messages waiting for it;
    `next_host` says whether trying the next MX host makes sense."""

    def __init__(
        self,
        result: SendResult,
        *,
        next_host: bool = True,
        host_down: bool = False,
        tls_failed: bool = False,
        unverified: bool = False,
        probed: bool = False,
    ):
        super().__init__(result.smtp_output)
        self.result = result
        self.probed = probed  # the failure of another lane's probe connection, not of a connection of our own
        self.next_host = next_host
        self.host_down = host_down  # refused, timed out, never greeted, 421 at the greeting: avoid this host a while
        self.tls_failed = tls_failed  # the TLS handshake itself failed: opportunistic TLS may retry in plain text
        self.unverified = unverified  # only the certificate check failed: opportunistic TLS retries without it


class NotSent(Exception):
    """A reused connection turned out dead before the transaction began: nothing was sent, try a fresh one."""


class _Lost(Exception):
    """The connection closed or answered garbage."""


class _OutOfStep(Exception):
    """A reply that does not answer the command it should (a code that command never gets, or bytes nobody asked
    for): the session is out of step, and nothing it says afterwards can be trusted. `unknown`: the data had been
    sent, so whether the server took the message cannot be told."""

    def __init__(self, stage: str, what: str, *, unknown: bool = False):
        super().__init__(f"{what} at {stage}")
        self.stage = stage
        self.what = what
        self.unknown = unknown


# The replies that answer each command when it succeeds (RFC 5321 4.3.2); 4xx/5xx are refusals, anything else is
# out of step.
MAIL_OK = (250,)
RCPT_OK = (250, 251)
DATA_OK = (354,)


_ENHANCED = re.compile(rb"^([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)")


@functools.cache
def tls_context(policy: str, cafile: str = "", verify: bool = False) -> ssl.SSLContext:
    """The client context for a TLS policy (cached: building one costs milliseconds).

    required: full verification (certificate chain against the system store plus `cafile`, e.g. a private relay's
    CA, and the host name); opportunistic: encryption without authentication (CERT_NONE), as MTAs do by default
    (RFC 7435); with `verify`, the first try at a host, which verifies so that a trusted connection is recorded as one.
    """
    if policy == REQUIRED or verify:
        context = ssl.create_default_context()
        if cafile:
            context.load_verify_locations(cafile=cafile)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _check_address(address: str) -> bool:
    return len(address) <= 256 and _ADDRESS_FORBIDDEN.search(address) is None


class Endpoint:
    """One SMTP session with one address of one MX host, from one source IP (see the module docstring).

    Not thread-safe; use it from one task at a time (the pool hands each to one lane).
    """

    def __init__(
        self,
        host: str,
        port: int,
        address: str,
        *,
        source_ip: str = "",
        ehlo_hostname: str = "localhost",
        tls_policy: str = OPPORTUNISTIC,
        tls_cafile: str = "",
        timeouts: Timeouts,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = True,
        tls_verify: bool = False,
    ):
        self.host = host
        self.port = port
        self.address = address
        self.source_ip = source_ip
        self.ehlo_hostname = ehlo_hostname or "localhost"
        self.tls_policy = tls_policy
        self.tls_cafile = tls_cafile
        self.timeouts = timeouts
        self.username = username
        self.password = password
        self.use_tls = use_tls
        self.tls_verify = tls_verify  # opportunistic: verify the certificate (a failure means a retry without)
        self.extensions: dict[str, str] = {}
        self.tls_version: str | None = None
        self.tls_verified = False
        self.messages_sent = 0
        self.last_used = time.monotonic()
        self.reused = False  # set by the pool when handing out an idle connection
        self.slot = None  # (PairGate, member): the pair's connection slot this connection holds, if limited
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._needs_rset = False
        self._broken = False
        self._stage = CONNECT  # where connect() is (for its failures)
        self._greeting_deadline = 0.0

    def __repr__(self) -> str:
        return f"<Endpoint {self.source_ip or '*'} → {self.host}[{self.address}]:{self.port} sent={self.messages_sent}>"

    # -- state ----------------------------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Connected, in sync with the server, and not closed by it."""
        return (
            self._writer is not None
            and not self._broken
            and not self._writer.is_closing()
            and not self._reader.at_eof()
        )

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    def _result(self, started: float, stage: str, *, reply: Reply | None = None, enhanced: str | None = None,
                text: str = "", connect_error: bool = False, unknown: bool = False) -> SendResult:  # fmt: skip
        """What happened, as it happened (the classifier decides what it means): a reply, or an error text."""
        if reply is not None:
            code, enhanced, text = reply.code, reply.enhanced, reply.text
        else:
            code = None
        return SendResult(
            code, enhanced, text, stage=stage, connect_error=connect_error, outcome_unknown=unknown,
            mx_host=self.host, source_ip=self.source_ip, tls_version=self.tls_version, tls_verified=self.tls_verified,
            duration=round(time.monotonic() - started, 4),
        )  # fmt: skip

    # -- connection set-up ------------------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, read the greeting, EHLO, STARTTLS, AUTH. Raises ConnectFailed with a result."""
        started = time.monotonic()
        where = f"{self.host}[{self.address}]:{self.port}"
        local_addr = (self.source_ip, 0) if self.source_ip else None
        # TCP connect and the greeting share one deadline: a tarpit (accepts, never greets) holds a lane no longer than
        # a host that does not answer at all.
        self._greeting_deadline = asyncio.get_running_loop().time() + self.timeouts.connect
        try:
            async with asyncio.timeout_at(self._greeting_deadline):
                self._reader, self._writer = await asyncio.open_connection(
                    self.address, self.port, local_addr=local_addr, limit=READ_LIMIT
                )
        except TimeoutError:
            text = f"connect to {where} timed out"
            raise ConnectFailed(self._result(started, CONNECT, text=text, connect_error=True), host_down=True) from None
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else str(error)
            text = f"connect to {where} from {self.source_ip or 'any address'} failed: {reason}"
            if error.errno == errno.EADDRNOTAVAIL:  # the source IP is not on this host: no host would do better
                result = self._result(started, CONNECT, text=text, connect_error=True)
                result.source_unusable = True
                raise ConnectFailed(result, next_host=False) from None
            raise ConnectFailed(self._result(started, CONNECT, text=text, connect_error=True), host_down=True) from None
        try:
            async with asyncio.timeout(self.timeouts.connect):
                await self._handshake(started, where)
        except ConnectFailed:
            self.abort()
            raise
        except TimeoutError:
            self.abort()
            text = f"{where} timed out during the SMTP {self._stage}"
            raise ConnectFailed(
                self._result(started, self._stage, text=text, connect_error=True), host_down=True
            ) from None
        except _OutOfStep as error:
            self.abort()
            text = f"{error} from {where} during the {self._stage}: session out of step, connection dropped"
            raise ConnectFailed(self._result(started, self._stage, text=text, connect_error=True)) from None
        except (_Lost, OSError, ssl.SSLError) as error:
            self.abort()
            text = f"{where} dropped the connection during the {self._stage}: {error}"
            raise ConnectFailed(self._result(started, self._stage, text=text, connect_error=True)) from None
        except BaseException:  # cancelled mid-handshake: do not leave the socket open
            self.abort()
            raise
        self.last_used = time.monotonic()

    async def _handshake(self, started: float, where: str) -> None:
        self._stage = GREETING
        async with asyncio.timeout_at(self._greeting_deadline):
            greeting = await self._read_reply()
        if greeting.code != 220:  # 421: the host is busy or going down (a circuit breaker matter); 554: not for us
            raise ConnectFailed(self._result(started, GREETING, reply=greeting), host_down=greeting.code == 421)
        self._stage = HANDSHAKE
        await self._ehlo(started)
        if self.use_tls and "STARTTLS" in self.extensions:
            await self._starttls(started, where)
        elif self.tls_policy == REQUIRED:
            text = f"TLS is required but {where} does not offer STARTTLS"
            raise ConnectFailed(self._result(started, HANDSHAKE, enhanced="4.7.10", text=text))
        if self.username:
            await self._auth(started, where)

    async def _ehlo(self, started: float) -> None:
        reply = await self._command(f"EHLO {self.ehlo_hostname}".encode())
        if reply.ok:
            self.extensions = {}
            for line in reply.text.split("\n")[1:]:
                keyword, _, params = line.strip().partition(" ")
                if keyword:
                    self.extensions[keyword.upper()] = params
            return
        if reply.code == 421:
            raise ConnectFailed(self._result(started, HANDSHAKE, reply=reply))
        reply = await self._command(f"HELO {self.ehlo_hostname}".encode())
        if not reply.ok:
            raise ConnectFailed(self._result(started, HANDSHAKE, reply=reply))
        self.extensions = {}

    async def _starttls(self, started: float, where: str) -> None:
        reply = await self._command(b"STARTTLS")
        if not reply.ok:
            if self.tls_policy == REQUIRED:
                text = f"TLS is required but {where} refused STARTTLS: {reply}"
                raise ConnectFailed(self._result(started, HANDSHAKE, enhanced="4.7.10", text=text))
            return  # opportunistic: carry on in plain text
        if self._buffered():
            # RFC 3207: nothing sent before the handshake may be used after it. A server that pipelines past its 220
            # is misbehaving (or someone is injecting): drop it rather than read its plaintext as TLS replies.
            text = (
                f"{where} sent more after its 220 to STARTTLS, before the TLS handshake: session out of step, "
                "connection dropped (RFC 3207)"
            )
            raise ConnectFailed(self._result(started, HANDSHAKE, text=text, connect_error=True))
        context = tls_context(self.tls_policy, self.tls_cafile, self.tls_verify)
        try:
            await self._writer.start_tls(context, server_hostname=self.host)
        except ssl.SSLCertVerificationError as error:
            if self.tls_policy != REQUIRED:
                text = f"the certificate of {where} failed verification: {error.verify_message}"
                raise ConnectFailed(
                    self._result(started, HANDSHAKE, enhanced="4.7.5", text=text), tls_failed=True, unverified=True
                ) from None
            text = f"TLS is required but the certificate of {where} failed verification: {error.verify_message}"
            raise ConnectFailed(self._result(started, HANDSHAKE, enhanced="4.7.5", text=text)) from None
        except (ssl.SSLError, OSError) as error:
            text = f"TLS handshake with {where} failed: {error}"
            raise ConnectFailed(
                self._result(
                    started, HANDSHAKE, enhanced="4.7.5" if self.tls_policy == REQUIRED else "4.4.2", text=text
                ),
                next_host=True,
                tls_failed=True,
            ) from None
        ssl_object = self._writer.get_extra_info("ssl_object")
        self.tls_version = ssl_object.version() if ssl_object is not None else None
        self.tls_verified = context.verify_mode == ssl.CERT_REQUIRED
        await self._ehlo(started)

    async def _auth(self, started: float, where: str) -> None:
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        user, password = self.username.encode(), (self.password or "").encode()
        if "PLAIN" in mechanisms:
            token = base64.b64encode(b"\0" + user + b"\0" + password)
            reply = await self._command(b"AUTH PLAIN " + token)
        elif "LOGIN" in mechanisms:
            reply = await self._command(b"AUTH LOGIN")
            if reply.code == 334:
                reply = await self._command(base64.b64encode(user))
            if reply.code == 334:
                reply = await self._command(base64.b64encode(password))
        else:
            text = f"{where} offers no AUTH PLAIN or LOGIN (offered: {' '.join(mechanisms) or 'none'})"
            raise ConnectFailed(self._result(started, HANDSHAKE, enhanced="4.7.8", text=text), next_host=False)
        if reply.code != 235:
            text = f"authentication to {where} as {self.username} failed: {reply}"
            raise ConnectFailed(self._result(started, HANDSHAKE, enhanced="4.7.8", text=text), next_host=False)

    # -- transactions -----------------------------------------------------------------------------------------------

    def _mail_params(self, payload: bytes, mail_from: str, rcpt_to: str) -> str:
        params = ""
        if "SIZE" in self.extensions:
            params += f" SIZE={len(payload)}"
        if "8BITMIME" in self.extensions and not payload.isascii():
            params += " BODY=8BITMIME"
        if "SMTPUTF8" in self.extensions and not (mail_from.isascii() and rcpt_to.isascii()):
            params += " SMTPUTF8"
        return params

    async def send(self, message) -> SendResult:
        """Send one message (one envelope recipient) and classify the outcome.

        Raises NotSent when a connection reused from the pool proves dead before anything was accepted.
        """
        started = time.monotonic()
        if not _check_address(message.mail_from):
            text = f"Invalid envelope sender {message.mail_from!r}"
            return self._result(started, ENVELOPE, enhanced="5.1.7", text=text)
        if not _check_address(message.rcpt_to) or not message.rcpt_to:
            return self._result(
                started, ENVELOPE, enhanced="5.1.3", text=f"Invalid recipient address {message.rcpt_to!r}"
            )
        payload = _dot_stuff(message.data)
        mail_from, rcpt_to = message.mail_from, message.rcpt_to
        encoding = "utf-8" if "SMTPUTF8" in self.extensions else "ascii"
        try:
            mail = f"MAIL FROM:<{mail_from}>{self._mail_params(payload, mail_from, rcpt_to)}".encode(encoding)
            rcpt = f"RCPT TO:<{rcpt_to}>".encode(encoding)
        except UnicodeEncodeError:
            text = f"{self.host} does not offer SMTPUTF8, needed for {rcpt_to!r} / {mail_from!r}"
            return self._result(started, ENVELOPE, enhanced="5.6.7", text=text)
        reused, self.reused = self.reused, False
        if self._buffered():  # bytes nobody asked for: a reused connection the server gave up on, or out of step
            self.abort()
            if reused:
                raise NotSent("unsolicited data on an idle connection")
            return self._out_of_step(_OutOfStep(MAIL_FROM, "data nobody asked for"), started)
        self.messages_sent += 1
        try:
            if self.pipelining:
                result = await self._send_pipelined(mail, rcpt, payload, started, reused)
            else:
                result = await self._send_stepwise(mail, rcpt, payload, started, reused)
        except _StageError as error:
            self._broken = True
            self.abort()
            if error.nothing_sent and reused:
                raise NotSent(str(error)) from None
            text = f"{error.reason} at {error.stage} with {self.host}[{self.address}]"
            unknown = error.stage == END_OF_DATA
            if unknown:
                text += " (the message may have been delivered)"
            return self._result(started, error.stage, text=text, connect_error=True, unknown=unknown)
        except _OutOfStep as error:
            self.abort()
            return self._out_of_step(error, started)
        except BaseException:  # cancelled (the job timed out) or a bug, mid-transaction: the session is out of step
            self.abort()
            raise
        self.last_used = time.monotonic()
        return result

    def _out_of_step(self, error: _OutOfStep, started: float) -> SendResult:
        """A protocol error: the message defers (never delivered, never bounced on a reply that is not its own) and
        the connection is gone (never back to the pool)."""
        where = f"{self.host}[{self.address}]"
        text = f"{error.what} at {error.stage} from {where}: session out of step, connection dropped"
        if error.unknown:
            text += " (the message may have been delivered)"
        return self._result(started, error.stage, text=text, connect_error=True, unknown=error.unknown)

    @staticmethod
    def _answers(stage: str, reply: Reply, accepted: tuple[int, ...]) -> bool:
        """True when `reply` is the success `accepted` for this command, False for a refusal (4xx/5xx); anything else
        is out of step (raises)."""
        if reply.code in accepted:
            return True
        if 400 <= reply.code < 600:
            return False
        raise _OutOfStep(stage, f"an unexpected {reply.code} reply")

    async def _send_pipelined(self, mail, rcpt, payload, started, reused) -> SendResult:
        rset = self._needs_rset
        self._needs_rset = False
        commands = (b"RSET\r\n" if rset else b"") + mail + CRLF + rcpt + CRLF + b"DATA\r\n"
        async with _stage(MAIL_FROM, self.timeouts.command, nothing_sent=True):
            self._writer.write(commands)
            if rset:
                rset_reply = await self._read_reply()
                if not rset_reply.ok:
                    raise _OutOfStep("RSET", f"an unexpected {rset_reply.code} reply")
            mail_reply = await self._read_reply()
            if reused and mail_reply.code == 421:
                raise _StageError(MAIL_FROM, "421 on a reused connection", nothing_sent=True)
        if mail_reply.code == 421:  # the server hangs up: no more replies will come
            return await self._refused(mail_reply, started, MAIL_FROM)
        mail_ok = self._answers(MAIL_FROM, mail_reply, MAIL_OK)
        async with _stage(RCPT_TO, self.timeouts.command):
            rcpt_reply = await self._read_reply()
        if rcpt_reply.code == 421:
            return await self._refused(rcpt_reply, started, RCPT_TO)
        rcpt_ok = self._answers(RCPT_TO, rcpt_reply, RCPT_OK)
        async with _stage(DATA, self.timeouts.command):
            data_reply = await self._read_reply()
        data_ok = self._answers(DATA, data_reply, DATA_OK)
        if mail_ok and rcpt_ok and data_ok:
            return await self._finish_data(payload, started)
        if data_ok:  # the server accepted DATA anyway: send an empty message, expect a refusal
            async with _stage(DATA, self.timeouts.data):
                self._writer.write(b".\r\n")
                await self._read_reply()
        stage, failed = (
            (MAIL_FROM, mail_reply) if not mail_ok else (RCPT_TO, rcpt_reply) if not rcpt_ok else (DATA, data_reply)
        )
        return await self._refused(failed, started, stage)

    async def _send_stepwise(self, mail, rcpt, payload, started, reused) -> SendResult:
        async with _stage(MAIL_FROM, self.timeouts.command, nothing_sent=True):
            reply = await self._command(mail)
            if reused and reply.code == 421:
                raise _StageError(MAIL_FROM, "421 on a reused connection", nothing_sent=True)
        if not self._answers(MAIL_FROM, reply, MAIL_OK):
            return await self._refused(reply, started, MAIL_FROM)
        async with _stage(RCPT_TO, self.timeouts.command):
            reply = await self._command(rcpt)
        if not self._answers(RCPT_TO, reply, RCPT_OK):
            return await self._refused(reply, started, RCPT_TO)
        async with _stage(DATA, self.timeouts.command):
            reply = await self._command(b"DATA")
        if not self._answers(DATA, reply, DATA_OK):
            return await self._refused(reply, started, DATA)
        return await self._finish_data(payload, started)

    async def _finish_data(self, payload: bytes, started: float) -> SendResult:
        """Send the message and read the one reply that decides it: delivered only on a 2xx to the end of its own
        data, with nothing else pending (a reply that came before the data was sent cannot be its answer)."""
        async with _stage(END_OF_DATA, self.timeouts.data):
            if self._buffered():
                raise _OutOfStep(DATA, "a reply before the message was sent")
            self._writer.write(payload)
            await self._writer.drain()
            reply = await self._read_reply()
        if self._buffered():
            raise _OutOfStep(END_OF_DATA, f"more than one reply ({reply.code} and more)", unknown=True)
        if reply.ok:
            return self._result(started, END_OF_DATA, reply=reply)
        if 400 <= reply.code < 600:
            return await self._refused(reply, started, END_OF_DATA)
        raise _OutOfStep(END_OF_DATA, f"an unexpected {reply.code} reply", unknown=True)

    async def _refused(self, reply: Reply, started: float, stage: str) -> SendResult:
        """A refused transaction: the reply to the command of `stage`. Resets the session (pipelined with the next
        MAIL when possible)."""
        if reply.code == 421:
            self._broken = True
            self.abort()
        elif self.pipelining:
            self._needs_rset = True
        else:
            try:
                async with _stage("RSET", self.timeouts.command):
                    rset = await self._command(b"RSET")
                if not rset.ok:
                    self._broken = True
            except (_StageError, _OutOfStep):
                self._broken = True
                self.abort()
        return self._result(started, stage, reply=reply)

    async def reset(self) -> None:
        """RSET: abandon the current transaction (pipelined ones are reset lazily, before the next MAIL)."""
        self._needs_rset = False
        reply = await asyncio.wait_for(self._command(b"RSET"), self.timeouts.command)
        if not reply.ok:
            self._broken = True

    async def quit(self) -> None:
        """QUIT politely (bounded by the command timeout) and close."""
        if self._writer is None:
            return
        try:
            if self.usable:
                async with asyncio.timeout(self.timeouts.command):
                    await self._command(b"QUIT")
        except (TimeoutError, _Lost, OSError, ssl.SSLError):
            pass
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the connection without QUIT."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        writer.close()
        try:
            async with asyncio.timeout(1):
                await writer.wait_closed()
        except (TimeoutError, OSError, ssl.SSLError):
            writer.transport.abort()

    def abort(self) -> None:
        """Drop the connection at once."""
        self._broken = True
        if self._writer is not None:
            self._writer.transport.abort()
            self._writer = None

    # -- wire -------------------------------------------------------------------------------------------------------

    def _buffered(self) -> int:
        """Bytes received and not read yet. Between a reply and the next command there must be none: anything there
        answers nothing we sent. (StreamReader has no public accessor for its buffer.)"""
        return len(self._reader._buffer) if self._reader is not None else 0

    async def _command(self, line: bytes) -> Reply:
        if self._writer is None:
            raise _Lost("not connected")
        if self._buffered():
            raise _OutOfStep(line.split(b" ", 1)[0].decode("ascii", "replace"), "data nobody asked for")
        self._writer.write(line + CRLF)
        return await self._read_reply()

    async def _read_reply(self) -> Reply:
        if self._reader is None:
            raise _Lost("not connected")
        lines: list[bytes] = []
        code = b""
        while True:
            try:
                line = await self._reader.readline()
            except (asyncio.LimitOverrunError, ValueError) as error:
                raise _Lost(f"reply line too long: {error}") from None
            if not line.endswith(b"\n"):
                raise _Lost("connection closed by the server")
            # A peer that is not an SMTP server (an HTTP or database port) is named as such; what it said is never
            # echoed into attempt logs (issue 19: no port-scanning through routes).
            if len(line) < 4 and len(line.rstrip()) != 3:
                raise _Lost("a reply that is not SMTP")
            this_code, separator = line[:3], line[3:4]
            if not this_code.isdigit() or (code and this_code != code) or separator not in (b" ", b"-", b"\r", b"\n"):
                raise _Lost("a reply that is not SMTP")
            code = this_code
            lines.append(line[4:].rstrip(b"\r\n"))
            if separator != b"-":
                break
            if len(lines) > MAX_REPLY_LINES:
                raise _Lost("reply too long")
        first = lines[0]
        match = _ENHANCED.match(first)
        enhanced = None
        if match is not None and match.group(1)[:1] == code[:1]:
            enhanced = match.group(1).decode()
            lines[0] = first[match.end() :]
        text = "\n".join(line.decode("utf-8", "replace") for line in lines)
        return Reply(int(code), enhanced, text)


class _StageError(Exception):
    def __init__(self, stage: str, reason: str, *, nothing_sent: bool = False):
        super().__init__(f"{reason} at {stage}")
        self.stage = stage
        self.reason = reason
        self.nothing_sent = nothing_sent


class _stage:
    """`async with _stage(name, timeout)`: turn a timeout or lost connection into a _StageError naming the stage."""

    def __init__(self, name: str, timeout: float, *, nothing_sent: bool = False):
        self.name = name
        self.nothing_sent = nothing_sent
        self._timeout = asyncio.timeout(timeout)

    async def __aenter__(self):
        await self._timeout.__aenter__()
        return self

    async def __aexit__(self, exc_type, exc, tb):
        try:
            await self._timeout.__aexit__(exc_type, exc, tb)
        except TimeoutError:
            raise _StageError(self.name, "timed out waiting for the reply") from None
        if exc_type is None or exc_type is _StageError:
            return False
        if issubclass(exc_type, _Lost | ConnectionError | OSError | ssl.SSLError | asyncio.IncompleteReadError):
            raise _StageError(self.name, f"connection lost ({exc})", nothing_sent=self.nothing_sent) from None
        return False


def _dot_stuff(data: bytes) -> bytes:
    """The DATA payload: CRLF line endings, lines starting with a dot doubled, final CRLF, then `.` CRLF."""
    data = to_crlf(data)
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(CRLF):
        data += CRLF
    return data + b".\r\n"


def address_family_matches(source_ip: str, address: str) -> bool:
    """Whether a destination address can be reached from `source_ip` (same IP version; any when unbound)."""
    if not source_ip:
        return True
    try:
        return ipaddress.ip_address(source_ip).version == ipaddress.ip_address(address).version
    except ValueError:
        return True
