"""Scripted SMTP peers for tests: a real aiosmtpd server on loopback that records everything it receives.

Tests deliver to an :class:`SMTPSink` instead of mocking smtplib, and script how it answers::

    with SMTPSink(tls_cert="self-signed") as sink:
        sink.script("user@x.test", ["421 4.7.0 Try again later", "250 OK"])   # per RCPT attempt, last repeats
        sink.script_data("full@x.test", "552 5.2.2 Mailbox full")             # at end of DATA
        sink.drop_after_data("lost@x.test")                                   # hang up instead of replying
        ...  # deliver to ("127.0.0.1", sink.port), trusting sink.ca_cert_path
        [message] = sink.wait_for_messages(1)
        assert message.peer[0] == "127.0.0.2" and message.tls

The server listens on 127.0.0.1 (which accepts clients bound to any 127.0.0.0/8 source address) and runs its
asyncio loop in a thread of its own. A reply starting with ``421`` closes the connection after it is sent, as a
real server does. Plain Python on aiosmtpd: no Django needed.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime
import email
import email.message
import email.policy
import functools
import ipaddress
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DROP", "STALL", "ReceivedMessage", "SMTPSink", "self_signed_certificate"]

#: A scripted "reply" that closes the connection without answering (usable in :meth:`SMTPSink.script` and
#: :meth:`SMTPSink.script_data`).
DROP = "<drop connection>"
#: A scripted end-of-DATA "reply" that never comes: the server waits until the client hangs up (the message counts as
#: unanswered). For :meth:`SMTPSink.script_data`.
STALL = "<never answer>"
#: Default replies.
RCPT_OK = "250 2.1.5 OK"
DATA_OK = "250 2.0.0 OK: queued"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
#: Seconds :meth:`SMTPSink.stop` waits for open connections to close.
STOP_TIMEOUT = 2.0


@dataclass
class ReceivedMessage:
    """One message as the sink received it at the end of DATA."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # the content exactly as the client sent it (after SMTP dot-unstuffing)
    peer: tuple[str, int]  # the client's source (ip, port)
    tls: bool  # whether the transaction ran over STARTTLS
    ehlo: str  # the EHLO/HELO name the client announced
    received: datetime.datetime  # UTC
    auth_user: str | None = None
    mail_options: list[str] = field(default_factory=list)

    def parse(self) -> email.message.EmailMessage:
        """Return ``data`` parsed as an email message (headers, body, attachments)."""
        return email.message_from_bytes(self.data, policy=email.policy.default)


