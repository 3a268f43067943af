"""
Webhook delivery from the event stream (an outbox: the events wait in the database, never only in Redis).

Every WEBHOOK_DISPATCH_INTERVAL seconds the scheduler runs `dispatch()` (queues/jobs.py): it numbers newly committed
events (`stream.sequence_events`), then, for each enabled webhook that is due and has events past its cursor (or a
batch to retry), takes the webhook's lease with a conditional UPDATE and enqueues `deliver(webhook_id)` on the
default queue after commit. So one endpoint has at most one POST in flight (its concurrency limit), a slow endpoint
holds up only itself, and a worker that dies with the lease only delays that endpoint until the lease runs out.

`deliver()` sends batches of up to WEBHOOK_BATCH_SIZE events (`{"events": [...]}`), signed per Standard Webhooks
(`webhook-id` = the batch's id, the same on every retry of that batch, `webhook-timestamp`, `webhook-signature`: one
`v1,` signature per secret in use, two while a rotated secret's grace lasts):

- 2xx: the cursor moves past the batch; the next one goes at once.
- 408, 429, 5xx, 3xx (redirects are never followed), timeouts and connection errors: the same batch is tried again
  after WEBHOOK_RETRY_BASE_SECONDS × 2^(attempt-1), at most WEBHOOK_RETRY_MAX_SECONDS apart (10 s … 4 h by default: a
  dozen tries or more before the endpoint has failed for a day).
- 410 Gone: the endpoint is disabled at once (its events wait for it to be enabled again).
- Any other 4xx: the receiver refuses this batch; it is not retried (the delivery log keeps it, "Redeliver" sends
  it again) and the next batch waits for the backoff.
- An endpoint failing for WEBHOOK_DISABLE_AFTER_SECONDS is disabled, audited as `webhook.auto_disable`, and shows
  as disabled with the reason in the panel; enabling it again resumes from its cursor.

Each POST is one `WebhookDelivery` row (time, status, duration, answer excerpt, error).
"""

import json
import logging
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as Signer

from deliveryhub import audit
from deliveryhub.jobs import get_queue

from ..choices import EVENT_TYPE_KINDS, TEST_EVENT_TYPE, DeliveryKind
from ..models import StreamEntry, Webhook, WebhookDelivery
from . import http, stream

logger = logging.getLogger(__name__)

LEASE_MARGIN_SECONDS = 30


def lease_seconds():
    return settings.WEBHOOK_TIMEOUT_SECONDS * (settings.WEBHOOK_SENDS_PER_RUN + 1) + LEASE_MARGIN_SECONDS


def backoff_seconds(attempt):
    """Seconds before try `attempt + 1` of a batch that failed `attempt` times (exponential, capped)."""
    return min(settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0), settings.WEBHOOK_RETRY_MAX_SECONDS)


def retryable(status):
    """Whether a failed POST's answer (None: no answer) is worth trying again."""
    return status is None or status in (408, 429) or status >= 500 or 300 <= status < 400


def kinds_of(webhook):
    """The recorded event kinds a webhook subscribes to (None: every public kind)."""
    if not webhook.events:
        return None
    return [kind for event_type in webhook.events for kind in EVENT_TYPE_KINDS.get(event_type, ())]


def pending_entries(webhook, *, upto=None, limit=None):
    """The webhook's stream entries past its cursor (up to position `upto`), at most `limit` of them."""
    queryset = StreamEntry.objects.filter(tenant_id=webhook.tenant_id, position__gt=webhook.cursor)
    kinds = kinds_of(webhook)
    if kinds is not None:
        queryset = queryset.filter(kind__in=kinds)
    if upto is not None:
        queryset = queryset.filter(position__lte=upto)
    return stream.page(queryset, limit or settings.WEBHOOK_BATCH_SIZE)


def _has_work(webhook):
    if webhook.batch_end is not None:
        return True
    queryset = StreamEntry.objects.filter(tenant_id=webhook.tenant_id, position__gt=webhook.cursor)
    kinds = kinds_of(webhook)
    if kinds is not None:
        queryset = queryset.filter(kind__in=kinds)
    return queryset.exists()


