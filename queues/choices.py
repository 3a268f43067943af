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
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed (List-Unsubscribe)"
    OPENED = "opened", "Opened (tracking pixel)"
    CLICKED = "clicked", "Clicked (tracked link)"


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
    EventKind.UNSUBSCRIBED: "warning",
    EventKind.OPENED: "info",
    EventKind.CLICKED: "info",
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
    IMPORT = "import", "Imported"


class RuleAction(models.TextChoices):
    """What a bounce rule decides (the vocabulary of shared/data/smtp-replies.tsv)."""

    DELIVER = "deliver", "Delivered"
    DEFER = "defer", "Defer"
    DEFER_SLOW = "defer+slow", "Defer and slow the IP/provider pair"
    BOUNCE = "bounce", "Bounce"
    BOUNCE_SUPPRESS = "bounce+suppress", "Bounce and suppress the recipient"


# ---------------------------------------------------------------------------------------------------------------------
# Campaigns: contacts, lists, imports, campaigns
# ---------------------------------------------------------------------------------------------------------------------


class SubscriptionStatus(models.TextChoices):
    """Where a contact stands on one list."""

    SUBSCRIBED = "subscribed", "Subscribed"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Complained"


SUBSCRIPTION_STATUS_BADGES = {
    SubscriptionStatus.SUBSCRIBED: "success",
    SubscriptionStatus.UNSUBSCRIBED: "secondary",
    SubscriptionStatus.BOUNCED: "danger",
    SubscriptionStatus.COMPLAINED: "danger",
}


class OptIn(models.TextChoices):
    """How people join a list: at once (single) or after confirming by mail (double)."""

    SINGLE = "single", "Single opt-in"
    DOUBLE = "double", "Double opt-in"


class ImportMode(models.TextChoices):
    """What a CSV import does with the addresses it reads."""

    ADD = "add", "Add new contacts (existing ones unchanged)"
    UPDATE = "update", "Add and update (names and attributes overwritten)"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe these addresses from the list"


class ImportState(models.TextChoices):
    """A CSV import's life: pending → running → completed / cancelled / failed."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


IMPORT_STATE_BADGES = {
    ImportState.PENDING: "secondary",
    ImportState.RUNNING: "info",
    ImportState.COMPLETED: "success",
    ImportState.CANCELLED: "warning",
    ImportState.FAILED: "danger",
}
IMPORT_FINISHED_STATES = (ImportState.COMPLETED, ImportState.CANCELLED, ImportState.FAILED)


class ImportKind(models.TextChoices):
    """What a CSV import fills: a contact list, or the tenant's suppression list."""

    CONTACTS = "contacts", "Contacts into a list"
    SUPPRESSIONS = "suppressions", "Suppression list"


class CampaignState(models.TextChoices):
    """A campaign's life: draft → scheduled → sending ⇄ paused → sent, or cancelled from any unfinished state."""

    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    SENDING = "sending", "Sending"
    PAUSED = "paused", "Paused"
    SENT = "sent", "Sent"
    CANCELLED = "cancelled", "Cancelled"


CAMPAIGN_STATE_BADGES = {
    CampaignState.DRAFT: "secondary",
    CampaignState.SCHEDULED: "info",
    CampaignState.SENDING: "primary",
    CampaignState.PAUSED: "warning",
    CampaignState.SENT: "success",
    CampaignState.CANCELLED: "dark",
}
# A campaign whose messages the scheduler must not hand out (pause and cancel take effect on the next scan).
CAMPAIGN_HALTED_STATES = (CampaignState.PAUSED, CampaignState.CANCELLED)
CAMPAIGN_FINISHED_STATES = (CampaignState.SENT, CampaignState.CANCELLED)


# ---------------------------------------------------------------------------------------------------------------------
# Events and webhooks (queues/webhooks/)
# ---------------------------------------------------------------------------------------------------------------------


class EventType(models.TextChoices):
    """The public event taxonomy (API `type`, webhook subscriptions): one or more `EventKind`s each."""

    ACCEPTED = "accepted", "Accepted"
    QUEUED = "queued", "Queued again (released, or its worker's lease ran out)"
    DEFERRED = "deferred", "Deferred"
    DELIVERED = "delivered", "Delivered"
    BOUNCED = "bounced", "Bounced (a 5xx reply, or a bounce report later)"
    EXPIRED = "expired", "Expired"
    SUPPRESSED = "suppressed", "Suppressed"
    CANCELLED = "cancelled", "Cancelled"
    HELD = "held", "Held"
    COMPLAINED = "complained", "Complained (feedback loop)"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"


# Which recorded kinds each public type covers; `error` (a worker's processing error, retried) is internal.
EVENT_TYPE_KINDS = {
    EventType.ACCEPTED: (EventKind.ACCEPTED,),
    EventType.QUEUED: (EventKind.RELEASED, EventKind.REQUEUED),
    EventType.DEFERRED: (EventKind.DEFERRED,),
    EventType.DELIVERED: (EventKind.DELIVERED,),
    EventType.BOUNCED: (EventKind.BOUNCED, EventKind.DSN),
    EventType.EXPIRED: (EventKind.EXPIRED,),
    EventType.SUPPRESSED: (EventKind.SUPPRESSED,),
    EventType.CANCELLED: (EventKind.CANCELLED,),
    EventType.HELD: (EventKind.HELD,),
    EventType.COMPLAINED: (EventKind.COMPLAINED,),
    EventType.UNSUBSCRIBED: (EventKind.UNSUBSCRIBED,),
    EventType.OPENED: (EventKind.OPENED,),
    EventType.CLICKED: (EventKind.CLICKED,),
}
KIND_EVENT_TYPE = {kind: event_type for event_type, kinds in EVENT_TYPE_KINDS.items() for kind in kinds}
PUBLIC_EVENT_KINDS = tuple(KIND_EVENT_TYPE)
TEST_EVENT_TYPE = "test"  # the type of the event "Send test event" posts


class WebhookState(models.TextChoices):
    """How a webhook is doing: healthy, failing (retrying a batch), or disabled (by hand or after a day of failures)."""

    HEALTHY = "healthy", "Healthy"
    FAILING = "failing", "Failing"
    DISABLED = "disabled", "Disabled"


WEBHOOK_STATE_BADGES = {WebhookState.HEALTHY: "success", WebhookState.FAILING: "warning",
                        WebhookState.DISABLED: "secondary"}  # fmt: skip


class DeliveryKind(models.TextChoices):
    """Why a webhook POST was made: the event stream, a test event, or a redelivery someone asked for."""

    STREAM = "stream", "Events"
    TEST = "test", "Test event"
    REDELIVERY = "redelivery", "Redelivery"
