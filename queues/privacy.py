"""
Personal data of the queues app for data-subject requests and retention (registered with deliveryhub.privacy).

Access and erasure find a subject's messages through the (tenant, lower(rcpt_to)) index and their attempts and
events through the message foreign key, a chunk of messages at a time: never a scan of the attempts table.

Erasure: recipient addresses become their pseudonyms in messages, and every text that may quote them (status
details, SMTP replies, event details and data, metadata, suppression sources, stored API answers) is scrubbed;
the subject's bodies are deleted (a body still going to other recipients keeps its text with the address replaced);
unsent messages to the subject are cancelled; captured test mail to the subject is deleted; a suppression remains,
as the pseudonym only, so the person is never mailed again.

Retention: bodies of messages in a final state, final messages with their attempts and events, and captured test
mail, each deleted in chunks (one short transaction per chunk) so that delivery goes on meanwhile. Rows that are
not final are never touched.
"""

import time

from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.db.models.functions import Lower
from django.utils import timezone

from deliveryhub import privacy
from deliveryhub.privacy import normalise_address

from .campaigns import privacy as campaign_privacy  # noqa: F401 (registers contacts and import files)
from .choices import FINAL_STATUSES, EventKind, MessageStatus, SuppressionReason
from .models import CapturedMessage, DeliveryAttempt, IdempotencyKey, Message, MessageContent, MessageEvent, Suppression

CHUNK = 500  # messages read (and their attempts and events) per query
SIGNAL_KINDS = (EventKind.COMPLAINED, EventKind.DSN)  # unsubscribes are suppressions (reason "unsubscribe")
ERASURE_IN_FLIGHT_WAIT = 60  # seconds an erasure waits for the subject's messages being sent right now


def subject_messages(subject):
    """The subject's messages, through the (tenant, lower(rcpt_to)) index."""
    return Message.objects.alias(rcpt_lower=Lower("rcpt_to")).filter(
        tenant_id=subject.tenant_id, rcpt_lower__in=subject.addresses
    )


def _iso(value):
    return value.isoformat() if value else None


def _chunks(queryset):
    """Lists of rows in id order, CHUNK per query (keyset pagination)."""
    last = 0
    while True:
        rows = list(queryset.filter(pk__gt=last).order_by("pk")[:CHUNK])
        if not rows:
            return
        yield rows
        last = rows[-1].pk


# ---------------------------------------------------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------------------------------------------------


@privacy.subject_data("messages", title="Messages, delivery attempts and events", order=20,
                      columns=("created", "recipient", "status", "subject"))  # fmt: skip
def messages_of(subject):
    queryset = subject_messages(subject).select_related("content", "sending_domain").defer("content__raw")
    for chunk in _chunks(queryset):
        ids = [m.pk for m in chunk]
        attempts, events = {}, {}
        for attempt in DeliveryAttempt.objects.filter(message_id__in=ids).order_by("time", "id"):
            attempts.setdefault(attempt.message_id, []).append(attempt)
        for event in MessageEvent.objects.filter(message_id__in=ids).order_by("time", "id"):
            events.setdefault(event.message_id, []).append(event)
        for m in chunk:
            yield {
                "id": str(m.uuid),
                "created": _iso(m.created),
                "recipient": m.rcpt_to,
                "from": m.content.from_header,
                "subject": m.content.subject,
                "message_id_header": m.content.message_id_header,
                "content_id": m.content_id,
                "sending_domain": m.sending_domain.name,
                "status": m.status,
                "status_detail": m.status_detail,
                "attempts_count": m.attempts,
                "send_at": _iso(m.send_at),
                "delivered_at": _iso(m.delivered_at),
                "tag": m.tag,
                "metadata": m.metadata,
                "attempts": [
                    {
                        "time": _iso(a.time), "status": a.status, "source_ip": a.source_ip, "mx_host": a.mx_host,
                        "tls": a.tls_version, "code": a.code, "enhanced_code": a.enhanced_code, "text": a.text,
                        "duration": a.duration, "category": a.category,
                    }
                    for a in attempts.get(m.pk, ())
                ],  # fmt: skip
                "events": [
                    {"time": _iso(e.time), "kind": e.kind, "detail": e.detail, "data": e.data}
                    for e in events.get(m.pk, ())
                ],
            }


@privacy.subject_data("message_bodies", title="Message bodies held", order=21,
                      columns=("content_id", "created", "subject", "size"))  # fmt: skip
def bodies_of(subject):
    content_ids = subject_messages(subject).values("content_id")
    queryset = MessageContent.objects.filter(pk__in=content_ids, purged_at__isnull=True)
    for chunk in _chunks(queryset):
        for content in chunk:
            yield {
                "content_id": content.pk,
                "created": _iso(content.created),
                "subject": content.subject,
                "size": content.size,
                "raw": bytes(content.raw).decode("utf-8", "replace"),
            }


@privacy.subject_data("signals", title="Complaints, unsubscribes and bounce reports", order=25,
                      columns=("time", "kind", "recipient", "detail"))  # fmt: skip
