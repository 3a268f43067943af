"""Enumerations of the reports app: data-subject request kinds and states, purge run states. Badges beside them."""

from django.db import models


class DataRequestKind(models.TextChoices):
    """What a data subject asked for."""

    ACCESS = "access", "Access (a copy of their data)"
    ERASURE = "erasure", "Erasure (forget them)"


class DataRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


DATA_REQUEST_STATUS_BADGES = {
    DataRequestStatus.PENDING: "secondary",
    DataRequestStatus.RUNNING: "info",
    DataRequestStatus.COMPLETED: "success",
    DataRequestStatus.FAILED: "danger",
}


class PurgeRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


PURGE_RUN_STATUS_BADGES = {
    PurgeRunStatus.RUNNING: "info",
    PurgeRunStatus.COMPLETED: "success",
    PurgeRunStatus.FAILED: "danger",
}


class ReportFormat(models.TextChoices):
    PDF = "pdf", "PDF"
    CSV = "csv", "CSV"


# ---------------------------------------------------------------------------------------------------------------------
# Monitoring: alert rules and alerts
# ---------------------------------------------------------------------------------------------------------------------


class RuleKind(models.TextChoices):
    """What an alert rule watches: a ratio over a window of roll-ups, the queue now, or an event."""

    RATE = "rate", "Rate over a window (roll-ups)"
    QUEUE = "queue", "Queue or platform condition (now)"
    EVENT = "event", "Event (blocklist, warm-up, DNS, node)"


class RuleMetric(models.TextChoices):
    """The quantity a rule compares with its threshold. Rates are ratios (a fraction: 0.05 = 5 %) of roll-up counters
    with a volume floor; queue metrics are measured when the rule is evaluated; events fire when they happen."""

    # rates: numerator / denominator (reports.alerts.RATE_DEFINITIONS)
    BOUNCE_RATE = "bounce_rate", "Bounce rate (bounced / attempts)"
    DEFERRAL_RATE = "deferral_rate", "Deferral rate (deferred / attempts)"
    DELIVERY_RATE = "delivery_rate", "Delivery rate (delivered / attempts)"
    COMPLAINT_RATE = "complaint_rate", "Complaint rate (complaints / delivered)"
    UNSUBSCRIBE_RATE = "unsubscribe_rate", "Unsubscribe rate (unsubscribes / delivered)"
    EXPIRED_RATE = "expired_rate", "Expiry rate (expired / (delivered + bounced + expired))"
    # queue and platform conditions
    OLDEST_QUEUED_AGE = "oldest_queued_age", "Oldest queued message (seconds)"
    QUEUED_COUNT = "queued_count", "Messages waiting (queued + deferred)"
    HELD_COUNT = "held_count", "Held messages"
    NODE_HEARTBEAT_AGE = "node_heartbeat_age", "Node heartbeat age (seconds)"
    SCHEDULER_LAG = "scheduler_lag", "Scheduler lag (seconds since its last tick)"
    ROLLUP_LAG = "rollup_lag", "Roll-up lag (seconds behind the newest attempt)"
    WEBHOOK_BACKLOG = "webhook_backlog", "Webhook backlog (events not yet delivered)"
    # events
    IP_LISTED = "ip_listed", "IP listed on a blocklist"
    WARMUP_STEPPED_BACK = "warmup_stepped_back", "Warm-up stepped back"
    DOMAIN_FAILING = "domain_failing", "Sending domain DNS check failing"
    WEBHOOK_DISABLED = "webhook_disabled", "Webhook endpoint disabled (after failures)"


RATE_METRICS = (RuleMetric.BOUNCE_RATE, RuleMetric.DEFERRAL_RATE, RuleMetric.DELIVERY_RATE, RuleMetric.COMPLAINT_RATE,
                RuleMetric.UNSUBSCRIBE_RATE, RuleMetric.EXPIRED_RATE)  # fmt: skip
QUEUE_METRICS = (RuleMetric.OLDEST_QUEUED_AGE, RuleMetric.QUEUED_COUNT, RuleMetric.HELD_COUNT,
                 RuleMetric.NODE_HEARTBEAT_AGE, RuleMetric.SCHEDULER_LAG, RuleMetric.ROLLUP_LAG,
                 RuleMetric.WEBHOOK_BACKLOG)  # fmt: skip
PLATFORM_ONLY_METRICS = (RuleMetric.NODE_HEARTBEAT_AGE, RuleMetric.SCHEDULER_LAG, RuleMetric.ROLLUP_LAG)
EVENT_METRICS = (RuleMetric.IP_LISTED, RuleMetric.WARMUP_STEPPED_BACK, RuleMetric.DOMAIN_FAILING,
                 RuleMetric.WEBHOOK_DISABLED)  # fmt: skip


class RuleGroupBy(models.TextChoices):
    """Evaluate a rule once per value of a dimension (one alert per pool, per provider…), or over everything."""

    NONE = "", "Everything in scope together"
    TENANT = "tenant", "Per tenant"
    DOMAIN = "domain", "Per sending domain"
    POOL = "pool", "Per IP pool"
    SOURCE_IP = "source_ip", "Per source IP"
    PROVIDER = "provider", "Per destination provider"
    CAMPAIGN = "campaign", "Per campaign"


class Comparison(models.TextChoices):
    ABOVE = "gt", "above"
    BELOW = "lt", "below"


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


SEVERITY_BADGES = {Severity.INFO: "info", Severity.WARNING: "warning", Severity.CRITICAL: "danger"}


class AlertAction(models.TextChoices):
    """What a firing alert does besides notifying (audited as the system acting for the rule)."""

    NONE = "", "Notify only"
    PAUSE_IP = "pause_ip", "Pause the source IP (platform rules)"
    PAUSE_POOL = "pause_pool", "Pause the pool's members (platform rules)"
    PAUSE_CAMPAIGN = "pause_campaign", "Pause the campaign"


class AlertState(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


ALERT_STATE_BADGES = {AlertState.FIRING: "danger", AlertState.RESOLVED: "success"}


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook (Standard Webhooks signature)"
    SLACK = "slack", 'Slack-compatible webhook (JSON {"text": …})'