def claim(webhook_id, now=None):
    """Take the webhook's lease (a conditional UPDATE): True when this caller holds it now."""
    now = now or timezone.now()
    return bool(
        Webhook.objects.filter(pk=webhook_id, enabled=True)
        .filter(Q(lease_expires__isnull=True) | Q(lease_expires__lt=now))
        .update(lease_expires=now + timedelta(seconds=lease_seconds()))
    )


def release(webhook_id):
    Webhook.objects.filter(pk=webhook_id).update(lease_expires=None)


def dispatch(now=None):
    """Number new events, then hand every due webhook with work to a worker. Returns the webhook ids enqueued."""
    now = now or timezone.now()
    stream.sequence_events(now=now)
    due = Webhook.objects.filter(enabled=True, next_attempt_at__lte=now).filter(
        Q(lease_expires__isnull=True) | Q(lease_expires__lt=now)
    )
    enqueued = []
    for webhook in due.only("pk", "tenant_id", "cursor", "events", "batch_end"):
        if _has_work(webhook) and claim(webhook.pk, now):
            enqueued.append(webhook.pk)
    queue = get_queue("default")
    for webhook_id in enqueued:
        try:
            queue.enqueue(deliver, webhook_id, job_timeout=lease_seconds())
        except Exception:
            release(webhook_id)  # Redis away: the next run tries again
            raise
    return enqueued


def sign_headers(webhook, batch_id, body, now=None):
    """The Standard Webhooks headers of `body`: one signature per secret in use (two during a rotation's grace)."""
    now = now or timezone.now()
    signatures = [Signer(secret).sign(batch_id, now, body) for secret in webhook.signing_secrets(now)]
    return {
        "webhook-id": batch_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


def body_of(events):
    return json.dumps({"events": events}, separators=(",", ":"), ensure_ascii=False).encode()


def _post(webhook, batch_id, events, *, kind, attempt, first=None, last=None):
    """POST one batch and log it; returns (the result, the delivery row)."""
    body = body_of(events)
    result = http.post(webhook.url, body, sign_headers(webhook, batch_id, body))
    delivery = WebhookDelivery(
        webhook=webhook, kind=kind, batch_id=batch_id, first_position=first, last_position=last,
        event_count=len(events), attempt=attempt, status_code=result.status,
        succeeded=result.status is not None and 200 <= result.status < 300, duration=result.duration,
        error=result.error, response_excerpt=result.excerpt,
    )  # fmt: skip
    return result, delivery


def _disable(webhook, reason, now):
    Webhook.objects.filter(pk=webhook.pk).update(enabled=False, disabled_reason=reason[:300], lease_expires=None)
    audit.record("webhook.auto_disable", obj=webhook, message=reason)
    logger.warning("Webhook %s (%s) disabled: %s", webhook.pk, webhook.url, reason)


def send_next(webhook, now=None):
    """Send the webhook's pending batch (or make the next one); True if it succeeded and more may follow."""
    now = now or timezone.now()
    if webhook.batch_end is None:
        entries = pending_entries(webhook)
        if not entries:
            return False
        webhook.batch_id, webhook.batch_end, webhook.batch_attempts = f"msg_{uuid.uuid4().hex}", entries[-1].position, 0
        Webhook.objects.filter(pk=webhook.pk).update(batch_id=webhook.batch_id, batch_end=webhook.batch_end,
                                                     batch_attempts=0)  # fmt: skip
    else:
        entries = pending_entries(webhook, upto=webhook.batch_end)
    if not entries:  # every event of the batch was erased meanwhile
        Webhook.objects.filter(pk=webhook.pk).update(cursor=webhook.batch_end, batch_id="", batch_end=None)
        webhook.cursor, webhook.batch_end = webhook.batch_end, None
        return True
    attempt = webhook.batch_attempts + 1
    result, delivery = _post(webhook, webhook.batch_id, [stream.event_json(e) for e in entries],
                             kind=DeliveryKind.STREAM, attempt=attempt, first=entries[0].position,
                             last=webhook.batch_end)  # fmt: skip
    now = timezone.now()
    done = {"cursor": webhook.batch_end, "batch_id": "", "batch_end": None, "batch_attempts": 0}
    with transaction.atomic():
        if delivery.succeeded:
            delivery.save()
            Webhook.objects.filter(pk=webhook.pk).update(**done, failing_since=None, last_success_at=now,
                                                         next_attempt_at=now)  # fmt: skip
            webhook.cursor, webhook.batch_end = webhook.batch_end, None
            return True
        failing_since = webhook.failing_since or now
        if result.status == 410:
            delivery.save()
            Webhook.objects.filter(pk=webhook.pk).update(failing_since=failing_since, batch_attempts=attempt)
            _disable(webhook, "The endpoint answered 410 Gone.", now)
            return False
        if now - failing_since >= timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_SECONDS):
            delivery.save()
            Webhook.objects.filter(pk=webhook.pk).update(failing_since=failing_since, batch_attempts=attempt)
            hours = settings.WEBHOOK_DISABLE_AFTER_SECONDS / 3600
            _disable(webhook, f"Every delivery failed for {hours:g} hours (last: {result.status or result.error}).",
                     now)  # fmt: skip
            return False
        retry_at = now + timedelta(seconds=backoff_seconds(attempt))
        changes = {"failing_since": failing_since, "next_attempt_at": retry_at}
        if retryable(result.status):
            delivery.will_retry = True
            changes["batch_attempts"] = attempt
        else:  # the receiver refuses this batch: not retried (Redeliver sends it again)
            changes.update(done)
        delivery.save()
        Webhook.objects.filter(pk=webhook.pk).update(**changes)
    return False


