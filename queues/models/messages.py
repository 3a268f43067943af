"""Messages (one row per envelope recipient), their shared content, their attempts and events."""

import uuid

from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone

from deliveryhub.choices import Area
from deliveryhub.crypto import EncryptedBinaryField
from deliveryhub.models import PersonalDataMixin, TenantModel
from deliveryhub.querysets import RestrictedQuerySet

from ..choices import (
    ATTEMPT_STATUS_BADGES,
    EVENT_KIND_BADGES,
    FINAL_STATUSES,
    MESSAGE_STATUS_BADGES,
    READY_STATUSES,
    AttemptStatus,
    EventKind,
    MessagePriority,
    MessageStatus,
)
from ..constants import VERP_LOCAL_PREFIX, VERP_SEPARATOR
from ..querysets import MessageChildQuerySet, MessageQuerySet


class MessageContent(TenantModel):
    """One body (the RFC 5322 message without DKIM signature) shared by every recipient it goes to.

    The large text lives here, never in `Message` rows that the scheduler scans. With ENCRYPT_MESSAGE_BODIES on,
    `raw` is stored encrypted with the data key (transparently: readers see the plaintext). Retention and
    erasure empty `raw` and set `purged_at`; the row stays for the messages that point at it.
    """

    # CRLF line endings, lines ≤ 998 octets, Date and Message-ID present
    raw = EncryptedBinaryField(enabled_setting="ENCRYPT_MESSAGE_BODIES")
    size = models.PositiveIntegerField()
    subject = models.CharField(max_length=255, blank=True)  # for lists, shortened
    from_header = models.CharField(max_length=320, blank=True)  # the From address, for lists
    message_id_header = models.CharField(max_length=255, blank=True)
    created = models.DateTimeField(default=timezone.now)
    purged_at = models.DateTimeField(null=True, blank=True)  # body deleted (retention or erasure)
    # A campaign's content: `raw` is empty and each message is rendered from the campaign's templates and the
    # message's contact in the delivery worker, just before signing.
    campaign = models.ForeignKey(
        "queues.Campaign", on_delete=models.PROTECT, null=True, blank=True, related_name="contents"
    )
    is_test = models.BooleanField(default=False)  # a campaign's test send (subject marked, never counted)

    permission_area = Area.SENDING

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["tenant", "created"], name="content_tenant_created")]

    def __str__(self):
        return self.subject or f"content #{self.pk}"