class SMTPSink:
    """A scripted SMTP server on loopback for tests (see the module docstring).

    Arguments:
        host, port: where to listen; ``port=0`` picks a free port, read it from ``sink.port`` once started.
        tls_cert: None (no STARTTLS offered), ``"self-signed"`` (a throwaway certificate for ``localhost`` and
            ``127.0.0.1``, trusted through ``sink.ca_cert_path``) or a ``(certfile, keyfile)`` pair.
        require_tls: refuse every command but EHLO/HELO/NOOP/QUIT/STARTTLS until STARTTLS.
        auth: ``{"user": "password"}`` enables AUTH PLAIN/LOGIN (offered only after STARTTLS when TLS is
            configured) and requires it before MAIL.
        greeting_delay: seconds to wait before the ``220`` greeting.
        reply_delay: seconds to wait before each RCPT reply and each end-of-DATA reply.
        hostname: the name the server announces.

    Recorded (read them from the test thread at any time): ``messages`` (accepted, as :class:`ReceivedMessage`),
    ``rejected`` (refused at end of DATA), ``unanswered`` (received in full but never answered: dropped, or the
    client hung up during ``reply_delay``), ``connections`` (accepted connections; aiosmtpd's own start-up
    probe is not counted) and ``transactions`` (MAIL FROM commands accepted).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls_cert: str | tuple[str, str] | None = None,
        require_tls: bool = False,
        auth: dict[str, str] | None = None,
        greeting_delay: float = 0,
        reply_delay: float = 0.0,
        hostname: str = "sink.localhost",
    ):
        if require_tls and tls_cert is None:
            raise ValueError("require_tls needs tls_cert")
        self.host = host
        self.port = port
        self.hostname = hostname
        self.require_tls = require_tls
        self.auth = dict(auth) if auth is not None else None
        self.greeting_delay = greeting_delay
        self.reply_delay = reply_delay
        self.cert_path: str | None = None
        self.key_path: str | None = None
        self.ca_cert_path: str | None = None
        if tls_cert == "self-signed":
            self.cert_path, self.key_path, self.ca_cert_path = self_signed_certificate()
        elif tls_cert is not None:
            self.cert_path, self.key_path = tls_cert
            self.ca_cert_path = self.cert_path
        self.messages: list[ReceivedMessage] = []
        self.rejected: list[ReceivedMessage] = []
        self.unanswered: list[ReceivedMessage] = []
        self.stalled: list[ReceivedMessage] = []  # end of DATA scripted STALL: waiting for an answer that never comes
        self.connections = 0
        self.transactions = 0
        self._requested_port = port
        self._rcpt_scripts: dict[str, list[str]] = {}
        self._data_scripts: dict[str, list[str]] = {}
        self._rcpt_attempts: dict[str, int] = {}
        self._data_attempts: dict[str, int] = {}
        self._changed = threading.Condition()
        self._controller: _SinkController | None = None

    # -- life cycle -------------------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``"host:port"``."""
        return f"{self.host}:{self.port}"

    @property
    def tls(self) -> bool:
        """Whether STARTTLS is offered."""
        return self.cert_path is not None

    def start(self) -> Self:
        """Start listening (in a thread of its own); returns ``self``."""
        if self._controller is not None:
            raise RuntimeError("SMTPSink already started")
        tls_context = None
        if self.tls:
            tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls_context.load_cert_chain(self.cert_path, self.key_path)
        controller = _SinkController(
            _SinkHandler(self),
            hostname=self.host,
            port=self._requested_port,
            server_hostname=self.hostname,
            tls_context=tls_context,
            require_starttls=self.require_tls,
            auth_require_tls=self.tls,
            authenticator=self._authenticate,
        )
        controller.start()
        self._controller = controller
        self.port = controller.port
        return self

    def stop(self) -> None:
        """Close every connection and stop listening. Safe to call twice."""
        if self._controller is None:
            return
        self._controller.stop()
        self._controller = None
        self.port = self._requested_port

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SMTPSink {self.address} messages={len(self.messages)}>"

    # -- scripting ------------------------------------------------------------------------------------------------

    def script(self, rcpt: str, replies: str | Iterable[str]) -> None:
        """Answer RCPT TO ``rcpt`` with ``replies``, one per attempt, the last one repeating.

        A 2xx reply accepts the recipient; anything else refuses it; :data:`DROP` hangs up instead.
        """
        self._rcpt_scripts[rcpt.lower()] = self._replies(replies)

    def script_data(self, rcpt: str, replies: str | Iterable[str]) -> None:
        """Answer the end of DATA with ``replies`` (one per transaction, the last repeating) when ``rcpt`` is in it.

        When several scripted recipients share a transaction, the first non-2xx reply among theirs wins.
        """
        self._data_scripts[rcpt.lower()] = self._replies(replies)

    def drop_after_data(self, rcpt: str, times: int | None = None) -> None:
        """Close the connection without replying after DATA for ``rcpt``: always, or the first ``times`` times."""
        self.script_data(rcpt, [DROP] if times is None else [DROP] * times + [DATA_OK])

    def rcpt_attempts(self, rcpt: str) -> int:
        """How many RCPT TO commands named ``rcpt``."""
        return self._rcpt_attempts.get(rcpt.lower(), 0)

    def reset(self) -> None:
        """Forget scripts and everything recorded."""
        with self._changed:
            self._rcpt_scripts.clear()
            self._data_scripts.clear()
            self._rcpt_attempts.clear()
            self._data_attempts.clear()
            self.messages.clear()
            self.rejected.clear()
            self.unanswered.clear()
            self.stalled.clear()
            self.connections = self.transactions = 0

    def wait_for_messages(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages were accepted and return them; TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(f"{self!r}: expected {count} message(s) within {timeout}s")
            return list(self.messages)

    @staticmethod
    def _replies(replies: str | Iterable[str]) -> list[str]:
        replies = [replies] if isinstance(replies, str) else list(replies)
        if not replies:
            raise ValueError("a script needs at least one reply")
        return replies

    # -- called from the server thread ----------------------------------------------------------------------------

    @staticmethod
    def _next(scripts: dict[str, list[str]], attempts: dict[str, int], rcpt: str) -> str | None:
        key = rcpt.lower()
        attempt = attempts.get(key, 0)
        attempts[key] = attempt + 1
        replies = scripts.get(key)
        return None if replies is None else replies[min(attempt, len(replies) - 1)]

    def _rcpt_reply(self, rcpt: str) -> str:
        with self._changed:
            return self._next(self._rcpt_scripts, self._rcpt_attempts, rcpt) or RCPT_OK

    def _data_reply(self, rcpts: list[str]) -> str:
        with self._changed:
            replies = [self._next(self._data_scripts, self._data_attempts, rcpt) for rcpt in rcpts]
        scripted = [reply for reply in replies if reply is not None]
        refusals = [reply for reply in scripted if not reply.startswith("2")]
        return (refusals or scripted or [DATA_OK])[0]

    def _record(self, kind: str, message: ReceivedMessage | None = None) -> None:
        with self._changed:
            if kind == "connection":
                self.connections += 1
            elif kind == "transaction":
                self.transactions += 1
            else:
                getattr(self, kind).append(message)
            self._changed.notify_all()

    def _authenticate(self, server, session, envelope, mechanism: str, auth_data) -> AuthResult:
        ok = (
            self.auth is not None
            and isinstance(auth_data, LoginPassword)
            and self.auth.get(auth_data.login.decode(errors="replace")) == auth_data.password.decode(errors="replace")
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class _SinkHandler:
    """aiosmtpd hooks applying an :class:`SMTPSink`'s scripts and recording into it."""

    def __init__(self, sink: SMTPSink):
        self.sink = sink

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses):
        session.host_name = hostname
        if self.sink.auth is None:
            responses = [line for line in responses if not line[4:].startswith("AUTH")]
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, options):
        if self.sink.auth is not None and not session.authenticated:
            return AUTH_REQUIRED
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        self.sink._record("transaction")
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options):
        reply = self.sink._rcpt_reply(address)
        if self.sink.reply_delay:
            await asyncio.sleep(self.sink.reply_delay)
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope):
        credentials = session.auth_data
        message = ReceivedMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(envelope.original_content),
            peer=tuple(session.peer[:2]),
            tls=session.ssl is not None,
            ehlo=session.host_name or "",
            received=datetime.datetime.now(datetime.UTC),
            auth_user=credentials.login.decode(errors="replace") if isinstance(credentials, LoginPassword) else None,
            mail_options=list(envelope.mail_options),
        )
        reply = self.sink._data_reply(message.rcpt_tos)
        try:
            if self.sink.reply_delay:
                await asyncio.sleep(self.sink.reply_delay)
            if reply == STALL:
                self.sink._record("stalled", message)
                await asyncio.sleep(3600)
        except asyncio.CancelledError:  # the client hung up while we stalled
            self.sink._record("unanswered", message)
            raise
        if reply == DROP:
            self.sink._record("unanswered", message)
        else:
            self.sink._record("messages" if reply.startswith("2") else "rejected", message)
        return reply


