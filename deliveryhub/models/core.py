"""
Core models: tenants and memberships, API keys, the audit log, background jobs, sign-in failures, and the
abstract bases (`TenantModel`, `ChangeLoggedModel`) every app builds on.
"""

import hashlib
import json
import uuid
from datetime import UTC
from pathlib import PurePosixPath
from zoneinfo import available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from ..choices import ActorType, ApiKeyScope, Area, JobStatus, Role
from ..crypto import EncryptedTextField, personal_marker
from ..querysets import AuditEntryQuerySet, RestrictedQuerySet, TenantQuerySet

# ---------------------------------------------------------------------------------------------------------------------
# Abstract bases
# ---------------------------------------------------------------------------------------------------------------------


def snapshot_value(value):
    """A JSON-safe form of a field value for audit snapshots."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


class PersonalDataMixin:
    """A model whose `personal_fields` hold personal data (email addresses).

    The audit log never records those values: snapshots and the frozen object name carry their pseudonym
    (`crypto.personal_marker`: "pseudonym:<HMAC>") instead, so an erasure leaves nothing to find in the
    append-only log while an auditor can still search it for an address (the same address gives the same marker).
    """

    personal_fields = frozenset()

    def audit_repr(self):
        """str(self) with every personal value replaced by its marker: the object name the audit log keeps."""
        text = str(self)
        for name in self.personal_fields:
            value = self.__dict__.get(name)
            if isinstance(value, str) and value:
                text = text.replace(value, personal_marker(value))
        return text


class ChangeLoggedModel(PersonalDataMixin, models.Model):
    """A model whose every create, update and delete is written to the audit log automatically.

    `audit_exclude` names fields never copied into the log (secrets, digests); `audit_redact` names
    fields logged as "(secret)"/"(changed)" only, and so is every `EncryptedTextField`; `personal_fields`
    (PersonalDataMixin) are logged as their pseudonyms. Deletes are
    logged from the `post_delete` signal (connected in `DeliveryhubConfig.ready`), so queryset deletes
    (the admin's bulk delete) and cascades are logged per object too.
    """

    created = models.DateTimeField(auto_now_add=True)
    last_updated = models.DateTimeField(auto_now=True)

    audit_exclude = frozenset({"created", "last_updated"})
    audit_redact = frozenset()

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._prechange = instance.audit_state()
        return instance

    @classmethod
    def redacted_fields(cls):
        """Attnames never logged in clear: `audit_redact` plus every encrypted field."""
        return {
            field.attname
            for field in cls._meta.concrete_fields
            if field.name in cls.audit_redact or isinstance(field, EncryptedTextField)
        }

    def audit_state(self):
        """The audited field values as a JSON-safe dict, secrets included: kept in memory to detect changes only."""
        data = {}
        for field in self._meta.concrete_fields:
            if field.name in self.audit_exclude or field.attname not in self.__dict__:
                continue
            data[field.attname] = snapshot_value(getattr(self, field.attname))
        return data

    def snapshot(self):
        """The audited field values of this object as a JSON-safe dict, secrets shown as "(secret)"."""
        return self.redact(self.audit_state())

    @classmethod
    def redact(cls, data, marker="(secret)"):
        """`data` (a field -> value dict, or None) with the values of redacted fields replaced by `marker`."""
        if data is None:
            return None
        secret = cls.redacted_fields()
        return {
            key: marker if key in secret else personal_marker(value) if key in cls.personal_fields else value
            for key, value in data.items()
        }

    def save(self, *args, **kwargs):
        from ..audit import log_change

        creating = self._state.adding
        super().save(*args, **kwargs)
        post = self.audit_state()
        pre = None if creating else getattr(self, "_prechange", None)
        log_change(self, "create" if creating else "update", pre, post)
        self._prechange = post


def log_deletion(sender, instance, **kwargs):
    """`post_delete` receiver of every ChangeLoggedModel: one audit entry per deleted object (cascades included)."""
    from ..audit import log_change

    log_change(instance, "delete", instance.audit_state(), None)


class PanelURLs:
    """The panel pages of a model managed with the generic views: `<panel_url_name>-detail`, `-edit` and `-delete`,
    by primary key. A model without a page of its own names its edit page as its address (`panel_detail = "edit"`)."""

    panel_url_name = None
    panel_detail = "detail"

    def get_absolute_url(self):
        return reverse(f"{self.panel_url_name}-{self.panel_detail}", args=[self.pk])

    def get_edit_url(self):
        return reverse(f"{self.panel_url_name}-edit", args=[self.pk])

    def get_delete_url(self):
        return reverse(f"{self.panel_url_name}-delete", args=[self.pk])


class TenantModel(models.Model):
    """A model owned by one tenant; `objects.restrict(actor, action)` is the only way views reach it."""

    tenant = models.ForeignKey("deliveryhub.Tenant", on_delete=models.CASCADE, related_name="+")

    permission_area = Area.INFRASTRUCTURE

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


# ---------------------------------------------------------------------------------------------------------------------
# Tenancy
# ---------------------------------------------------------------------------------------------------------------------


class Tenant(ChangeLoggedModel):
    """An organisation using DeliveryHub: it owns domains, messages, keys and members."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    time_zone = models.CharField(max_length=64, default="UTC")
    is_active = models.BooleanField(default=True)

    permission_area = Area.PLATFORM

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def tenant_id(self):  # a tenant's own audit entries belong to it
        return self.pk

    def get_absolute_url(self):
        return reverse("tenant-detail", args=[self.pk])

    def get_edit_url(self):
        return reverse("tenant-edit", args=[self.pk])

    def clean(self):
        if self.time_zone not in available_timezones():
            raise ValidationError({"time_zone": f"{self.time_zone!r} is not a time zone name such as Europe/Paris."})


class Membership(ChangeLoggedModel):
    """A user's role in one tenant."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)

    permission_area = Area.ACCESS

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__name", "user__username"]
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")]

    def __str__(self):
        return f"{self.user} in {self.tenant} ({self.role})"


class ApiKey(ChangeLoggedModel):
    """An API key: stored as a lookup prefix plus HMAC-SHA256(pepper, key), never the key itself.

    A tenant key acts with a role or a narrower scope; a platform key (no tenant) is an operator key.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, null=True, blank=True, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=24, db_index=True)  # e.g. "dh_live_AbCd1234"
    digest = models.CharField(max_length=64)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    scope = models.CharField(max_length=10, choices=ApiKeyScope.choices, default=ApiKeyScope.ROLE)
    expires = models.DateTimeField(null=True, blank=True)
    allowed_networks = models.JSONField(default=list, blank=True)  # CIDR strings; empty = anywhere
    last_used = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)

    permission_area = Area.ACCESS
    audit_exclude = ChangeLoggedModel.audit_exclude | {"digest", "last_used", "last_used_ip"}

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_platform(self):
        return self.tenant_id is None

    @property
    def write_enabled(self):
        return self.scope != ApiKeyScope.READ and self.role != Role.VIEWER

    def is_usable(self, now=None):
        now = now or timezone.now()
        return self.revoked is None and (self.expires is None or self.expires > now)

    def allows_address(self, address):
        import ipaddress

        if not self.allowed_networks:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except (TypeError, ValueError):  # no address (None, "") or not one
            return False
        return any(ip in ipaddress.ip_network(net, strict=False) for net in self.allowed_networks)

    def clean(self):
        import ipaddress

        for net in self.allowed_networks or []:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValidationError({"allowed_networks": f"{net!r} is not an IP network (CIDR)."}) from None


