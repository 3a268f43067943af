"""Blocklist (DNSBL) zones added by admins and the checks' results with their history."""

from django.db import models
from django.utils import timezone

from deliveryhub.choices import Area
from deliveryhub.models import ChangeLoggedModel, PanelURLs

from ..choices import LISTING_STATUS_BADGES, BlocklistKind, ListingStatus
from ..querysets import BlocklistCheckQuerySet, PlatformQuerySet


class BlocklistZone(PanelURLs, ChangeLoggedModel):
    """A DNS blocklist zone checked in addition to the defaults of BLOCKLIST_ZONES / BLOCKLIST_DOMAIN_ZONES.

    `codes` maps answers to meanings ({"127.0.0.2": "listed for spam"}); unknown 127.0.x.y answers count
    as listings, 127.255.255.x and answers outside 127.0/16 as errors.
    """

    zone = models.CharField(max_length=253, unique=True)
    kind = models.CharField(max_length=8, choices=BlocklistKind.choices, default=BlocklistKind.IP)
    description = models.CharField(max_length=200, blank=True)
    codes = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)

    permission_area = Area.PLATFORM
    panel_url_name = "blocklist-zone"
    panel_detail = "edit"

    objects = PlatformQuerySet.as_manager()

    class Meta:
        ordering = ["zone"]

    def __str__(self):
        return self.zone


class BlocklistCheck(models.Model):
    """The answer of one zone about one IP (or sending domain). A row per change of answer: `checked_at` and
    `expires_at` move while the answer stays the same, so the rows of a target are its listing history."""

    ip = models.ForeignKey(
        "ippools.IPAddress", on_delete=models.CASCADE, null=True, blank=True, related_name="blocklist_checks"
    )
    domain = models.CharField(max_length=253, blank=True, db_index=True)
    zone = models.CharField(max_length=253)
    query_name = models.CharField(max_length=400)
    status = models.CharField(max_length=8, choices=ListingStatus.choices)
    codes = models.JSONField(default=list, blank=True)
    meaning = models.CharField(max_length=500, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    checked_at = models.DateTimeField(default=timezone.now, db_index=True)
    expires_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveSmallIntegerField(default=1)

    permission_area = Area.PLATFORM

    objects = BlocklistCheckQuerySet.as_manager()

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [
            models.Index(fields=["ip", "zone", "-checked_at"], name="blcheck_ip_zone_time"),
            models.Index(fields=["domain", "zone", "-checked_at"], name="blcheck_domain_zone_time"),
        ]

    def __str__(self):
        return f"{self.target} on {self.zone}: {self.status}"

    @property
    def target(self):
        return self.ip.address if self.ip_id else self.domain

    @property
    def status_badge(self):
        return LISTING_STATUS_BADGES.get(self.status, "secondary")
