"""The event stream (every `MessageEvent` gets a gap-free stream position), tenants' webhooks, each delivery of a
batch of events to one, and the feedback-loop reports receivers send back."""

import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from deliveryhub.choices import Area
from deliveryhub.crypto import EncryptedBinaryField, EncryptedTextField
from deliveryhub.models import ChangeLoggedModel, PanelURLs, TenantModel
from deliveryhub.querysets import RestrictedQuerySet

from ..choices import WEBHOOK_STATE_BADGES, DeliveryKind, EventType, WebhookState
from ..webhooks.http import check_url


class EventStream(models.Model):
    """The one row (pk 1) that numbers the event stream: the last stream position handed out, and how far back the
    sequencer must still look for events that committed late.

    The sequencer (`queues.webhooks.stream.sequence_events`) locks this row, gives every committed event it has not
    numbered yet the next positions (a `StreamEntry` each) and commits: one writer, so positions have no gaps and a
    reader that has seen position N has seen every position below it — whatever order the writers' transactions
    committed in. An event whose transaction commits after later ids were numbered simply gets a later position.
    `settled_event_id`: every event id up to it is numbered or will never exist (its id was handed out more than
    EVENT_STREAM_SETTLE_SECONDS ago); `marks` are recent (time, highest event id) observations that move it on.
    """

    last_position = models.BigIntegerField(default=0)
    settled_event_id = models.BigIntegerField(default=0)
    marks = models.JSONField(default=list)

    class Meta:
        verbose_name = "event stream"

    def __str__(self):
        return f"event stream at {self.last_position}"


class StreamQuerySet(RestrictedQuerySet):
    """Stream entries carry their tenant: reads need no join to police them."""