class Message(PersonalDataMixin, TenantModel):
    """One envelope recipient of one accepted message: its state, retry schedule and lease live on this row."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    content = models.ForeignKey(MessageContent, on_delete=models.PROTECT, related_name="messages")
    sending_domain = models.ForeignKey("domains.SendingDomain", on_delete=models.PROTECT, related_name="messages")
    ip_pool = models.ForeignKey(
        "ippools.IPPool", on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )
    mail_from = models.CharField(max_length=320)  # VERP envelope sender on the domain's return-path subdomain
    rcpt_to = models.CharField(max_length=320)
    rcpt_domain = models.CharField(max_length=255, db_index=True)  # ASCII (IDNA) form, lower case
    priority = models.PositiveSmallIntegerField(choices=MessagePriority.choices, default=MessagePriority.TRANSACTIONAL)
    status = models.CharField(max_length=12, choices=MessageStatus.choices, default=MessageStatus.QUEUED)
    status_detail = models.CharField(max_length=500, blank=True)  # the last outcome, in words
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    send_at = models.DateTimeField(null=True, blank=True)  # the client's schedule: the retry horizon starts here
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=100, null=True, blank=True)
    lease_expires = models.DateTimeField(null=True, blank=True)
    lease_reclaims = models.PositiveSmallIntegerField(default=0)  # leases that ran out (its worker died); held at a cap
    released_at = models.DateTimeField(null=True, blank=True)  # last released from `held`: the horizon restarts here
    # The last try's outcome is unknown (its worker's lease was reclaimed, or the connection dropped after the data):
    # the next attempt is flagged `possible_duplicate`.
    outcome_unknown = models.BooleanField(default=False)
    source_ip = models.ForeignKey(
        "ippools.IPAddress", on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )  # chosen by the scheduler for the current batch, kept for the record
    tag = models.CharField(max_length=100, blank=True, db_index=True)
    metadata = models.JSONField(default=dict, blank=True)
    # A campaign message's recipient: the variables its content is rendered with.
    contact = models.ForeignKey("queues.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(default=timezone.now, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    permission_area = Area.SENDING
    personal_fields = frozenset({"rcpt_to"})

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            # The scheduler's ready scan: status in (queued, deferred), due, by priority.
            models.Index(fields=["status", "priority", "next_attempt_at"], name="message_ready"),
            # Reclaiming expired leases.
            models.Index(fields=["status", "lease_expires"], name="message_lease"),
            models.Index(fields=["tenant", "created"], name="message_tenant_created"),
            # A recipient's messages (data-subject requests, suppression matching), whatever the case of the address.
            models.Index(models.F("tenant"), Lower("rcpt_to"), name="message_tenant_rcpt_lower"),
        ]

    def __str__(self):
        return f"{self.rcpt_to} ({self.status})"

    @property
    def status_badge(self):
        return MESSAGE_STATUS_BADGES.get(self.status, "secondary")

    def get_absolute_url(self):
        return reverse("message-detail", args=[self.uuid])

    @property
    def is_finished(self):
        """Delivered, bounced, expired, suppressed or cancelled: nothing more happens to it by itself."""
        return self.status in FINAL_STATUSES

    def waiting_for(self, now=None):
        """What an unfinished message is waiting for, and when it is tried next, in words (None once finished)."""
        now = now or timezone.now()
        at = f"{self.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
        if self.status == MessageStatus.SENDING:
            return f"Being sent now (a worker holds it until {self.lease_expires:%H:%M:%S} UTC at the latest)."
        if self.status == MessageStatus.HELD:
            return "Held: workers stopped while sending it, more than once. Release it to try again."
        if self.status not in READY_STATUSES:
            return None
        if self.lease_owner and self.lease_expires and self.lease_expires > now:
            return "Handed to a worker: being picked up for sending."
        if self.next_attempt_at <= now:
            return "Due now: the scheduler hands it to a worker within seconds."
        if self.send_at and self.send_at > now and not self.attempts:
            return f"Scheduled: not before {at} (the send time it was given)."
        reason = self.status_detail or "the next retry"
        if self.status == MessageStatus.DEFERRED:
            tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
            return f"Deferred after {tries}: next try at {at}. {reason}"
        return f"{reason.rstrip('.')}. Next look at {at}."

    @staticmethod
    def verp_address(message_uuid, return_path_host):
        """The envelope sender that identifies this message when a bounce comes back: b-<uuid hex>@<rp host>."""
        return f"{VERP_LOCAL_PREFIX}{VERP_SEPARATOR}{message_uuid.hex}@{return_path_host}"

    @staticmethod
    def uuid_from_verp(address):
        """The message uuid encoded in a VERP address, or None."""
        local = (address or "").rpartition("@")[0].lower()
        prefix = f"{VERP_LOCAL_PREFIX}{VERP_SEPARATOR}"
        if not local.startswith(prefix):
            return None
        try:
            return uuid.UUID(hex=local[len(prefix) :])
        except ValueError:
            return None


class DeliveryAttempt(models.Model):
    """One SMTP try of one message: where from, where to, how it went."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="delivery_attempts")
    time = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=AttemptStatus.choices)
    node = models.CharField(max_length=63, blank=True)
    source_ip = models.CharField(max_length=45, blank=True)
    mx_host = models.CharField(max_length=255, blank=True)
    tls_version = models.CharField(max_length=20, blank=True)
    tls_verified = models.BooleanField(default=False)
    code = models.PositiveSmallIntegerField(null=True, blank=True)
    enhanced_code = models.CharField(max_length=12, blank=True)
    text = models.TextField(blank=True)
    duration = models.FloatField(default=0.0)  # seconds
    category = models.CharField(max_length=40, blank=True)
    action = models.CharField(max_length=20, blank=True)
    possible_duplicate = models.BooleanField(
        default=False, help_text="An earlier attempt may have reached the receiver (its outcome was unknown)."
    )

    permission_area = Area.SENDING

    objects = MessageChildQuerySet.as_manager()

    class Meta:
        ordering = ["time", "id"]

    def __str__(self):
        return f"{self.code or '-'} {self.enhanced_code} {self.text[:60]}"

    @property
    def status_badge(self):
        return ATTEMPT_STATUS_BADGES.get(self.status, "secondary")


class MessageEvent(models.Model):
    """A state change or a later signal (DSN, complaint) of one message."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events")
    time = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=12, choices=EventKind.choices)
    detail = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    permission_area = Area.SENDING

    objects = MessageChildQuerySet.as_manager()

    class Meta:
        ordering = ["time", "id"]

    def __str__(self):
        return f"{self.kind} {self.detail[:60]}"

    @property
    def badge(self):
        return EVENT_KIND_BADGES.get(self.kind, "secondary")


class IdempotencyKey(TenantModel):
    """The first answer to a request sent with an `Idempotency-Key` header, returned again on retries."""

    key = models.CharField(max_length=200)
    request_digest = models.CharField(max_length=64)  # SHA-256 of the body: the same key with another body is refused
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created = models.DateTimeField(default=timezone.now, db_index=True)

    permission_area = Area.SENDING

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_unique_tenant_key")]

    def __str__(self):
        return self.key


class CapturedMessage(models.Model):
    """A message the demo capture SMTP server received (the "Test inbox")."""

    tenant = models.ForeignKey(
        "deliveryhub.Tenant", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )  # from the VERP envelope sender, when it names one of our messages
    message = models.ForeignKey(Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    received = models.DateTimeField(default=timezone.now, db_index=True)
    peer = models.CharField(max_length=64, blank=True)
    mail_from = models.CharField(max_length=320, blank=True)
    rcpt_tos = models.JSONField(default=list)
    subject = models.CharField(max_length=255, blank=True)
    raw = EncryptedBinaryField(enabled_setting="ENCRYPT_MESSAGE_BODIES")
    dkim_result = models.CharField(max_length=200, blank=True)
    tls = models.BooleanField(default=False)

    permission_area = Area.SENDING

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-received", "-id"]

    def __str__(self):
        return f"{self.subject or '(no subject)'} → {', '.join(self.rcpt_tos)}"
