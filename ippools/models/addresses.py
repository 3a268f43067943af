"""Source IP addresses, their events and their reputation history."""

import ipaddress
import zoneinfo
from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.functional import cached_property

from deliveryhub.choices import Area
from deliveryhub.models import ChangeLoggedModel, PanelURLs

from ..choices import IP_STATE_BADGES, SENDING_IP_STATES, IPEventKind, IPState, PTRStatus
from ..constants import REPUTATION_FAIR, REPUTATION_GOOD, REPUTATION_MAX
from ..querysets import IPAddressQuerySet, IPChildQuerySet


class IPAddress(PanelURLs, ChangeLoggedModel):
    """A source IP address mail leaves from, owned by one delivery node.

    Its warm-up position (plan, current day, day of the last step) lives here; today's counts are in
    `IPDailyUsage` (and Redis). `listed` mirrors the blocklist checks so pools and lists need no join.
    """

    address = models.GenericIPAddressField(unique=True)
    node = models.ForeignKey("ippools.DeliveryNode", on_delete=models.PROTECT, related_name="ip_addresses")
    ehlo_hostname = models.CharField(max_length=253, blank=True, help_text="Name given in EHLO; should match the PTR.")
    state = models.CharField(max_length=12, choices=IPState.choices, default=IPState.ACTIVE, db_index=True)
    reputation = models.PositiveSmallIntegerField(default=REPUTATION_MAX)
    reputation_explanation = models.CharField(max_length=500, blank=True)
    ptr_status = models.CharField(max_length=12, choices=PTRStatus.choices, default=PTRStatus.UNKNOWN)
    ptr_hostname = models.CharField(max_length=253, blank=True)
    listed = models.BooleanField(default=False, editable=False)
    listed_zones = models.CharField(max_length=500, blank=True, editable=False)
    warmup_plan = models.ForeignKey(
        "ippools.WarmupPlan", on_delete=models.PROTECT, null=True, blank=True, related_name="ip_addresses"
    )
    warmup_day = models.PositiveSmallIntegerField(default=1)
    warmup_last_step = models.DateField(null=True, blank=True, help_text="Local date the warm-up last stepped on.")
    notes = models.TextField(blank=True)

    permission_area = Area.PLATFORM
    panel_url_name = "ipaddress"
    audit_exclude = ChangeLoggedModel.audit_exclude | {"reputation", "reputation_explanation"}

    objects = IPAddressQuerySet.as_manager()

    class Meta:
        ordering = ["address"]
        verbose_name = "IP address"
        verbose_name_plural = "IP addresses"

    def __str__(self):
        return self.address

    def clean(self):
        try:
            self.address = str(ipaddress.ip_address(str(self.address).strip()))
        except ValueError:
            raise ValidationError({"address": f"{self.address!r} is not an IPv4 or IPv6 address."}) from None
        if self.state == IPState.WARMING and self.warmup_plan_id is None:
            raise ValidationError({"warmup_plan": "An IP warming up needs a warm-up plan."})
        if self.warmup_plan_id and self.warmup_day > self.warmup_plan.length:
            raise ValidationError({"warmup_day": f"The plan has {self.warmup_plan.length} days."})

    @property
    def version(self):
        return ipaddress.ip_address(self.address).version

    @property
    def state_badge(self):
        return IP_STATE_BADGES.get(self.state, "secondary")

    @property
    def reputation_badge(self):
        if self.reputation >= REPUTATION_GOOD:
            return "success"
        return "warning" if self.reputation >= REPUTATION_FAIR else "danger"

    @property
    def can_send(self):
        return self.state in SENDING_IP_STATES

    def is_warm(self):
        """Past warm-up: no plan, or active without one."""
        return self.state != IPState.WARMING

    # -- time: warm-up days are calendar days in the time zone of the tenant the IP is dedicated to ----------------
    @cached_property
    def time_zone(self):
        """The zone whose midnight starts a warm-up day: a dedicated pool's tenant's, else WARMUP_TIME_ZONE."""
        from .pools import IPPool

        tz_name = (
            IPPool.objects.filter(members__ip=self, tenant__isnull=False)
            .values_list("tenant__time_zone", flat=True)
            .first()
        )
        return self.zone_named(tz_name)

    @staticmethod
    def zone_named(tz_name):
        """The zone called `tz_name` (a tenant's), WARMUP_TIME_ZONE when there is none, UTC when it is not a zone."""
        try:
            return zoneinfo.ZoneInfo(tz_name or settings.WARMUP_TIME_ZONE)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return zoneinfo.ZoneInfo("UTC")

    @classmethod
    def prime_time_zones(cls, ips):
        """Set the warm-up time zone of many IPs with one query (a list page's, instead of one query per IP)."""
        from .pools import IPPool

        names = dict(
            IPPool.objects.filter(members__ip__in=[ip.pk for ip in ips], tenant__isnull=False).values_list(
                "members__ip_id", "tenant__time_zone"
            )
        )
        for ip in ips:
            ip.time_zone = cls.zone_named(names.get(ip.pk))

    def local_date(self, now=None):
        return (now or timezone.now()).astimezone(self.time_zone).date()

    def next_local_midnight(self, now=None):
        """When the IP's current warm-up day ends (an aware datetime)."""
        tomorrow = self.local_date(now) + timedelta(days=1)
        return datetime.combine(tomorrow, time.min, tzinfo=self.time_zone)

    # -- warm-up ---------------------------------------------------------------------------------------------------
    def warmup_caps(self):
        """Today's caps for this IP as {provider|"total": int}, or None when it is not limited."""
        if self.state != IPState.WARMING or self.warmup_plan is None:
            return None
        return self.warmup_plan.caps_for_day(self.warmup_day)

    def warmup_progress(self):
        """(day, days) or None."""
        if self.state != IPState.WARMING or self.warmup_plan is None:
            return None
        return self.warmup_day, self.warmup_plan.length


class IPEvent(models.Model):
    """Something that happened to an IP: a warm-up step, a listing or delisting, a pause."""

    ip = models.ForeignKey(IPAddress, on_delete=models.CASCADE, related_name="events")
    time = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=32, choices=IPEventKind.choices)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    permission_area = Area.PLATFORM

    objects = IPChildQuerySet.as_manager()

    class Meta:
        ordering = ["-time", "-id"]

    def __str__(self):
        return f"{self.ip} {self.kind} at {self.time:%Y-%m-%d %H:%M}"


class ReputationSample(models.Model):
    """One computed reputation score of an IP, with what moved it."""

    ip = models.ForeignKey(IPAddress, on_delete=models.CASCADE, related_name="reputation_history")
    time = models.DateTimeField(default=timezone.now, db_index=True)
    score = models.PositiveSmallIntegerField()
    explanation = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)

    permission_area = Area.PLATFORM

    objects = IPChildQuerySet.as_manager()

    class Meta:
        ordering = ["-time", "-id"]

    def __str__(self):
        return f"{self.ip}: {self.score}"