class StreamEntry(models.Model):
    """An event's place in the event stream (the events API's and webhooks' cursor), with what reads filter on."""

    position = models.BigIntegerField(primary_key=True)
    event = models.OneToOneField("queues.MessageEvent", on_delete=models.CASCADE, related_name="stream_entry")
    tenant = models.ForeignKey("deliveryhub.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    message = models.ForeignKey("queues.Message", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12)
    time = models.DateTimeField()

    permission_area = Area.SENDING

    objects = StreamQuerySet.as_manager()

    class Meta:
        ordering = ["position"]
        verbose_name_plural = "stream entries"
        indexes = [
            models.Index(fields=["tenant", "position"], name="stream_tenant_position"),
            models.Index(fields=["tenant", "kind", "position"], name="stream_tenant_kind_position"),
            models.Index(fields=["tenant", "time"], name="stream_tenant_time"),
        ]

    def __str__(self):
        return f"#{self.position} {self.kind}"


class WebhookQuerySet(RestrictedQuerySet):
    """Webhooks, restricted by their tenant."""


class Webhook(PanelURLs, ChangeLoggedModel, TenantModel):
    """A tenant's HTTPS endpoint that receives its message events in signed batches (Standard Webhooks).

    The endpoint reads the event stream past its `cursor` (a stream position): one batch at a time, in order, at most
    one request in flight (its lease). A batch that fails is sent again, the same batch with the same `webhook-id`,
    with exponential backoff until it succeeds, the endpoint answers a status that says "stop" (4xx other than 408
    and 429: the batch is dropped and logged), or the endpoint has been failing for WEBHOOK_DISABLE_AFTER_SECONDS
    (then it is disabled: the events wait in the database and flow again when it is enabled).
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    url = models.URLField(max_length=2000, help_text="https://… (plain http only to loopback, where allowed)")
    events = models.JSONField(default=list, blank=True, help_text="Event types sent; empty: every type.")
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    secret = EncryptedTextField(editable=False)  # whsec_<base64>, shown once
    previous_secret = EncryptedTextField(blank=True, editable=False)  # still signed with until it expires
    previous_secret_expires = models.DateTimeField(null=True, blank=True, editable=False)
    # Delivery state (not configuration: never in the audit log)
    cursor = models.BigIntegerField(default=0, editable=False)  # the last stream position done with
    batch_id = models.CharField(max_length=40, blank=True, editable=False)  # webhook-id of the batch being retried
    batch_end = models.BigIntegerField(null=True, blank=True, editable=False)  # its last stream position
    batch_attempts = models.PositiveIntegerField(default=0, editable=False)
    next_attempt_at = models.DateTimeField(default=timezone.now, editable=False)
    lease_expires = models.DateTimeField(null=True, blank=True, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=300, blank=True, editable=False)

    permission_area = Area.INFRASTRUCTURE
    panel_url_name = "webhook"
    audit_exclude = ChangeLoggedModel.audit_exclude | {
        "cursor", "batch_id", "batch_end", "batch_attempts", "next_attempt_at", "lease_expires", "failing_since",
        "last_success_at",
    }  # fmt: skip

    objects = WebhookQuerySet.as_manager()

    class Meta:
        ordering = ["url", "pk"]
        indexes = [models.Index(fields=["enabled", "next_attempt_at"], name="webhook_due")]

    def __str__(self):
        return self.url

    @property
    def state(self):
        if not self.enabled:
            return WebhookState.DISABLED
        if self.failing_since:
            return WebhookState.FAILING
        return WebhookState.HEALTHY

    @property
    def state_badge(self):
        return WEBHOOK_STATE_BADGES[self.state]

    def clean(self):
        self.url = (self.url or "").strip()
        if not isinstance(self.events, list) or not all(isinstance(e, str) for e in self.events):
            raise ValidationError({"events": "A list of event types."})
        unknown = sorted(set(self.events) - set(EventType.values))
        if unknown:
            raise ValidationError({"events": f"Unknown event type(s): {', '.join(unknown)}."})
        self.events = [e for e in EventType.values if e in self.events]  # one order, no duplicates
        check_url(self.url)

    def signing_secrets(self, now=None):
        """The secrets a delivery is signed with now: the current one, and the previous one during its grace."""
        now = now or timezone.now()
        secrets = [self.secret]
        if self.previous_secret and self.previous_secret_expires and self.previous_secret_expires > now:
            secrets.append(self.previous_secret)
        return secrets


class WebhookDeliveryQuerySet(RestrictedQuerySet):
    """Deliveries belong to a tenant through their webhook."""

    def tenant_lookup(self):
        return "webhook__tenant_id"


class WebhookDelivery(models.Model):
    """One POST to a webhook: which events (stream positions), how it went, and what happens next."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    time = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=12, choices=DeliveryKind.choices, default=DeliveryKind.STREAM)
    batch_id = models.CharField(max_length=40)  # the webhook-id header
    first_position = models.BigIntegerField(null=True, blank=True)
    last_position = models.BigIntegerField(null=True, blank=True)
    event_count = models.PositiveIntegerField(default=0)
    attempt = models.PositiveIntegerField(default=1)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    succeeded = models.BooleanField(default=False)
    will_retry = models.BooleanField(default=False)
    duration = models.FloatField(default=0.0)  # seconds
    error = models.CharField(max_length=500, blank=True)  # connection error, refused target, timeout
    response_excerpt = models.CharField(max_length=1000, blank=True)

    permission_area = Area.INFRASTRUCTURE

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [models.Index(fields=["webhook", "-time"], name="webhookdelivery_recent")]

    def __str__(self):
        return f"{self.batch_id} → {self.status_code or self.error or '-'}"

    @property
    def outcome_badge(self):
        return "success" if self.succeeded else ("warning" if self.will_retry else "danger")


class FeedbackReport(TenantModel):
    """A feedback-loop complaint (ARF, RFC 5965) received at a domain's registered FBL address, matched or not.

    Matched reports point at the message they complain about (found from the original message's headers: our
    X-DeliveryHub-Message header, Message-ID, or the VERP return path); unmatched ones are kept for the tenant to see.
    """

    received = models.DateTimeField(default=timezone.now, db_index=True)
    sending_domain = models.ForeignKey(
        "domains.SendingDomain", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    rcpt_to = models.CharField(max_length=320)  # the address it was sent to (our FBL address)
    reporter = models.CharField(max_length=320, blank=True)  # the envelope sender / From of the report
    feedback_type = models.CharField(max_length=40, blank=True)  # abuse, fraud, …
    user_agent = models.CharField(max_length=200, blank=True)
    source_ip = models.CharField(max_length=45, blank=True)
    original_message_id = models.CharField(max_length=255, blank=True)
    matched_by = models.CharField(max_length=20, blank=True)  # header, message-id, verp (empty: unmatched)
    message = models.ForeignKey("queues.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    raw = EncryptedBinaryField(enabled_setting="ENCRYPT_MESSAGE_BODIES")  # the report as received (bounded)

    permission_area = Area.SENDING

    class Meta:
        ordering = ["-received", "-id"]

    def __str__(self):
        return f"{self.feedback_type or 'report'} from {self.reporter or '?'} ({self.matched_by or 'unmatched'})"
