"""
The SMTP listener (aiosmtpd): authenticated submission for applications, and inbound reports to our VERP
return-path addresses.

Mail to a campaign's List-Unsubscribe mailto: address (`u-<token>@<return-path host>`, RFC 8058's fallback) is
accepted without AUTH too and unsubscribes the recipient like the one-click POST does.

Submission: STARTTLS is required before anything but EHLO/NOOP/QUIT; AUTH PLAIN/LOGIN is offered only after
STARTTLS and checks `SmtpCredential`s; the message goes through the same `accept_messages()` as the API
and the `250` is sent only after the database committed. Without AUTH, RCPT is refused with 5.7.1 (no
open relay) unless the recipient is one of our VERP bounce addresses, whose mail is read as a report:
a DSN (RFC 3464) marks the message bounced, an ARF complaint (RFC 5965) marks it complained and
suppresses the recipient. AUTH failures go through the sign-in throttle (`deliveryhub.throttle`, per client
address and per user name): while a client must wait, AUTH answers `454 4.7.0 … try again in N seconds`
without checking the password; a client that has not been failing is never held back.

SMTP smuggling: aiosmtpd 1.4.6 ends DATA only at <CR><LF>.<CR><LF> and splits lines only at CRLF, so a
bare-LF variant (<LF>.<CR><LF>, <LF>.<LF>, <CR>.<CR>) never ends a message early — but it would stay in
the content and could end it early at a less careful next hop. We therefore refuse any message holding a
bare CR or bare LF (554 5.6.0), so no such sequence is ever stored or relayed.

Django's ORM is synchronous: database work runs in one worker thread (`_db`), never on the event loop.
"""

import asyncio
import concurrent.futures
import datetime
import email.parser
import email.policy
import logging
import re
import ssl
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import close_old_connections

from deliveryhub import throttle
from deliveryhub.audit import audit_context
from deliveryhub.models import Tenant
from domains.dmarc import ReportRejected

from ..campaigns import services as campaign_services
from ..inbound_reports import is_addressed, process_addressed, process_report, report_target
from ..models import Message, SmtpCredential
from ..services import Submission, accept_messages, authenticate_smtp

logger = logging.getLogger(__name__)

BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")
AUTH_MECHANISMS_EXCLUDED = ("CRAM-MD5", "XOAUTH2")  # only PLAIN and LOGIN
CERT_VALID_DAYS = 825
DB_THREADS = 1  # database work of the listener runs in this many threads (SQLite: one writer anyway)

_executor = concurrent.futures.ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="smtpd-db")


def _in_db_thread(func, *args, **kwargs):
    def call():
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return call


async def _db(func, *args, **kwargs):
    return await asyncio.get_running_loop().run_in_executor(_executor, _in_db_thread(func, *args, **kwargs))


def tls_context(cert=None, key=None):
    """A server TLS context from settings, or a self-signed certificate kept under var/ (development)."""
    cert = cert or settings.SMTPD_TLS_CERT
    key = key or settings.SMTPD_TLS_KEY
    if not cert:
        cert, key = self_signed(Path(settings.VAR_DIR) / "smtpd", settings.SMTPD_HOSTNAME)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def self_signed(directory, hostname):
    """(cert path, key path) of a self-signed certificate for `hostname`, generated once."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.exists() and key_path.exists():
        return str(cert_path), str(key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=CERT_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), str(key_path)


# ---------------------------------------------------------------------------------------------------------------------
# Database work (runs in the DB thread)
# ---------------------------------------------------------------------------------------------------------------------


def _authenticate(username, password, client_ip):
    """(identity, 0) for a valid login, (None, 0) for a wrong one, (None, seconds to wait) while throttled: the
    throttle of sign-ins (per client address, per username) also counts SMTP AUTH failures."""
    verdict = throttle.check(throttle.SMTP, username, client_ip)
    if not verdict.allowed:
        logger.warning("SMTP AUTH refused for %r from %s: %s", username, client_ip, verdict.reason)
        return None, verdict.wait_seconds
    credential = authenticate_smtp(username, password, client_ip)
    if credential is None:
        throttle.record_failure(throttle.SMTP, username, client_ip)
        return None, 0
    throttle.reset(throttle.SMTP, username, client_ip)
    return (credential.pk, credential.tenant_id, credential.username), 0


def _is_report_address(address):
    message_uuid = Message.uuid_from_verp(address)
    if message_uuid is not None and Message.objects.filter(uuid=message_uuid).exists():
        return True
    if campaign_services.message_for_unsubscribe_address(address) is not None:
        return True
    return is_addressed(address)  # a domain's feedback-loop or DMARC report address


def _from_domain(content):
    """The domain of a raw message's From address (lower case), or ""."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(content)
    try:
        addresses = headers["From"].addresses if headers["From"] is not None else ()
    except (IndexError, AttributeError, ValueError):
        return ""
    return addresses[0].domain.lower() if addresses else ""