class _SinkSMTP(SMTP):
    """aiosmtpd's SMTP protocol plus: connection counting, a greeting delay, :data:`DROP` and closing after 421."""

    def __init__(self, handler: _SinkHandler, *, probe: bool, controller: _SinkController, **kwargs):
        super().__init__(handler, **kwargs)
        self._sink = handler.sink
        self._probe = probe
        self._controller = controller

    def connection_made(self, transport) -> None:
        self._controller.opened(self)  # (called again after STARTTLS: no harm)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._controller.closed(self)

    def abort(self) -> None:
        """Drop the connection at once (used when the sink stops)."""
        transport = self._original_transport or self.transport
        if transport is not None:
            transport.abort()

    async def _handle_client(self) -> None:
        if not self._probe:
            self._sink._record("connection")
            if self._sink.greeting_delay:
                await asyncio.sleep(self._sink.greeting_delay)
        await super()._handle_client()

    async def push(self, status: str | bytes) -> None:
        if status == DROP:
            self.transport.close()
            return
        await super().push(status)
        if isinstance(status, str) and status.startswith("421") and self.transport is not None:
            self.transport.close()


class _SinkController(Controller):
    """aiosmtpd Controller that builds :class:`_SinkSMTP` servers and supports ``port=0``."""

    def __init__(self, handler: _SinkHandler, **kwargs):
        super().__init__(handler, **kwargs)
        self._probe_pending = False
        self._active: set[_SinkSMTP] = set()
        self._all_closed: asyncio.Event | None = None

    def start(self) -> None:
        # The Controller connects once to check the server answers; the first connection is that probe.
        self._probe_pending = True
        super().start()

    def stop(self, no_assert: bool = False) -> None:
        """Drop open connections cleanly (no unclosed transports left behind), then stop the loop and thread."""
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self._drop_connections(), self.loop).result(timeout=STOP_TIMEOUT)
        super().stop(no_assert=no_assert)

    async def _drop_connections(self) -> None:
        self._all_closed = asyncio.Event()
        if not self._active:
            return
        for server in list(self._active):
            server.abort()
        await asyncio.wait_for(self._all_closed.wait(), STOP_TIMEOUT / 2)

    def opened(self, server: _SinkSMTP) -> None:
        """Track an open connection (called in the loop thread)."""
        self._active.add(server)

    def closed(self, server: _SinkSMTP) -> None:
        """Forget a closed connection (called in the loop thread)."""
        self._active.discard(server)
        if not self._active and self._all_closed is not None:
            self._all_closed.set()

    def factory(self) -> SMTP:
        probe, self._probe_pending = self._probe_pending, False
        return _SinkSMTP(self.handler, probe=probe, controller=self, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@functools.lru_cache(maxsize=1)
def self_signed_certificate() -> tuple[str, str, str]:
    """Return ``(cert_path, key_path, ca_cert_path)`` of a throwaway certificate for localhost and 127.0.0.1.

    A test CA signs the server certificate, so that ``ssl.create_default_context(cafile=ca_cert_path)``
    verifies it with full checks. Generated once per process into a temporary directory removed at exit.
    """
    now = datetime.datetime.now(datetime.UTC)
    valid_from, valid_until = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DeliveryHub test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_until)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory = Path(tempfile.mkdtemp(prefix="deliveryhub-test-tls-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    paths = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return tuple(str(path) for path in paths)


def _key_usage(**enabled: bool) -> x509.KeyUsage:
    """Return a KeyUsage extension with only the ``enabled`` bits set."""
    bits = [
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    ]
    return x509.KeyUsage(**{bit: enabled.get(bit, False) for bit in bits})