def signals_of(subject):
    events = MessageEvent.objects.filter(
        message__in=subject_messages(subject).values("pk"), kind__in=SIGNAL_KINDS
    ).select_related("message")
    for chunk in _chunks(events):
        for event in chunk:
            yield {"time": _iso(event.time), "kind": event.kind, "recipient": event.message.rcpt_to,
                   "message": str(event.message.uuid), "detail": event.detail, "data": event.data}  # fmt: skip


@privacy.subject_data("suppressions", title="Suppression list", order=30,
                      columns=("address", "reason", "created"))  # fmt: skip
def suppressions_of(subject):
    wanted = list(subject.addresses) + list(subject.pseudonyms.values())
    for row in Suppression.objects.filter(tenant_id=subject.tenant_id, address__in=wanted).order_by("created"):
        yield {"address": row.address, "reason": row.reason, "source": row.source, "created": _iso(row.created),
               "erased": row.address in subject.pseudonyms.values()}  # fmt: skip


def _captured_of(subject):
    query = Q()
    for address in subject.addresses:
        query |= Q(rcpt_tos__icontains=address)
    return CapturedMessage.objects.filter(query, tenant_id=subject.tenant_id)


@privacy.subject_data("captured_mail", title="Captured test mail", order=60,
                      columns=("received", "subject", "recipients"))  # fmt: skip
def captured_of(subject):
    for chunk in _chunks(_captured_of(subject)):
        for captured in chunk:
            recipients = [r for r in captured.rcpt_tos if normalise_address(r) in subject.addresses]
            if not recipients:
                continue  # matched a longer address containing the subject's
            yield {"received": _iso(captured.received), "subject": captured.subject, "recipients": recipients,
                   "raw": bytes(captured.raw).decode("utf-8", "replace")}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Erasure
# ---------------------------------------------------------------------------------------------------------------------


def _wait_for_in_flight(subject):
    """Messages being sent right now would be written back by their worker: wait until they are not."""
    deadline = time.monotonic() + ERASURE_IN_FLIGHT_WAIT
    while subject_messages(subject).filter(status=MessageStatus.SENDING).exists():
        if time.monotonic() > deadline:
            raise privacy.ErasureBlocked(
                "Messages to this address are being delivered right now; run the erasure again in a few minutes."
            )
        time.sleep(1)