def deliver(webhook_id):
    """RQ job: send the webhook's batches while they succeed (at most WEBHOOK_SENDS_PER_RUN), then release it."""
    started = time.monotonic()
    try:
        for _ in range(settings.WEBHOOK_SENDS_PER_RUN):
            webhook = Webhook.objects.filter(pk=webhook_id, enabled=True).first()
            if webhook is None or not send_next(webhook):
                break
            if time.monotonic() - started > lease_seconds() / 2:
                break
    finally:
        release(webhook_id)


# ---------------------------------------------------------------------------------------------------------------------
# Out-of-band sends: a test event, a redelivery (never move the cursor)
# ---------------------------------------------------------------------------------------------------------------------


def test_event(webhook, now=None):
    now = now or timezone.now()
    return {
        "id": None, "type": TEST_EVENT_TYPE, "time": now.isoformat().replace("+00:00", "Z"), "message": None,
        "recipient": None, "tag": "", "metadata": {}, "campaign": None,
        "data": {"webhook": str(webhook.uuid), "detail": "A test event sent from DeliveryHub."},
    }  # fmt: skip


def send_test(webhook_id):
    """RQ job: POST one test event to the webhook and log it."""
    webhook = Webhook.objects.filter(pk=webhook_id).first()
    if webhook is None:
        return
    _, delivery = _post(webhook, f"msg_{uuid.uuid4().hex}", [test_event(webhook)], kind=DeliveryKind.TEST, attempt=1)
    delivery.save()


def redeliver(delivery_id):
    """RQ job: POST the events of a logged stream delivery again (same `webhook-id`: receivers may deduplicate)."""
    original = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if original is None or original.first_position is None:
        return
    webhook = original.webhook
    queryset = stream.entries().filter(
        tenant_id=webhook.tenant_id, position__gte=original.first_position, position__lte=original.last_position
    )
    kinds = kinds_of(webhook)
    if kinds is not None:
        queryset = queryset.filter(kind__in=kinds)
    entries = list(queryset)
    _, delivery = _post(webhook, original.batch_id, [stream.event_json(e) for e in entries],
                        kind=DeliveryKind.REDELIVERY, attempt=1, first=original.first_position,
                        last=original.last_position)  # fmt: skip
    delivery.save()
