"""Shaping per (source IP, destination provider): admins' throttle rules and the adaptive state they slow down to."""

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from deliveryhub.choices import Area
from deliveryhub.models import ChangeLoggedModel, PanelURLs
from deliveryhub.querysets import TenantQuerySet

from ..choices import Provider
from ..querysets import IPChildQuerySet


class ThrottleRule(PanelURLs, ChangeLoggedModel):
    """A limit on the mail one source IP sends to one provider.

    Scope: a source IP, or every IP of a pool, or (both empty) every IP; a provider, or (empty) every provider.
    Platform rules (no tenant) limit all mail through the IP; a tenant's rule limits that tenant's mail only and
    may name only IPs and pools the tenant may use. Every limit is per source IP (a pool rule gives each of its
    IPs that limit): `max_connections` SMTP connections one batch opens at once, `max_messages_per_connection`
    before QUIT and a new connection, and `max_per_minute` / `max_per_hour` messages (counted in Redis when the
    scheduler hands out a batch). Empty limits are not limited; the tightest matching rule wins.
    """

    tenant = models.ForeignKey(
        "deliveryhub.Tenant", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )  # empty: a platform rule (operators)
    ip = models.ForeignKey(
        "ippools.IPAddress", on_delete=models.CASCADE, null=True, blank=True, related_name="throttle_rules"
    )
    pool = models.ForeignKey(
        "ippools.IPPool", on_delete=models.CASCADE, null=True, blank=True, related_name="throttle_rules"
    )
    provider = models.CharField(max_length=16, choices=Provider.choices, blank=True, help_text="Empty: every provider.")
    max_connections = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    max_messages_per_connection = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    max_per_minute = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    max_per_hour = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)

    permission_area = Area.INFRASTRUCTURE
    panel_url_name = "throttle-rule"
    panel_detail = "edit"

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["enabled", "provider"], name="throttlerule_enabled_provider")]

    def __str__(self):
        scope = f"IP {self.ip}" if self.ip_id else f"pool {self.pool}" if self.pool_id else "every IP"
        return f"{scope} → {self.provider or 'every provider'}"

    def clean(self):
        if self.ip_id and self.pool_id:
            raise ValidationError({"pool": "Name a source IP or a pool, not both."})
        limits = (self.max_connections, self.max_messages_per_connection, self.max_per_minute, self.max_per_hour)
        if all(limit is None for limit in limits):
            raise ValidationError("Set at least one limit.")
        if self.tenant_id is None:
            return
        if self.ip_id is None and self.pool_id is None:
            raise ValidationError({"pool": "A tenant's rule names a source IP or a pool it may use."})
        from .addresses import IPAddress
        from .pools import IPPool

        if self.pool_id and not IPPool.objects.usable_by(self.tenant_id).filter(pk=self.pool_id).exists():
            raise ValidationError({"pool": "This pool is not usable by the tenant."})
        if self.ip_id and not IPAddress.objects.usable_by(self.tenant_id).filter(pk=self.ip_id).exists():
            raise ValidationError({"ip": "This IP is not in a pool usable by the tenant."})


class ThrottleState(models.Model):
    """The durable record of an adaptively slowed (source IP, provider) pair; Redis holds the live copy.

    Written on each transition (slowed and suspended after a rate-limit reply, eased after enough deliveries), read
    back when Redis has lost the pair: a Redis restart never lifts a suspension or forgets a slow-down.
    """

    ip = models.ForeignKey("ippools.IPAddress", on_delete=models.CASCADE, related_name="throttle_states")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    level = models.PositiveSmallIntegerField(default=0, help_text="Halvings in force: connections = base / 2^level.")
    suspended_until = models.DateTimeField(null=True, blank=True)
    backoff_seconds = models.PositiveIntegerField(default=0, help_text="The last suspension's length.")
    reason = models.CharField(max_length=500, blank=True)
    updated = models.DateTimeField(default=timezone.now)

    permission_area = Area.PLATFORM

    objects = IPChildQuerySet.as_manager()

    class Meta:
        ordering = ["ip", "provider"]
        constraints = [models.UniqueConstraint(fields=["ip", "provider"], name="throttlestate_unique_ip_provider")]

    def __str__(self):
        return f"{self.ip} → {self.provider}: level {self.level}"
