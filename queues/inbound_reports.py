"""
Inbound reports about mail we sent, matched to the message by its VERP envelope sender:

- a delivery status notification (RFC 3464, `multipart/report; report-type=delivery-status`) whose
  per-recipient `Action: failed` marks the message bounced (classified like an SMTP reply: an invalid
  recipient is suppressed);
- a feedback-loop complaint (RFC 5965 ARF, `report-type=feedback-report`) records a complaint and
  suppresses the recipient.
"""

import email
import email.policy
import logging
import re

from django.db import transaction
from django.utils import timezone

from ippools import services as ip_services
from ippools.providers import provider_for

from .choices import EventKind, MessageStatus, RuleAction, SuppressionReason
from .constants import STATUS_DETAIL_MAX
from .delivery.classifier import classify
from .models import Message, MessageEvent
from .services import suppress_addresses

logger = logging.getLogger(__name__)

_DIAG = re.compile(r"^\s*(?:smtp;\s*)?(?P<code>[245]\d\d)?[\s-]*(?P<enhanced>[245]\.\d{1,3}\.\d{1,3})?\s*(?P<text>.*)$",
                   re.I | re.S)  # fmt: skip


def _messages_for(rcpt_tos):
    uuids = [u for u in (Message.uuid_from_verp(a) for a in rcpt_tos) if u is not None]
    return list(Message.objects.filter(uuid__in=uuids).select_related("source_ip"))


def _report_parts(msg):
    """(report type, the machine-readable part) of a multipart/report, or (None, None)."""
    if msg.get_content_type() != "multipart/report":
        return None, None
    report_type = (msg.get_param("report-type") or "").lower()
    for part in msg.iter_parts():
        if part.get_content_type() in ("message/delivery-status", "message/feedback-report"):
            return report_type, part
    return report_type, None


def _status_fields(part):
    """Per-recipient field groups of a message/delivery-status part (the first group is per-message)."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package parses it as a list of header blocks
        return [dict((k.lower(), str(v)) for k, v in block.items()) for block in payload]
    text = payload if isinstance(payload, str) else part.get_payload(decode=True).decode("utf-8", "replace")
    groups = []
    for block in re.split(r"\r?\n\r?\n", text.strip()):
        fields = {}
        for line in re.split(r"\r?\n(?![ \t])", block):
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        groups.append(fields)
    return groups


@transaction.atomic
def process_report(rcpt_tos, content):
    """Apply an inbound DSN or ARF report to the messages its VERP recipients name. Returns how many changed."""
    messages = _messages_for(rcpt_tos)
    if not messages:
        return 0
    msg = email.message_from_bytes(content, policy=email.policy.default)
    report_type, part = _report_parts(msg)
    now = timezone.now()
    changed = 0
    for message in messages:
        if report_type == "feedback-report":
            MessageEvent.objects.create(message=message, time=now, kind=EventKind.COMPLAINED,
                                        detail="Complaint received (feedback loop).")  # fmt: skip
            suppress_addresses(message.tenant_id, [(message.rcpt_to, SuppressionReason.COMPLAINT, str(message.uuid))])
            _record_ip(message, complained=1)
            changed += 1
        elif report_type == "delivery-status" and part is not None:
            groups = _status_fields(part)[1:] or [{}]
            failed = [g for g in groups if g.get("action", "").lower() == "failed"]
            if not failed:
                continue
            diag = failed[0].get("diagnostic-code", "") or failed[0].get("status", "")
            match = _DIAG.match(diag)
            code = int(match.group("code")) if match and match.group("code") else 550
            enhanced = (match.group("enhanced") if match else None) or failed[0].get("status") or None
            text = (match.group("text") if match else diag) or diag
            verdict = classify(code, enhanced, text)
            detail = f"Bounce report: {code} {enhanced or ''} {text}".strip()[:STATUS_DETAIL_MAX]
            Message.objects.filter(pk=message.pk).update(
                status=MessageStatus.BOUNCED, status_detail=detail, updated=now
            )
            data = {"code": code, "enhanced": enhanced, "category": verdict.category}
            MessageEvent.objects.create(message=message, time=now, kind=EventKind.DSN, detail=detail, data=data)
            if verdict.action == RuleAction.BOUNCE_SUPPRESS:
                suppress_addresses(message.tenant_id, [(message.rcpt_to, SuppressionReason.HARD_BOUNCE, detail)])
            _record_ip(message, bounced=1)
            changed += 1
    return changed


def _record_ip(message, **counts):
    """Count a report against the source IP's reputation (inside the report's transaction: all or nothing)."""
    if message.source_ip is None:
        return
    ip_services.record_outcomes(message.source_ip, provider_for(message.rcpt_domain), **counts)