def _submit(tenant_id, rcpt_tos, content, credential_id=None):
    tenant = Tenant.objects.get(pk=tenant_id, is_active=True)
    credential = SmtpCredential.objects.filter(pk=credential_id, is_active=True).first()
    if credential_id is not None and credential is None:
        raise ValidationError("The SMTP credential was revoked.")
    if credential is not None and not credential.allows_from_domain(_from_domain(content)):
        raise ValidationError({"from": f"This login may send only as {', '.join(credential.allowed_from_domains)}."})
    with audit_context(tenant_id=tenant_id):
        accepted = accept_messages(tenant, Submission(raw=content, envelope_to=list(rcpt_tos)))
    return [str(m.uuid) for m in accepted.messages]


def _report(rcpt_tos, content, mail_from=""):
    """Apply an inbound report to each recipient: an unsubscribe, a registered feedback-loop or DMARC address, or a
    VERP return path. Raises dmarc.ReportRejected for an unusable DMARC report (nothing stored)."""
    reports = [rcpt for rcpt in rcpt_tos if campaign_services.unsubscribe_by_mail(rcpt) is None]
    addressed = [rcpt for rcpt in reports if report_target(rcpt) is not None]
    for rcpt in addressed:
        process_addressed(rcpt, content, reporter=mail_from)
    verp = [rcpt for rcpt in reports if rcpt not in addressed]
    return process_report(verp, content) if verp else 0


# ---------------------------------------------------------------------------------------------------------------------
# aiosmtpd handler
# ---------------------------------------------------------------------------------------------------------------------


def _first_error(exc):
    if hasattr(exc, "message_dict"):
        for field, errors in exc.message_dict.items():
            return f"{field}: {errors[0]}" if field not in ("__all__", "non_field_errors") else errors[0]
    return "; ".join(exc.messages)


def _one_line(text):
    return re.sub(r"[\r\n]+", " ", text)[:400]


class SubmissionHandler:
    """aiosmtpd hooks: relay refused without AUTH, reports accepted for VERP addresses, submission via the service."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        """The inbound port offers no AUTH mechanism: leave out the empty `AUTH` line (RFC 4954 wants at least one)."""
        session.host_name = hostname
        return [line for line in responses if line.rstrip() != "250-AUTH"]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if not session.authenticated:
            if not await _db(_is_report_address, address):
                return "550 5.7.1 Relaying denied: authenticate first (AUTH after STARTTLS)"
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        if len(envelope.rcpt_tos) >= settings.MESSAGE_MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or b""
        if BARE_CR_OR_LF.search(content):
            return "554 5.6.0 Message refused: bare CR or LF line endings are not allowed (RFC 5321 2.3.8)"
        if not session.authenticated:
            try:
                await _db(_report, list(envelope.rcpt_tos), content, envelope.mail_from or "")
            except ReportRejected as exc:
                return f"554 5.6.0 Report refused: {_one_line(str(exc))}"
            except Exception:
                logger.exception("Processing an inbound report failed")
                return "451 4.3.0 Temporary failure processing the report"
            return "250 2.0.0 Report received"
        credential_id, tenant_id, username = session.auth_data
        try:
            ids = await _db(_submit, tenant_id, envelope.rcpt_tos, content, credential_id)
        except ValidationError as exc:
            return f"550 5.6.0 {_one_line(_first_error(exc))}"
        except Exception:
            logger.exception("Submission from %s failed", username)
            return "451 4.3.0 Temporary failure: try again later"
        # The transaction committed inside _submit: only now do we say 250.
        return f"250 2.0.0 OK queued as {ids[0]}" + (f" (+{len(ids) - 1} more)" if len(ids) > 1 else "")


class _Unchecked:
    """Credentials parsed by aiosmtpd's AUTH PLAIN/LOGIN, not checked yet (see SubmissionSMTP)."""

    def __init__(self, login: LoginPassword):
        self.login = login


