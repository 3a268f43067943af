"""Enumerations of the queues app: message states, priorities, event kinds, suppression reasons. Badges beside them."""

from django.db import models


class MessageStatus(models.TextChoices):
    """Where a message (one envelope recipient) stands in its life; see design.md "A message's life"."""

    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    DEFERRED = "deferred", "Deferred"
    BOUNCED = "bounced", "Bounced"
    EXPIRED = "expired", "Expired"
    SUPPRESSED = "suppressed", "Suppressed"
    HELD = "held", "Held"
    CANCELLED = "cancelled", "Cancelled"


MESSAGE_STATUS_BADGES = {
    MessageStatus.QUEUED: "secondary",
    MessageStatus.SENDING: "info",
    MessageStatus.DELIVERED: "success",
    MessageStatus.DEFERRED: "warning",
    MessageStatus.BOUNCED: "danger",
    MessageStatus.EXPIRED: "dark",
    MessageStatus.SUPPRESSED: "light",
    MessageStatus.HELD: "light",
    MessageStatus.CANCELLED: "light",
}

# States the scheduler picks up (when next_attempt_at has come and no lease is held).
READY_STATUSES = (MessageStatus.QUEUED, MessageStatus.DEFERRED)
# States a message never leaves by delivery (later signals such as complaints are events).
FINAL_STATUSES = (
    MessageStatus.DELIVERED,
    MessageStatus.BOUNCED,
    MessageStatus.EXPIRED,
    MessageStatus.SUPPRESSED,
    MessageStatus.CANCELLED,
)


class MessagePriority(models.IntegerChoices):
    """Lower goes first: transactional mail before marketing mail."""

    TRANSACTIONAL = 0, "Transactional"
    MARKETING = 1, "Marketing"


class EventKind(models.TextChoices):
    """A state change or a later signal recorded as a `MessageEvent`."""

    ACCEPTED = "accepted", "Accepted"
    SUPPRESSED = "suppressed", "Suppressed"
    DELIVERED = "delivered", "Delivered"
    DEFERRED = "deferred", "Deferred"
    BOUNCED = "bounced", "Bounced"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"
    HELD = "held", "Held"
    RELEASED = "released", "Released"
    REQUEUED = "requeued", "Requeued (lease expired)"
    ERROR = "error", "Processing error"
    DSN = "dsn", "Bounce report (DSN)"
    COMPLAINED = "complained", "Complaint (feedback loop)"


EVENT_KIND_BADGES = {
    EventKind.ACCEPTED: "secondary",
    EventKind.SUPPRESSED: "light",
    EventKind.DELIVERED: "success",
    EventKind.DEFERRED: "warning",
    EventKind.BOUNCED: "danger",
    EventKind.EXPIRED: "dark",
    EventKind.CANCELLED: "light",
    EventKind.HELD: "light",
    EventKind.RELEASED: "secondary",
    EventKind.REQUEUED: "info",
    EventKind.ERROR: "danger",
    EventKind.DSN: "danger",
    EventKind.COMPLAINED: "danger",
}


class AttemptStatus(models.TextChoices):
    """The outcome of one SMTP try."""

    DELIVERED = "delivered", "Delivered"
    DEFERRED = "deferred", "Deferred"
    BOUNCED = "bounced", "Bounced"


ATTEMPT_STATUS_BADGES = {
    AttemptStatus.DELIVERED: "success",
    AttemptStatus.DEFERRED: "warning",
    AttemptStatus.BOUNCED: "danger",
}


class SuppressionReason(models.TextChoices):
    """Why an address is on a tenant's never-send list."""

    HARD_BOUNCE = "hard_bounce", "Hard bounce (invalid recipient)"
    COMPLAINT = "complaint", "Complaint"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribed"
    MANUAL = "manual", "Added manually"
    ERASURE = "erasure", "Data-subject erasure"


class RuleAction(models.TextChoices):
    """What a bounce rule decides (the vocabulary of shared/data/smtp-replies.tsv)."""

    DELIVER = "deliver", "Delivered"
    DEFER = "defer", "Defer"
    DEFER_SLOW = "defer+slow", "Defer and slow the IP/provider pair"
    BOUNCE = "bounce", "Bounce"
    BOUNCE_SUPPRESS = "bounce+suppress", "Bounce and suppress the recipient"
