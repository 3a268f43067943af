"""
Inbound reports about mail we sent, read by the SMTP listener's inbound port:

- at a VERP return path (`b-<uuid>@<return-path host>`): a delivery status notification (RFC 3464,
  `multipart/report; report-type=delivery-status`) whose per-recipient `Action: failed` marks the message bounced,
  classified like an SMTP reply (the tenant's bounce rules, the platform's, then the defaults; an invalid recipient
  is suppressed); or a feedback-loop complaint (RFC 5965 ARF, `report-type=feedback-report`);
- at a sending domain's registered feedback-loop address (`SendingDomain.feedback_loop_address`, by default
  `fbl@<return-path host>`): an ARF complaint. The original message is found from the embedded `message/rfc822` or
  `text/rfc822-headers` part — our `X-DeliveryHub-Message` header, the VERP return path, or its Message-ID (with
  the report's Original-Rcpt-To or the original's To when the body went to several recipients). Every such report
  is kept as a `FeedbackReport`, matched or not;
- at a domain's DMARC report address: an aggregate report (`domains.dmarc`).

A complaint records a `complained` event (the message's state stays: it was delivered), suppresses the recipient and
counts against the source IP's complaint rate (the campaign's complaint rate counts these events).
"""

import email
import email.policy
import logging
import re
import uuid

from django.db import transaction
from django.utils import timezone

from domains import dmarc
from domains.constants import DMARC_REPORT_LOCAL_PART, FEEDBACK_LOCAL_PART
from domains.models import SendingDomain
from ippools import services as ip_services
from ippools.providers import provider_for

from .choices import EventKind, MessageStatus, RuleAction, SuppressionReason
from .constants import MESSAGE_HEADER, STATUS_DETAIL_MAX
from .delivery.classifier import classify
from .delivery.processor import _admin_rules as bounce_rules_for  # the engine's one choice of a tenant's rules
from .models import FeedbackReport, Message, MessageEvent
from .services import suppress_addresses

logger = logging.getLogger(__name__)

REPORT_RAW_MAX_BYTES = 256 * 1024  # of a feedback report kept as received

_DIAG = re.compile(r"^\s*(?:smtp;\s*)?(?P<code>[245]\d\d)?[\s-]*(?P<enhanced>[245]\.\d{1,3}\.\d{1,3})?\s*(?P<text>.*)$",
                   re.I | re.S)  # fmt: skip
_ANGLE = re.compile(r"<([^>]*)>")


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


def _complain(message, now, detail, data=None):
    MessageEvent.objects.create(message=message, time=now, kind=EventKind.COMPLAINED, detail=detail, data=data or {})
    suppress_addresses(message.tenant_id, [(message.rcpt_to, SuppressionReason.COMPLAINT, str(message.uuid))])
    _record_ip(message, complained=1)


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
            _complain(message, now, "Complaint received (feedback loop).")
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
            verdict = classify(code, enhanced, text, extra_rules=bounce_rules_for(message.tenant_id),
                               provider=provider_for(message.rcpt_domain))  # fmt: skip
            detail = f"Bounce report: {code} {enhanced or ''} {text}".strip()[:STATUS_DETAIL_MAX]
            Message.objects.filter(pk=message.pk).update(
                status=MessageStatus.BOUNCED, status_detail=detail, updated=now
            )
            data = {"code": code, "enhanced": enhanced, "category": verdict.category, "action": verdict.action}
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


# ---------------------------------------------------------------------------------------------------------------------
# Registered addresses: feedback loops and DMARC aggregate reports
# ---------------------------------------------------------------------------------------------------------------------


def _domains_by_return_path(local, host):
    """Sending domains whose return-path host is `host` (owned ones first), when `local` is the expected local part."""
    sub, _, name = host.partition(".")
    if not name:
        return []
    return list(SendingDomain.objects.filter(name=name, return_path_subdomain=sub).order_by("-ownership_verified"))


def report_target(address):
    """("feedback" | "dmarc", the sending domain) for an address of ours that takes reports, else None."""
    address = (address or "").strip().lower()
    local, _, host = address.rpartition("@")
    if not local or not host:
        return None
    domain = SendingDomain.objects.filter(feedback_address__iexact=address).order_by("-ownership_verified").first()
    if domain is not None:
        return "feedback", domain
    if local in (FEEDBACK_LOCAL_PART, DMARC_REPORT_LOCAL_PART):
        for domain in _domains_by_return_path(local, host):
            if local == FEEDBACK_LOCAL_PART and not domain.feedback_address:
                return "feedback", domain
            if local == DMARC_REPORT_LOCAL_PART:
                return "dmarc", domain
    for domain in SendingDomain.objects.filter(dmarc_rua__icontains=address).order_by("-ownership_verified"):
        if address in domain.dmarc_rua_addresses():
            return "dmarc", domain
    return None


