"""IP pools: which IPs serve which purpose, for which tenants, with what weights."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from deliveryhub.choices import Area
from deliveryhub.models import ChangeLoggedModel, PanelURLs, TenantModel
from deliveryhub.querysets import TenantQuerySet

from ..choices import PoolPurpose
from ..querysets import IPPoolQuerySet, PoolChildQuerySet

MAX_WEIGHT = 1000


class IPPool(PanelURLs, ChangeLoggedModel):
    """A set of source IPs serving one purpose: shared (tenant empty) or dedicated to one tenant.

    A shared pool is usable by every tenant when `all_tenants` is set, else by the tenants granted it
    (`IPPoolGrant`). `pause_on_listing` takes a member out of rotation while its IP is on a blocklist.
    """

    name = models.SlugField(max_length=63, unique=True)
    description = models.CharField(max_length=200, blank=True)
    purpose = models.CharField(max_length=16, choices=PoolPurpose.choices, default=PoolPurpose.TRANSACTIONAL)
    tenant = models.ForeignKey(
        "deliveryhub.Tenant",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="dedicated_ip_pools",
        help_text="Dedicated to this tenant; empty for a shared pool.",
    )
    all_tenants = models.BooleanField(default=False, help_text="A shared pool every tenant may use.")
    region = models.CharField(max_length=63, blank=True, help_text="Only IPs of nodes in this region (empty: any).")
    pause_on_listing = models.BooleanField(default=True, help_text="Pause a member while its IP is blocklisted.")

    permission_area = Area.PLATFORM
    panel_url_name = "ippool"

    objects = IPPoolQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "IP pool"

    def __str__(self):
        return self.name

    @property
    def is_shared(self):
        return self.tenant_id is None

    def clean(self):
        if self.tenant_id is not None and self.all_tenants:
            raise ValidationError({"all_tenants": "A dedicated pool cannot be open to all tenants."})

    def is_usable_by(self, tenant):
        return type(self).objects.usable_by(tenant).filter(pk=self.pk).exists()


class IPPoolMember(ChangeLoggedModel):
    """An IP in a pool with its rotation weight; `paused` takes it out of this pool's rotation only."""

    pool = models.ForeignKey(IPPool, on_delete=models.CASCADE, related_name="members")
    ip = models.ForeignKey("ippools.IPAddress", on_delete=models.CASCADE, related_name="memberships")
    weight = models.PositiveSmallIntegerField(
        default=100, validators=[MinValueValidator(1), MaxValueValidator(MAX_WEIGHT)]
    )
    paused = models.BooleanField(default=False)
    paused_by_listing = models.BooleanField(default=False, editable=False)
    pause_reason = models.CharField(max_length=200, blank=True)

    permission_area = Area.PLATFORM

    objects = PoolChildQuerySet.as_manager()

    class Meta:
        ordering = ["pool__name", "ip__address"]
        constraints = [models.UniqueConstraint(fields=["pool", "ip"], name="ippoolmember_unique_pool_ip")]

    def __str__(self):
        return f"{self.ip} in {self.pool} (weight {self.weight})"

    @property
    def tenant_id(self):  # audit entries of a dedicated pool's members belong to its tenant
        return self.pool.tenant_id if self.pool_id else None


class IPPoolGrant(ChangeLoggedModel):
    """A tenant's permission to use a shared pool."""

    pool = models.ForeignKey(IPPool, on_delete=models.CASCADE, related_name="grants")
    tenant = models.ForeignKey("deliveryhub.Tenant", on_delete=models.CASCADE, related_name="ip_pool_grants")

    permission_area = Area.PLATFORM

    objects = PoolChildQuerySet.as_manager()

    class Meta:
        ordering = ["pool__name", "tenant__name"]
        constraints = [models.UniqueConstraint(fields=["pool", "tenant"], name="ippoolgrant_unique_pool_tenant")]

    def __str__(self):
        return f"{self.tenant} may use {self.pool}"

    def clean(self):
        if self.pool_id and self.pool.tenant_id is not None:
            raise ValidationError({"pool": "Only shared pools are granted; a dedicated pool has its tenant."})


class TenantDefaultPool(ChangeLoggedModel, TenantModel):
    """The pool a tenant's mail of one purpose leaves from when the sender names none."""

    purpose = models.CharField(max_length=16, choices=PoolPurpose.choices)
    pool = models.ForeignKey(IPPool, on_delete=models.CASCADE, related_name="default_for")

    permission_area = Area.INFRASTRUCTURE

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__name", "purpose"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "purpose"], name="tenantdefaultpool_unique_tenant_purpose")
        ]

    def __str__(self):
        return f"{self.tenant}: {self.purpose} → {self.pool}"

    def clean(self):
        if self.tenant_id and self.pool_id and not self.pool.is_usable_by(self.tenant):
            raise ValidationError({"pool": "This pool is not usable by the tenant."})
