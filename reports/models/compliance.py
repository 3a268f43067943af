"""
Compliance models of the reports app: data-subject requests, retention policies and purge runs.

Compliance reports and their files are `Job`s (deliveryhub/jobs.py) with a signed PDF or a CSV as the result;
the audit log exports live in the core (deliveryhub/exports.py).
"""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from deliveryhub.choices import Area
from deliveryhub.models import ChangeLoggedModel, PersonalDataMixin, TenantModel
from deliveryhub.privacy import retention_kinds
from deliveryhub.querysets import TenantQuerySet

from ..choices import (
    DATA_REQUEST_STATUS_BADGES,
    PURGE_RUN_STATUS_BADGES,
    DataRequestKind,
    DataRequestStatus,
    PurgeRunStatus,
)
from ..querysets import PurgeRunQuerySet


class DataRequest(PersonalDataMixin, TenantModel):
    """A data subject's access or erasure request, handled for one tenant.

    `subjects` are the addresses asked about; once an erasure has run for an address, it appears here (and in every
    earlier request of the tenant) as its pseudonym only. The audit log records each step with pseudonyms.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=10, choices=DataRequestKind.choices)
    subjects = models.JSONField(default=list)
    note = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=DataRequestStatus.choices, default=DataRequestStatus.PENDING)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+")  # fmt: skip
    requested_by_name = models.CharField(max_length=200, blank=True)
    job = models.ForeignKey("deliveryhub.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(default=timezone.now, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    completed = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)  # counts per section (access) or per step (erasure)
    error = models.TextField(blank=True)
    archive_file = models.CharField(max_length=300, blank=True)  # under MEDIA_ROOT; access requests only
    archive_sha256 = models.CharField(max_length=64, blank=True)
    archive_size = models.PositiveBigIntegerField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True)  # seconds the job took

    permission_area = Area.PRIVACY
    personal_fields = frozenset({"subjects"})

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return f"{self.get_kind_display().split(' (')[0]} request {str(self.uuid)[:8]}"

    @property
    def status_badge(self):
        return DATA_REQUEST_STATUS_BADGES.get(self.status, "secondary")

    @property
    def is_finished(self):
        return self.status in (DataRequestStatus.COMPLETED, DataRequestStatus.FAILED)

    @property
    def has_archive(self):
        return self.kind == DataRequestKind.ACCESS and self.status == DataRequestStatus.COMPLETED and bool(
            self.archive_file
        )


def retention_kind_choices():
    return [(kind.name, kind.title) for kind in retention_kinds()]


class RetentionPolicy(ChangeLoggedModel, TenantModel):
    """How many days one kind of data is kept: a tenant's own period, or the platform default (no tenant).

    Kinds are declared by the apps (`deliveryhub.privacy.retention`); without a row the kind's built-in default
    applies.
    """

    tenant = models.ForeignKey("deliveryhub.Tenant", on_delete=models.CASCADE, null=True, blank=True,
                               related_name="+")  # fmt: skip
    kind = models.CharField(max_length=40)
    days = models.PositiveIntegerField()

    permission_area = Area.PRIVACY

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["kind"]
        verbose_name_plural = "retention policies"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind"], name="retention_unique_tenant_kind"),
            models.UniqueConstraint(fields=["kind"], condition=models.Q(tenant__isnull=True),
                                    name="retention_unique_platform_kind"),  # fmt: skip
        ]

    def __str__(self):
        scope = "platform default" if self.tenant_id is None else "tenant"
        return f"{self.kind}: {self.days} days ({scope})"

    def clean(self):
        known = {kind.name: kind for kind in retention_kinds()}
        if self.kind not in known:
            raise ValidationError({"kind": f"Unknown kind of data {self.kind!r}: one of {', '.join(known)}."})
        if self.tenant_id is not None and not known[self.kind].per_tenant:
            raise ValidationError({"kind": f"{known[self.kind].title} has a platform-wide period only."})
        if not self.days or self.days < 1 or self.days > 3650 * 3:
            raise ValidationError({"days": "Keep data between 1 day and 30 years."})


class PurgeRun(models.Model):
    """One run of the retention purge (or a dry run): when, who, how it went. Counts are its `PurgeRunItem`s."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    started = models.DateTimeField(default=timezone.now, db_index=True)
    finished = models.DateTimeField(null=True, blank=True)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=PurgeRunStatus.choices, default=PurgeRunStatus.RUNNING)
    triggered_by = models.CharField(max_length=200, blank=True)  # "system" for the periodic job
    tenant = models.ForeignKey("deliveryhub.Tenant", on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="+")  # fmt: skip # a run limited to one tenant
    error = models.TextField(blank=True)
    total = models.PositiveBigIntegerField(default=0)

    permission_area = Area.PRIVACY

    objects = PurgeRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started", "-id"]

    def __str__(self):
        return f"{'Dry run' if self.dry_run else 'Purge'} {self.started:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def status_badge(self):
        return PURGE_RUN_STATUS_BADGES.get(self.status, "secondary")


class PurgeRunItem(models.Model):
    """How many rows of one kind a purge run deleted (or would delete) for one tenant (None: platform rows)."""

    run = models.ForeignKey(PurgeRun, on_delete=models.CASCADE, related_name="items")
    tenant = models.ForeignKey("deliveryhub.Tenant", on_delete=models.CASCADE, null=True, blank=True,
                               related_name="+")  # fmt: skip
    kind = models.CharField(max_length=40)
    days = models.PositiveIntegerField()
    cutoff = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)

    permission_area = Area.PRIVACY

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["run", "kind", "tenant"]

    def __str__(self):
        return f"{self.kind}: {self.count}"
