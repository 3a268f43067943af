"""
Alerting: notification channels, alert rules (a tenant's or the platform's), alerts and their notifications.

A rule compares one metric (a ratio over a window of roll-ups with a volume floor, a queue or platform condition
measured now, or an event) with a threshold, over everything in its scope or once per value of a dimension
(`group_by`). Each (rule, key) is ok (no open alert) → firing (one open `Alert`) → resolved; notifications go out
once per firing, again after `reminder_minutes`, and once when it resolves (reports/alerts.py).
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, validate_email
from django.db import models
from django.urls import reverse
from django.utils import timezone

from deliveryhub.choices import Area
from deliveryhub.crypto import Ciphertext, EncryptedTextField
from deliveryhub.models import ChangeLoggedModel, PanelURLs, TenantModel
from deliveryhub.querysets import TenantQuerySet
from queues.webhooks import http as webhook_http

from ..choices import (
    ALERT_STATE_BADGES,
    EVENT_METRICS,
    PLATFORM_ONLY_METRICS,
    QUEUE_METRICS,
    RATE_METRICS,
    SEVERITY_BADGES,
    AlertAction,
    AlertState,
    ChannelKind,
    Comparison,
    RuleGroupBy,
    RuleKind,
    RuleMetric,
    Severity,
)

SECONDS_METRICS = (RuleMetric.OLDEST_QUEUED_AGE, RuleMetric.NODE_HEARTBEAT_AGE, RuleMetric.SCHEDULER_LAG,
                   RuleMetric.ROLLUP_LAG)  # fmt: skip
MAX_EMAIL_RECIPIENTS = 20  # addresses one email channel notifies
WEBHOOK_SECRET_PREFIX = "whsec_"  # Standard Webhooks: the secret is whsec_<base64 of its bytes>


class AlertChannel(PanelURLs, ChangeLoggedModel, TenantModel):
    """Where notifications go: email addresses, a webhook signed as Standard Webhooks describe (HMAC-SHA256 over
    `id.timestamp.body` with the channel's secret), or a Slack-compatible incoming webhook (a JSON `text` body).

    A webhook must name an address the outbound policy allows (queues.webhooks.http, deliveryhub.netguard), checked
    when saved and again at every connection."""

    tenant = models.ForeignKey("deliveryhub.Tenant", on_delete=models.CASCADE, null=True, blank=True,
                               related_name="+")  # fmt: skip # empty: a platform channel (operators)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=ChannelKind.choices, default=ChannelKind.EMAIL)
    target = models.CharField(max_length=1000, help_text="Email addresses (comma-separated) or the webhook's URL.")
    secret = EncryptedTextField(blank=True, help_text="Webhook signing secret (whsec_…); generated when empty.")
    enabled = models.BooleanField(default=True)
    last_error = models.CharField(max_length=500, blank=True, editable=False)

    permission_area = Area.INFRASTRUCTURE
    panel_url_name = "alert-channel"
    panel_detail = "edit"
    audit_redact = frozenset({"secret"})

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self):
        return self.name

    def addresses(self):
        return [part.strip() for part in self.target.split(",") if part.strip()]

    def clean(self):
        if self.kind == ChannelKind.EMAIL:
            addresses = self.addresses()
            if not addresses:
                raise ValidationError({"target": "Give at least one email address."})
            if len(addresses) > MAX_EMAIL_RECIPIENTS:
                raise ValidationError({"target": f"At most {MAX_EMAIL_RECIPIENTS} addresses."})
            for address in addresses:
                try:
                    validate_email(address)
                except ValidationError:
                    raise ValidationError({"target": f"{address!r} is not an email address."}) from None
            return
        try:
            webhook_http.check_url(self.target.strip())  # the events webhooks' policy (netguard), one for both
        except ValidationError as error:
            raise ValidationError({"target": error.message_dict.get("url", error.messages)}) from None
        typed = self.secret and not isinstance(self.secret, Ciphertext)  # a restored secret arrives encrypted
        if self.kind == ChannelKind.WEBHOOK and typed and not self.secret.startswith(WEBHOOK_SECRET_PREFIX):
            raise ValidationError({"secret": f"A signing secret starts with {WEBHOOK_SECRET_PREFIX}."})


class AlertRuleQuerySet(TenantQuerySet):
    def enabled(self):
        return self.filter(enabled=True)


class AlertRule(PanelURLs, ChangeLoggedModel, TenantModel):
    """A condition worth telling someone about: `metric` `comparison` `threshold` over `window_minutes`, with at
    least `min_volume` of the ratio's denominator in the window (a rate over ten messages says nothing).

    Scope: a tenant's rule sees that tenant's mail only; a platform rule (no tenant) sees every tenant's. The scope
    fields narrow it further; `group_by` evaluates it once per pool, provider, IP… (an alert each)."""

    tenant = models.ForeignKey("deliveryhub.Tenant", on_delete=models.CASCADE, null=True, blank=True,
                               related_name="+")  # fmt: skip # empty: a platform rule (operators)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    metric = models.CharField(max_length=24, choices=RuleMetric.choices)
    comparison = models.CharField(max_length=2, choices=Comparison.choices, default=Comparison.ABOVE)
    threshold = models.FloatField(help_text="A fraction for rates (0.05 = 5 %), seconds or a count otherwise.")
    window_minutes = models.PositiveIntegerField(
        default=15,
        validators=[MinValueValidator(1), MaxValueValidator(31 * 24 * 60)],
        help_text="Rates: the window of roll-ups. Events: how long an alert without a clearing event stays open.",
    )
    min_volume = models.PositiveIntegerField(default=0, help_text="Rates: the smallest denominator worth judging.")
    group_by = models.CharField(max_length=10, choices=RuleGroupBy.choices, default=RuleGroupBy.NONE, blank=True)
    pool = models.ForeignKey("ippools.IPPool", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    provider = models.CharField(max_length=16, blank=True)
    domain = models.ForeignKey("domains.SendingDomain", on_delete=models.CASCADE, null=True, blank=True,
                               related_name="+")  # fmt: skip
    campaign = models.ForeignKey("queues.Campaign", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    channels = models.ManyToManyField(AlertChannel, blank=True, related_name="rules")
    reminder_minutes = models.PositiveIntegerField(default=0, help_text="Notify again while firing (0: never).")
    action = models.CharField(max_length=16, choices=AlertAction.choices, default=AlertAction.NONE, blank=True)
    enabled = models.BooleanField(default=True)
    default_key = models.CharField(max_length=50, blank=True, editable=False)  # a shipped default rule's name

    permission_area = Area.INFRASTRUCTURE
    panel_url_name = "alert-rule"

    objects = AlertRuleQuerySet.as_manager()

    class Meta:
        ordering = ["tenant_id", "name", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "default_key"], condition=~models.Q(default_key=""), name="alertrule_unique_default"
            ),  # fmt: skip
        ]

    def __str__(self):
        return self.name

    @property
    def kind(self):
        if self.metric in RATE_METRICS:
            return RuleKind.RATE
        if self.metric in QUEUE_METRICS:
            return RuleKind.QUEUE
        return RuleKind.EVENT

    @property
    def severity_badge(self):
        return SEVERITY_BADGES.get(self.severity, "secondary")

    def condition_text(self):
        """The rule in words: "bounce rate above 5 % over 15 min (at least 200 attempts), per pool"."""
        label = self.get_metric_display().split(" (")[0]
        label = label[0].lower() + label[1:]
        if self.kind == RuleKind.EVENT:
            text = f"when: {label}"
        else:
            value = f"{self.threshold * 100:g} %" if self.kind == RuleKind.RATE else f"{self.threshold:g}"
            if self.metric in SECONDS_METRICS:
                value += " s"
            text = f"{label} {self.get_comparison_display()} {value}"
            if self.kind == RuleKind.RATE:
                text += f" over {_minutes(self.window_minutes)}"
                if self.min_volume:
                    text += f" (at least {self.min_volume:,})"
        if self.group_by:
            label = self.get_group_by_display()
            text += f", {label[0].lower()}{label[1:]}"
        return text

    def clean(self):
        errors = {}
        if self.metric in PLATFORM_ONLY_METRICS and self.tenant_id is not None:
            errors["metric"] = "Nodes, the scheduler and roll-ups are watched by platform rules only."
        if self.metric in RATE_METRICS and not 0 <= (self.threshold or 0) <= 1:
            errors["threshold"] = "A rate is a fraction between 0 and 1 (0.05 = 5 %)."
        if self.threshold is not None and self.threshold < 0:
            errors["threshold"] = "A threshold is not negative."
        if self.action in (AlertAction.PAUSE_IP, AlertAction.PAUSE_POOL) and self.tenant_id is not None:
            errors["action"] = "Pausing IPs and pools is for platform rules: shared IPs carry other tenants' mail."
        if self.action == AlertAction.PAUSE_IP and not (self.group_by == RuleGroupBy.SOURCE_IP or self.source_ip
                                                        or self.metric == RuleMetric.IP_LISTED):  # fmt: skip
            errors["action"] = "Pausing the IP needs a rule about one IP (per source IP, an IP, or a listing)."
        if self.action == AlertAction.PAUSE_POOL and not (self.group_by == RuleGroupBy.POOL or self.pool_id):
            errors["action"] = "Pausing the pool needs a rule about one pool (per pool, or a pool)."
        if self.action == AlertAction.PAUSE_CAMPAIGN and not (
            self.group_by == RuleGroupBy.CAMPAIGN or self.campaign_id
        ):
            errors["action"] = "Pausing the campaign needs a rule about one campaign (per campaign, or a campaign)."
        if self.metric in EVENT_METRICS and self.group_by:
            errors["group_by"] = "An event rule opens one alert per IP or domain by itself."
        if self.metric in QUEUE_METRICS and self.group_by not in ("", RuleGroupBy.TENANT, RuleGroupBy.POOL,
                                                                  RuleGroupBy.DOMAIN):  # fmt: skip
            errors["group_by"] = "Queue conditions group per tenant, pool or domain."
        if self.tenant_id is not None:
            self._clean_tenant_scope(errors)
        if errors:
            raise ValidationError(errors)

    def _clean_tenant_scope(self, errors):
        from ippools.models import IPAddress, IPPool

        if self.group_by == RuleGroupBy.TENANT:
            errors["group_by"] = "A tenant's rule is about that tenant already."
        if self.pool_id and not IPPool.objects.usable_by(self.tenant_id).filter(pk=self.pool_id).exists():
            errors["pool"] = "This pool is not usable by the tenant."
        if self.source_ip and not IPAddress.objects.in_pools_of(self.tenant_id).filter(address=self.source_ip).exists():
            errors["source_ip"] = "This IP is not in a pool the tenant uses."
        if self.domain_id and self.domain.tenant_id != self.tenant_id:
            errors["domain"] = "Not a domain of this tenant."
        if self.campaign_id and self.campaign.tenant_id != self.tenant_id:
            errors["campaign"] = "Not a campaign of this tenant."


def _minutes(minutes):
    if minutes % 1440 == 0:
        return f"{minutes // 1440} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


class AlertQuerySet(TenantQuerySet):
    def firing(self):
        return self.filter(state=AlertState.FIRING)


class Alert(TenantModel):
    """One firing of one rule for one key (`provider=google`, `ip=192.0.2.1`, or "" for the whole scope): open while
    firing, kept as history once resolved. At most one firing alert per (rule, key)."""

    tenant = models.ForeignKey("deliveryhub.Tenant", on_delete=models.CASCADE, null=True, blank=True,
                               related_name="+")  # fmt: skip # the rule's tenant (empty: a platform alert)
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    key = models.CharField(max_length=200, blank=True)
    key_label = models.CharField(max_length=300, blank=True)
    state = models.CharField(max_length=10, choices=AlertState.choices, default=AlertState.FIRING)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(default=timezone.now)  # last evaluation (or event) that found it true
    resolved_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True)
    volume = models.PositiveBigIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    notifications = models.PositiveIntegerField(default=0)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                        related_name="+")  # fmt: skip
    acknowledged_by_name = models.CharField(max_length=200, blank=True)
    action_taken = models.CharField(max_length=300, blank=True)

    permission_area = Area.INFRASTRUCTURE

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "key"], condition=models.Q(state="firing"), name="alert_one_firing_per_key"
            ),  # fmt: skip
        ]
        indexes = [models.Index(fields=["tenant", "state"], name="alert_tenant_state")]

    def __str__(self):
        return f"{self.rule.name}{f' ({self.key_label or self.key})' if self.key else ''}"

    def get_absolute_url(self):
        return reverse("alert-detail", args=[self.pk])

    @property
    def state_badge(self):
        return ALERT_STATE_BADGES.get(self.state, "secondary")

    @property
    def severity_badge(self):
        return SEVERITY_BADGES.get(self.severity, "secondary")


class AlertNotification(models.Model):
    """One notification sent (or tried) for an alert through one channel: firing, reminder or resolved."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notification_log")
    channel = models.ForeignKey(AlertChannel, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    channel_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10)  # firing, reminder, resolved
    time = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField(default=False)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["time", "id"]

    def __str__(self):
        return f"{self.kind} via {self.channel_name}: {'ok' if self.ok else 'failed'}"