def authenticator(server, session, envelope, mechanism, auth_data):
    """aiosmtpd calls this synchronously, on the event loop: hand the credentials on to SubmissionSMTP, which checks
    them in the database thread (a database round trip: a slow database must not stall every session)."""
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    return AuthResult(success=False, handled=False, auth_data=_Unchecked(auth_data))  # fails closed if not checked


class SubmissionSMTP(SMTP):
    """aiosmtpd's SMTP with the credential check of AUTH PLAIN and LOGIN awaited off the event loop. aiosmtpd marks
    the session authenticated only after these return, so nothing counts as logged in before the check."""

    async def auth_PLAIN(self, _, args):
        return await self._check(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _, args):
        return await self._check(await super().auth_LOGIN(_, args))

    async def _check(self, result: AuthResult) -> AuthResult:
        if not isinstance(result.auth_data, _Unchecked):
            return result
        credentials = result.auth_data.login
        username = credentials.login.decode("utf-8", errors="replace")
        password = credentials.password.decode("utf-8", errors="replace")
        client_ip = self.session.peer[0] if isinstance(self.session.peer, tuple) else None
        try:
            identity, wait = await _db(_authenticate, username, password, client_ip)
        except Exception:
            logger.exception("Checking SMTP credentials of %r failed", username)
            return AuthResult(success=False, handled=False, message="454 4.7.0 Temporary authentication failure")
        if wait:
            message = f"454 4.7.0 Too many failed authentications: try again in {wait} seconds"
            return AuthResult(success=False, handled=False, message=message)
        if identity is None:
            logger.info("SMTP AUTH failed for %r from %s", username, self.session.peer)
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=identity)


def make_server_factory(context, *, hostname=None, require_tls=True, inbound=False):
    """A factory of aiosmtpd SMTP protocol objects for `loop.create_server`.

    `inbound`: the MX of the return-path hosts (port 25 in production). STARTTLS offered, never required (RFC 3207
    forbids that of a publicly referenced MX, and a bounce from a server without TLS must still arrive), no AUTH:
    only reports to our VERP addresses are taken there.
    """
    handler = SubmissionHandler()
    excluded = ["PLAIN", "LOGIN", *AUTH_MECHANISMS_EXCLUDED] if inbound else AUTH_MECHANISMS_EXCLUDED

    def factory():
        return SubmissionSMTP(
            handler,
            hostname=hostname or settings.SMTPD_HOSTNAME,
            tls_context=context,
            require_starttls=require_tls and not inbound,
            auth_require_tls=True,
            auth_required=False,  # unauthenticated RCPT only to our VERP addresses (handle_RCPT)
            authenticator=authenticator,
            auth_exclude_mechanism=excluded,
            data_size_limit=settings.MESSAGE_MAX_BYTES,
            enable_SMTPUTF8=False,
            decode_data=False,
        )

    return factory


class ThreadedServer:
    """An asyncio SMTP server on its own loop in a background thread (tests; the commands run in the foreground)."""

    def __init__(self, factory, host, port):
        self.factory, self.host, self.port = factory, host, port
        self.loop = self.server = self._thread = None

    def start(self):
        import threading

        ready = threading.Event()

        async def serve():
            self.server = await asyncio.get_running_loop().create_server(self.factory, host=self.host, port=self.port)
            self.port = self.server.sockets[0].getsockname()[1]

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(serve())
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"smtp-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self):
        if self.loop is None:
            return

        async def close():
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Listener(ThreadedServer):
    """The submission listener in a background thread."""

    def __init__(self, host=None, port=None, *, context=None, require_tls=True, inbound=False):
        factory = make_server_factory(context or tls_context(), require_tls=require_tls, inbound=inbound)
        super().__init__(factory, host or settings.SMTPD_HOST, settings.SMTPD_PORT if port is None else port)
