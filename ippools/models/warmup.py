"""Warm-up plans and the per-IP, per-day, per-provider usage counters they are enforced against."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from deliveryhub.choices import Area
from deliveryhub.models import ChangeLoggedModel, PanelURLs

from ..choices import Provider
from ..constants import TOTAL
from ..querysets import IPChildQuerySet, WarmupPlanQuerySet

CAP_KEYS = (TOTAL, *Provider.values)  # keys of one day's daily caps


def default_bounce_threshold():
    return settings.WARMUP_MAX_BOUNCE_RATE


def default_deferral_threshold():
    return settings.WARMUP_MAX_DEFERRAL_RATE


def default_complaint_threshold():
    return settings.WARMUP_MAX_COMPLAINT_RATE


class WarmupPlan(PanelURLs, ChangeLoggedModel):
    """Day-by-day sending caps for a new IP, in total and per destination provider.

    `days` is a list, one entry per day: {"total": n, "google": n, "microsoft": n, "yahoo": n, "other": n,
    "hourly": n (optional: a per-provider hourly cap)}. A day stays until the IP's last day stayed under
    the three rate thresholds; past the last day the IP is warm.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    days = models.JSONField(default=list)
    max_bounce_rate = models.FloatField(default=default_bounce_threshold)
    max_deferral_rate = models.FloatField(default=default_deferral_threshold)
    max_complaint_rate = models.FloatField(default=default_complaint_threshold)
    step_back_days = models.PositiveSmallIntegerField(default=1)
    is_builtin = models.BooleanField(default=False, editable=False)

    permission_area = Area.PLATFORM
    panel_url_name = "warmup-plan"

    objects = WarmupPlanQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def length(self):
        return len(self.days or [])

    def clean(self):
        if not isinstance(self.days, list) or not self.days:
            raise ValidationError({"days": "A plan needs at least one day: a list of {provider: cap} objects."})
        for number, day in enumerate(self.days, start=1):
            if not isinstance(day, dict):
                raise ValidationError({"days": f"Day {number} is not an object."})
            unknown = set(day) - set(CAP_KEYS) - {"hourly"}
            if unknown:
                raise ValidationError({"days": f"Day {number} has unknown keys: {', '.join(sorted(unknown))}."})
            for key, value in day.items():
                if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                    raise ValidationError({"days": f"Day {number}: {key} must be a whole number ≥ 0."})
            if day.get(TOTAL) is None and not any(day.get(p) is not None for p in Provider.values):
                raise ValidationError({"days": f"Day {number} caps nothing: give 'total' or provider caps."})
        for name in ("max_bounce_rate", "max_deferral_rate", "max_complaint_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValidationError({name: "A rate between 0 and 1 (0.05 = 5%)."})

    def caps_for_day(self, day):
        """{"total": n|None, provider: n|None, "hourly": n|None} for day `day` (1-based, clamped)."""
        if not self.days:
            return None
        entry = self.days[max(1, min(day, self.length)) - 1]
        return {key: entry.get(key) for key in (*CAP_KEYS, "hourly")}


class IPDailyUsage(models.Model):
    """Sends reserved and outcomes recorded for one IP, one local day, one provider: the authority behind the
    Redis counters (flushed from Redis, used to re-seed it when a key is missing) and the warm-up's evidence."""

    ip = models.ForeignKey("ippools.IPAddress", on_delete=models.CASCADE, related_name="daily_usage")
    date = models.DateField()
    provider = models.CharField(max_length=12, choices=Provider.choices)
    reserved = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    deferred = models.PositiveIntegerField(default=0)
    complained = models.PositiveIntegerField(default=0)

    permission_area = Area.PLATFORM

    objects = IPChildQuerySet.as_manager()

    class Meta:
        ordering = ["-date", "ip", "provider"]
        constraints = [
            models.UniqueConstraint(fields=["ip", "date", "provider"], name="ipdailyusage_unique_ip_date_provider")
        ]

    def __str__(self):
        return f"{self.ip} {self.date} {self.provider}: {self.reserved}"