def _header_block(msg):
    """The original message's headers from an ARF report (its message/rfc822 or text/rfc822-headers part)."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else payload
            if isinstance(inner, email.message.Message):
                return inner
        if kind == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            return email.message_from_bytes(text.split(b"\r\n\r\n")[0] + b"\r\n\r\n", policy=email.policy.default)
    return None


def _feedback_fields(msg):
    report_type, part = _report_parts(msg)
    if report_type != "feedback-report" or part is None:
        return None
    groups = _status_fields(part)
    fields = {}
    for group in groups:
        fields.update(group)
    return fields


def _find_original(tenant_id, fields, original):
    """(message, how it was matched) for the original of a complaint, or (None, "")."""
    messages = Message.objects.filter(tenant_id=tenant_id)
    if original is not None:
        value = str(original.get(MESSAGE_HEADER, "") or "").strip()
        try:
            found = messages.filter(uuid=uuid.UUID(value)).first() if value else None
        except ValueError:
            found = None
        if found:
            return found, "header"
    for candidate in (str(original.get("Return-Path", "")) if original is not None else "",
                      fields.get("original-mail-from", "")):  # fmt: skip
        match = _ANGLE.search(candidate)
        message_uuid = Message.uuid_from_verp(match.group(1) if match else candidate.strip())
        if message_uuid is not None:
            found = messages.filter(uuid=message_uuid).first()
            if found:
                return found, "verp"
    message_id = str(original.get("Message-ID", "") or "").strip() if original is not None else ""
    if message_id:
        candidates = messages.filter(content__message_id_header=message_id)
        rcpt = fields.get("original-rcpt-to", "") or (str(original.get("To", "")) if original is not None else "")
        rcpt = (_ANGLE.search(rcpt).group(1) if _ANGLE.search(rcpt) else rcpt).strip().lower()
        if rcpt:
            narrowed = [m for m in candidates.filter(rcpt_to__iexact=rcpt)[:2]]
            if len(narrowed) == 1:
                return narrowed[0], "message-id"
        only = list(candidates[:2])
        if len(only) == 1:
            return only[0], "message-id"
    return None, ""


@transaction.atomic
def process_feedback(address, domain, content, *, reporter=""):
    """Keep an ARF report sent to `domain`'s feedback-loop address and apply it to the message it names, if found.
    Returns the FeedbackReport."""
    msg = email.message_from_bytes(content, policy=email.policy.default)
    fields = _feedback_fields(msg) or {}
    original = _header_block(msg)
    message, matched_by = _find_original(domain.tenant_id, fields, original)
    report = FeedbackReport.objects.create(
        tenant_id=domain.tenant_id, sending_domain=domain, rcpt_to=address[:320],
        reporter=(reporter or str(msg.get("From", "")))[:320], feedback_type=fields.get("feedback-type", "")[:40],
        user_agent=fields.get("user-agent", "")[:200], source_ip=fields.get("source-ip", "")[:45],
        original_message_id=str(original.get("Message-ID", "") if original is not None else "")[:255],
        matched_by=matched_by, message=message, raw=content[:REPORT_RAW_MAX_BYTES],
    )  # fmt: skip
    if message is not None:
        _complain(message, timezone.now(), "Complaint received (feedback loop).",
                  {"feedback_type": report.feedback_type, "reporter": report.reporter[:200]})  # fmt: skip
    else:
        logger.info("Feedback report %s at %s matched no message; kept.", report.pk, address)
    return report


def process_addressed(address, content, reporter=""):
    """Handle a report sent to one of our registered addresses. Raises dmarc.ReportRejected for an unusable DMARC
    report; returns what was stored (a FeedbackReport or a DmarcReport), None if the address is not ours."""
    target = report_target(address)
    if target is None:
        return None
    kind, domain = target
    if kind == "feedback":
        return process_feedback(address, domain, content, reporter=reporter)
    return dmarc.ingest_message(domain, content)


def is_addressed(address):
    return report_target(address) is not None