@privacy.subject_erasure("messages", order=20)
def erase_messages(subject):
    """Cancel the subject's unsent mail, pseudonymise their messages, scrub attempts and events, delete bodies."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("erase_messages runs inside the erasure's transaction.")
    _wait_for_in_flight(subject)
    now = timezone.now()
    counts = {"messages": 0, "messages_cancelled": 0, "attempts": 0, "events": 0, "bodies_deleted": 0,
              "bodies_scrubbed": 0}  # fmt: skip
    content_ids = set()
    for chunk in _chunks(subject_messages(subject)):
        ids = [m.pk for m in chunk]
        for m in chunk:
            content_ids.add(m.content_id)
            m.rcpt_to = subject.scrub(m.rcpt_to)
            m.status_detail = subject.scrub(m.status_detail)
            m.metadata = subject.scrub_json(m.metadata)
            m.tag = subject.scrub(m.tag)
            if m.status not in FINAL_STATUSES:
                m.status, m.status_detail = MessageStatus.CANCELLED, "Cancelled: the recipient's data was erased."
                m.lease_owner = m.lease_expires = None
                counts["messages_cancelled"] += 1
            m.updated = now
        Message.objects.bulk_update(
            chunk, ["rcpt_to", "status_detail", "metadata", "tag", "status", "lease_owner", "lease_expires", "updated"]
        )
        counts["messages"] += len(chunk)
        attempts = list(DeliveryAttempt.objects.filter(message_id__in=ids).only("id", "text"))
        for attempt in attempts:
            attempt.text = subject.scrub(attempt.text)
        DeliveryAttempt.objects.bulk_update(attempts, ["text"], batch_size=CHUNK)
        counts["attempts"] += len(attempts)
        events = list(MessageEvent.objects.filter(message_id__in=ids).only("id", "detail", "data"))
        for event in events:
            event.detail, event.data = subject.scrub(event.detail), subject.scrub_json(event.data)
        MessageEvent.objects.bulk_update(events, ["detail", "data"], batch_size=CHUNK)
        counts["events"] += len(events)
    for content in MessageContent.objects.filter(pk__in=content_ids, purged_at__isnull=True):
        others_pending = (
            Message.objects.filter(content_id=content.pk).exclude(status__in=FINAL_STATUSES).exists()
        )  # the subject's own are cancelled by now: pending rows belong to other recipients
        content.subject, content.from_header = subject.scrub(content.subject), subject.scrub(content.from_header)
        if others_pending:
            content.raw = subject.scrub_bytes(bytes(content.raw))
            counts["bodies_scrubbed"] += 1
        else:
            content.raw, content.purged_at = b"", now
            counts["bodies_deleted"] += 1
        content.save(update_fields=["raw", "subject", "from_header", "purged_at"])
    return counts


@privacy.subject_erasure("suppressions", order=30)
def erase_suppressions(subject):
    """Every suppression of the subject becomes one row holding only the pseudonym; one is added if none existed."""
    replaced = 0
    for address, alias in subject.pseudonyms.items():
        rows = list(Suppression.objects.filter(tenant_id=subject.tenant_id, address__in=[address, alias]))
        keep = next((row for row in rows if row.address == alias), None)
        for row in rows:
            if row is not keep:
                if keep is None:
                    keep = row
                    continue
                row.delete()
                replaced += 1
        if keep is None:
            keep = Suppression(tenant_id=subject.tenant_id, reason=SuppressionReason.ERASURE)
        keep.address = alias
        keep.source = "Data-subject erasure: the address is kept only as this pseudonym."
        keep.save()
        replaced += 1
    return {"suppressions": replaced}


@privacy.subject_erasure("captured_mail", order=60)
def erase_captured(subject):
    deleted = 0
    for captured in _captured_of(subject):
        if any(normalise_address(r) in subject.addresses for r in captured.rcpt_tos):
            captured.delete()
            deleted += 1
    return {"captured_mail": deleted}


@privacy.subject_erasure("idempotency_answers", order=70)
def erase_idempotency_answers(subject):
    """Stored API answers (kept a day for Idempotency-Key retries) list the recipients: scrub them."""
    query = Q()
    for address in subject.addresses:
        query |= Q(response__icontains=address)
    changed = 0
    for row in IdempotencyKey.objects.filter(query, tenant_id=subject.tenant_id):
        row.response = subject.scrub_json(row.response)
        row.save(update_fields=["response"])
        changed += 1
    return {"idempotency_answers": changed}


# ---------------------------------------------------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------------------------------------------------


def _in_tenant(queryset, scope):
    return queryset.filter(tenant_id=scope.tenant_id) if scope.tenant_id is not None else queryset.none()


@privacy.retention("bodies", title="Message bodies", default_days=30, order=10,
                   help_text="days after the last of its messages reached a final state")  # fmt: skip
def purge_bodies(scope):
    """Empty the bodies whose every message is final and was last updated before the cutoff."""
    not_final = Message.objects.filter(content_id=OuterRef("pk")).exclude(status__in=FINAL_STATUSES)
    candidates = (
        _in_tenant(MessageContent.objects, scope)
        .filter(created__lt=scope.cutoff, purged_at__isnull=True)
        .annotate(last_update=Max("messages__updated"))
        .filter(Q(last_update__lt=scope.cutoff) | Q(last_update__isnull=True))
        .exclude(Exists(not_final))
    )
    purged, last = 0, 0
    while True:
        ids = list(candidates.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[: scope.chunk_size])
        if not ids:
            return purged
        last = ids[-1]
        if not scope.dry_run:
            with transaction.atomic():
                MessageContent.objects.filter(pk__in=ids, purged_at__isnull=True).update(raw=b"", purged_at=scope.now)
        purged += len(ids)


@privacy.retention("messages", title="Delivery attempts and events", default_days=90, order=20,
                   help_text="days after a message was created, with the message row (final messages only)")
def purge_messages(scope):
    """Delete final messages created and last updated before the cutoff, with their attempts and events."""
    candidates = _in_tenant(Message.objects, scope).filter(
        created__lt=scope.cutoff, updated__lt=scope.cutoff, status__in=FINAL_STATUSES
    )
    deleted, last = 0, 0
    while True:
        ids = list(candidates.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[: scope.chunk_size])
        if not ids:
            return deleted
        last = ids[-1]
        if scope.dry_run:
            deleted += len(ids)
            continue
        with transaction.atomic():
            # Re-checked inside the transaction: a row changed since it was listed stays.
            rows = dict(
                Message.objects.filter(pk__in=ids, status__in=FINAL_STATUSES, updated__lt=scope.cutoff)
                .select_for_update()
                .values_list("pk", "content_id")
            )
            DeliveryAttempt.objects.filter(message_id__in=rows).delete()
            MessageEvent.objects.filter(message_id__in=rows).delete()
            Message.objects.filter(pk__in=rows).delete()
            MessageContent.objects.filter(pk__in=set(rows.values())).exclude(
                Exists(Message.objects.filter(content_id=OuterRef("pk")))
            ).delete()
        deleted += len(rows)


@privacy.retention("captured_mail", title="Captured test mail", default_days=7, order=60,
                   help_text="days after the capture server received it")  # fmt: skip
def purge_captured(scope):
    queryset = CapturedMessage.objects.filter(received__lt=scope.cutoff)
    queryset = queryset.filter(tenant_id=scope.tenant_id) if scope.tenant_id else queryset.filter(tenant__isnull=True)
    deleted, last = 0, 0
    while True:
        ids = list(queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[: scope.chunk_size])
        if not ids:
            return deleted
        last = ids[-1]
        if not scope.dry_run:
            with transaction.atomic():
                CapturedMessage.objects.filter(pk__in=ids).delete()
        deleted += len(ids)

