"""A marketer's campaign: its template content, lists, schedule, pacing and state; and its per-minute counters.

When a campaign starts, its recipients become `Message` rows (one each, marketing priority) that share one
`MessageContent` whose `campaign` is this row: the delivery worker renders each message from the campaign's
templates and the message's contact just before signing it.
"""

import uuid

from django.core.exceptions import ValidationError
from django.db import models

from deliveryhub.choices import Area
from deliveryhub.models import ChangeLoggedModel, TenantModel
from deliveryhub.querysets import RestrictedQuerySet

from ..choices import CAMPAIGN_FINISHED_STATES, CAMPAIGN_STATE_BADGES, CampaignState
from ..constants import SUBJECT_MAX, TAG_MAX


class Campaign(ChangeLoggedModel, TenantModel):
    """A send to the subscribed contacts of one or more lists (deduplicated, minus suppressed addresses).

    Life: draft → scheduled (`send_at` not come yet, or the fan-out running) → sending ⇄ paused → sent, or
    cancelled. Content, lists and pacing are edited in draft only; pacing (`rate_per_hour` or `finish_by`) may
    also change while paused.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=SUBJECT_MAX)
    from_header = models.CharField(max_length=400, help_text='"Name <addr@domain>" on one of your sending domains.')
    sending_domain = models.ForeignKey(
        "domains.SendingDomain", on_delete=models.PROTECT, null=True, blank=True, related_name="campaigns"
    )
    reply_to = models.CharField(max_length=400, blank=True)
    html = models.TextField(blank=True)
    text = models.TextField(blank=True, help_text="Generated from the HTML when empty.")
    lists = models.ManyToManyField("queues.ContactList", related_name="campaigns", blank=True)
    ip_pool = models.ForeignKey(
        "ippools.IPPool", on_delete=models.SET_NULL, null=True, blank=True, related_name="campaigns"
    )  # empty: the tenant's marketing pool
    send_at = models.DateTimeField(null=True, blank=True)  # empty: as soon as started
    rate_per_hour = models.PositiveIntegerField(null=True, blank=True)
    finish_by = models.DateTimeField(null=True, blank=True)
    track_opens = models.BooleanField(default=False)
    track_clicks = models.BooleanField(default=False)
    unsubscribe_suppresses = models.BooleanField(
        default=False, help_text="One-click unsubscribe also adds the address to the tenant's suppression list."
    )
    tag = models.CharField(max_length=TAG_MAX, blank=True)
    state = models.CharField(max_length=10, choices=CampaignState.choices, default=CampaignState.DRAFT)
    state_detail = models.CharField(max_length=500, blank=True)  # why it paused itself, what failed
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="follow_ups"
    )  # a "resend to the failed/deferred" campaign: its recipients are the parent's
    resend_statuses = models.JSONField(default=list, blank=True)  # the parent's message states it resends to
    gate_report = models.JSONField(default=dict, blank=True)  # the deliverability gate's last verdict
    recipients = models.PositiveIntegerField(default=0)  # Message rows written at fan-out
    fanout_started = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)  # fan-out done: the messages exist
    paused_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Pacing (a token bucket refilled at the campaign's rate): messages released to the scheduler so far.
    released = models.PositiveIntegerField(default=0)
    pace_tokens = models.FloatField(default=0.0)
    pace_checked = models.DateTimeField(null=True, blank=True)

    permission_area = Area.CAMPAIGNS
    audit_exclude = ChangeLoggedModel.audit_exclude | {"released", "pace_tokens", "pace_checked", "gate_report"}

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["state"], name="campaign_state")]

    def __str__(self):
        return self.name

    @property
    def badge(self):
        return CAMPAIGN_STATE_BADGES.get(self.state, "secondary")

    @property
    def is_finished(self):
        return self.state in CAMPAIGN_FINISHED_STATES

    @property
    def is_editable(self):
        return self.state == CampaignState.DRAFT

    @property
    def is_paced(self):
        return bool(self.rate_per_hour or self.finish_by)

    def clean(self):
        if self.rate_per_hour is not None and self.finish_by is not None:
            raise ValidationError({"rate_per_hour": "Give either a rate per hour or a finish-by time, not both."})
        if self.rate_per_hour is not None and self.rate_per_hour < 1:
            raise ValidationError({"rate_per_hour": "At least one message per hour."})
        if self.finish_by is not None and self.send_at is not None and self.finish_by <= self.send_at:
            raise ValidationError({"finish_by": "The finish-by time must be after the send time."})


class CampaignMinuteQuerySet(RestrictedQuerySet):
    def tenant_lookup(self):
        return "campaign__tenant_id"


class CampaignMinute(models.Model):
    """A campaign's SMTP attempts in one minute, by outcome: the sends-per-minute chart and the pacing record.

    Written by the delivery worker after each batch (one upsert per campaign and minute), so it costs nothing
    to read while a million-recipient campaign runs.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="minutes")
    minute = models.DateTimeField()
    sent = models.PositiveIntegerField(default=0)  # SMTP attempts (every outcome below)
    delivered = models.PositiveIntegerField(default=0)
    deferred = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)

    permission_area = Area.CAMPAIGNS

    objects = CampaignMinuteQuerySet.as_manager()

    class Meta:
        ordering = ["campaign", "minute"]
        constraints = [models.UniqueConstraint(fields=["campaign", "minute"], name="campaignminute_unique")]

    def __str__(self):
        return f"{self.campaign_id} {self.minute:%H:%M}: {self.sent}"