# ---------------------------------------------------------------------------------------------------------------------
# Audit log
# ---------------------------------------------------------------------------------------------------------------------


class AuditEntry(models.Model):
    """One append-only, hash-chained record of a change or sensitive act.

    `hash` = SHA-256 over the canonical JSON of the entry's content and `prev_hash`; `seq` counts the
    chain without gaps. Entries are never updated or deleted; `AuditChainHead` holds the newest link so
    that removing the last entries is detected too.
    """

    seq = models.BigIntegerField(unique=True)
    time = models.DateTimeField(default=timezone.now, db_index=True)
    # Plain ids (no FK constraint, never nulled) so deleting a tenant or user never rewrites history.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.DO_NOTHING, db_constraint=False, null=True, blank=True, related_name="+"
    )
    actor_type = models.CharField(max_length=12, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_name = models.CharField(max_length=200, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    prechange = models.JSONField(null=True, blank=True)
    postchange = models.JSONField(null=True, blank=True)
    message = models.TextField(blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    permission_area = Area.AUDIT

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["tenant", "time"], name="audit_tenant_time"),
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
        ]

    def __str__(self):
        return f"#{self.seq} {self.action} {self.object_type} {self.object_repr}".strip()

    HASHED_FIELDS = (
        "seq", "time", "tenant_id", "actor_type", "actor_id", "actor_name", "request_id", "client_ip", "action",
        "object_type", "object_id", "object_repr", "prechange", "postchange", "message", "prev_hash",
    )  # fmt: skip

    def canonical(self):
        """The exact bytes the hash covers: sorted-key JSON of the content, time in UTC microseconds."""
        data = {name: getattr(self, name) for name in self.HASHED_FIELDS}
        data["time"] = self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return json.dumps(data, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder).encode()

    def compute_hash(self):
        return hashlib.sha256(self.canonical()).hexdigest()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError("Audit entries are append-only.")
        kwargs["force_insert"] = True  # never an UPDATE, even of a new instance given an existing pk
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("Audit entries are append-only.")


class AuditChainHead(models.Model):
    """The newest link of the audit chain (one row). Writers lock it, which serialises the chain."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)


# ---------------------------------------------------------------------------------------------------------------------
# Background jobs
# ---------------------------------------------------------------------------------------------------------------------


class Job(models.Model):
    """A user-visible background job (export, import, verification) with status, progress and log."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, null=True, blank=True, related_name="jobs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    # The API key that requested the job, if any: the job acts (and is audited) as that key.
    api_key = models.ForeignKey("ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    name = models.CharField(max_length=100)
    runner = models.CharField(max_length=200)  # dotted path of the JobRunner subclass
    params = models.JSONField(default=dict, blank=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.PENDING, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    result_file = models.CharField(max_length=300, blank=True)  # path under MEDIA_ROOT
    result = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    completed = models.DateTimeField(null=True, blank=True)

    permission_area = Area.AUDIT

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"{self.name} ({self.status})"

    @property
    def is_finished(self):
        return self.status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.ERRORED)

    def download_name(self):
        """The name a downloaded result gets: what it holds and its day (`audit-log-2026-12-04.csv`), not a uuid."""
        what = slugify(self.name.removesuffix(" export").removesuffix(" Export")) or "export"
        day = (self.completed or self.created or timezone.now()).astimezone(UTC).date().isoformat()
        return f"{what}-{day}{PurePosixPath(self.result_file).suffix}"


class LoginFailure(models.Model):
    """A failed sign-in, counted per account and per client address for throttling."""

    time = models.DateTimeField(default=timezone.now, db_index=True)
    username = models.CharField(max_length=254, db_index=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True, db_index=True)


# ---------------------------------------------------------------------------------------------------------------------
# Platform signing key and the scheduler lease
# ---------------------------------------------------------------------------------------------------------------------


class SigningKey(ChangeLoggedModel):
    """The platform's key for signing reports, exports and backups (PAdES for PDFs, CMS for archives).

    Generated on first use (`deliveryhub.signing.active_key`); the private key is encrypted at rest with the data
    key, the self-signed certificate is public (downloadable from the verify page). Older keys stay, inactive, so
    that files they signed still verify as the platform's.
    """

    fingerprint = models.CharField(max_length=64, unique=True)  # SHA-256 of the certificate (DER), hex
    certificate_pem = models.TextField()
    private_key = EncryptedTextField()  # PKCS#8 PEM
    subject = models.CharField(max_length=200)
    not_after = models.DateTimeField()
    active = models.BooleanField(default=True)

    permission_area = Area.PLATFORM
    audit_exclude = ChangeLoggedModel.audit_exclude | {"certificate_pem", "private_key"}

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=models.Q(active=True), name="signingkey_one_active")
        ]

    def __str__(self):
        return f"{self.subject} ({self.fingerprint[:16]})"


class Lease(models.Model):
    """A named lease held by one process at a time, with a fencing token (deliveryhub.leader).

    `token` grows by one at every change of holder; work done under the lease carries the token it was
    started with, and the point where it takes effect (enqueueing delivery batches) refuses a token that is
    no longer current, so a leader that was paused past its lease cannot act after a standby took over.
    """

    name = models.CharField(max_length=100, primary_key=True)
    holder = models.CharField(max_length=200, blank=True)
    token = models.BigIntegerField(default=0)
    acquired_at = models.DateTimeField(null=True, blank=True)
    renewed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name}: {self.holder or 'free'} (token {self.token})"
