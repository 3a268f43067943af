"""
The demo capture SMTP server: accepts any mail on loopback and stores it as `CapturedMessage` rows (the
"Test inbox"), with a DKIM verdict. In demo mode, when no route exists, the delivery engine sends all mail here.

DKIM is verified with dkimpy. The public key is looked up in DNS first; a demo domain usually has no DNS, so
the key is then taken from the domain's own DKIM key in the database, and the verdict says so.
"""

import asyncio
import concurrent.futures
import email
import email.policy
import logging

import dkim
from aiosmtpd.smtp import SMTP
from django.conf import settings
from django.db import close_old_connections

from deliveryhub.dns import make_resolver, query
from domains.models import DkimKey

from .models import CapturedMessage, Message

logger = logging.getLogger(__name__)

_executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture-db")


DNS_TIMEOUT_SECONDS = 1.0  # a demo domain usually has no DNS: do not wait long for it


def _dns_txt(name):
    result = query(name, "TXT", resolver=make_resolver(timeout=DNS_TIMEOUT_SECONDS))
    if not result.ok:
        return None
    return b"".join(b"".join(r.strings) for r in result.answer)


def _db_dkim_txt(name):
    """The TXT value of a DKIM key we hold, for `selector._domainkey.domain`."""
    selector, _, rest = name.rstrip(".").partition("._domainkey.")
    if not rest:
        return None
    key = DkimKey.objects.filter(selector=selector, domain__name__iexact=rest).first()
    if key is None:
        return None
    return key.dns_txt_value().encode()


def verify_dkim(data):
    """'pass', 'pass (key from database)', 'fail', 'none' or 'error: …'."""
    if b"dkim-signature:" not in data.lower():
        return "none"
    used_db = []

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        value = _dns_txt(name)
        if value is None:
            value = _db_dkim_txt(name)
            if value is not None:
                used_db.append(name)
        return value

    try:
        ok = dkim.verify(data, dnsfunc=dnsfunc)
    except Exception as exc:
        return f"error: {exc}"[:200]
    if not ok:
        return "fail"
    return "pass (key from database)" if used_db else "pass"


def store(mail_from, rcpt_tos, data, peer, tls):
    """Save one received message (called in the capture server's DB thread)."""
    close_old_connections()
    message_uuid = Message.uuid_from_verp(mail_from)
    message = Message.objects.filter(uuid=message_uuid).first() if message_uuid else None
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    try:
        subject = str(parsed.get("Subject") or "")[:255]
    except Exception:
        subject = ""
    captured = CapturedMessage.objects.create(
        tenant_id=message.tenant_id if message else None, message=message, peer=peer, mail_from=mail_from or "",
        rcpt_tos=list(rcpt_tos), subject=subject, raw=data, dkim_result=verify_dkim(data), tls=tls,
    )  # fmt: skip
    close_old_connections()
    return captured.pk


class CaptureHandler:
    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or b""
        peer = f"{session.peer[0]}:{session.peer[1]}" if session.peer else ""
        try:
            await asyncio.get_running_loop().run_in_executor(
                _executor, store, envelope.mail_from, envelope.rcpt_tos, data, peer, session.ssl is not None
            )
        except Exception:
            logger.exception("Storing a captured message failed")
            return "451 4.3.0 Could not store the message"
        return "250 2.0.0 Captured"


def capture_server_factory():
    """aiosmtpd protocol factory of the capture server."""
    handler = CaptureHandler()
    return lambda: SMTP(handler, hostname="capture.localhost", data_size_limit=settings.MESSAGE_MAX_BYTES)
