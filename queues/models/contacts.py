"""A tenant's recipients for campaigns: contacts with custom fields, lists, per-list subscriptions, CSV imports.

Everything a data-subject request needs to find or erase about one person hangs off `Contact`: its
subscriptions (CASCADE), and the campaign messages sent to it (`Message.contact`, SET_NULL).
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from deliveryhub.choices import Area
from deliveryhub.models import ChangeLoggedModel, TenantModel
from deliveryhub.querysets import RestrictedQuerySet

from ..choices import (
    IMPORT_FINISHED_STATES,
    IMPORT_STATE_BADGES,
    SUBSCRIPTION_STATUS_BADGES,
    ImportKind,
    ImportMode,
    ImportState,
    OptIn,
    SubscriptionStatus,
)
from ..constants import CONTACT_NAME_MAX


class ContactList(ChangeLoggedModel, TenantModel):
    """A named list of contacts a campaign sends to; each member's standing is its `Subscription`."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    opt_in = models.CharField(max_length=10, choices=OptIn.choices, default=OptIn.SINGLE)

    permission_area = Area.CAMPAIGNS

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="contactlist_unique_tenant_name")]

    def __str__(self):
        return self.name

    def subscribed(self):
        """This list's subscriptions that campaigns send to."""
        return self.subscriptions.filter(status=SubscriptionStatus.SUBSCRIBED)


class Contact(ChangeLoggedModel, TenantModel):
    """One recipient of a tenant: an address (normalised like intake's, lower case, unique per tenant), a name and
    custom fields (`attributes`, strings by name) that templates read as `{{ contact.attributes.city }}`."""

    email = models.CharField(max_length=320)
    domain = models.CharField(max_length=255)  # ASCII (IDNA) form, lower case: the recipient domain of its messages
    name = models.CharField(max_length=CONTACT_NAME_MAX, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    lists = models.ManyToManyField(ContactList, through="Subscription", related_name="contacts")

    permission_area = Area.CAMPAIGNS
    personal_fields = frozenset({"email", "name", "attributes"})  # the audit log records their pseudonyms

    class Meta:
        ordering = ["email"]
        constraints = [models.UniqueConstraint(fields=["tenant", "email"], name="contact_unique_tenant_email")]

    def __str__(self):
        return self.email

    def template_context(self):
        """What templates see as `contact`: empty values left out, so that `default(...)` applies to them."""
        data = {"email": self.email, "attributes": dict(self.attributes or {})}
        if self.name:
            data["name"] = self.name
        return data


class SubscriptionQuerySet(RestrictedQuerySet):
    """Subscriptions belong to a tenant through their contact."""

    def tenant_lookup(self):
        return "contact__tenant_id"


class Subscription(models.Model):
    """A contact's standing on one list: subscribed, or why not (unsubscribed, bounced, complained)."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="subscriptions")
    contact_list = models.ForeignKey(ContactList, on_delete=models.CASCADE, related_name="subscriptions")
    status = models.CharField(max_length=12, choices=SubscriptionStatus.choices, default=SubscriptionStatus.SUBSCRIBED)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    permission_area = Area.CAMPAIGNS

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        ordering = ["contact_list", "contact"]
        constraints = [
            models.UniqueConstraint(fields=["contact_list", "contact"], name="subscription_unique_list_contact")
        ]
        indexes = [models.Index(fields=["contact_list", "status"], name="subscription_list_status")]

    def __str__(self):
        return f"{self.contact_id} on {self.contact_list_id}: {self.status}"

    @property
    def badge(self):
        return SUBSCRIPTION_STATUS_BADGES.get(self.status, "secondary")


class ContactImport(TenantModel):
    """One CSV import (into a list, or into the suppression list), run as a background `Job`.

    The counters are written after every committed chunk, so they always say exactly what was written; the
    validation report (row number, value, reason of every skipped row) is a CSV file under MEDIA_ROOT.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=12, choices=ImportKind.choices, default=ImportKind.CONTACTS)
    contact_list = models.ForeignKey(
        ContactList, on_delete=models.CASCADE, null=True, blank=True, related_name="imports"
    )
    job = models.OneToOneField("deliveryhub.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    mode = models.CharField(max_length=12, choices=ImportMode.choices, default=ImportMode.ADD)
    email_column = models.CharField(max_length=200, default="email")
    mapping = models.JSONField(default=dict, blank=True)  # CSV column -> "name" | attribute name | "" (skip)
    file_name = models.CharField(max_length=255)  # as uploaded
    path = models.CharField(max_length=300)  # the stored upload, under MEDIA_ROOT
    size = models.PositiveBigIntegerField(default=0)
    state = models.CharField(max_length=10, choices=ImportState.choices, default=ImportState.PENDING)
    rows_total = models.PositiveIntegerField(default=0)  # data lines in the file (an estimate while reading)
    rows_read = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)  # new contacts (or new suppressions)
    updated = models.PositiveIntegerField(default=0)  # existing contacts changed or (re)subscribed
    invalid = models.PositiveIntegerField(default=0)  # rows skipped, each in the report
    suppressed = models.PositiveIntegerField(default=0)  # imported, but on the suppression list: never sent to
    report_path = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    permission_area = Area.CAMPAIGNS

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"import of {self.file_name} ({self.state})"

    @property
    def is_finished(self):
        return self.state in IMPORT_FINISHED_STATES

    @property
    def badge(self):
        return IMPORT_STATE_BADGES.get(self.state, "secondary")

    @property
    def percent(self):
        if self.state == ImportState.COMPLETED:
            return 100
        if not self.rows_total:
            return 0
        return min(99, int(100 * self.rows_read / self.rows_total))

    def counts(self):
        """The job result the API names: rows, imported, updated, invalid (and suppressed)."""
        return {"rows": self.rows_read, "total": self.rows_total, "imported": self.imported,
                "updated": self.updated, "invalid": self.invalid, "suppressed": self.suppressed}  # fmt: skip
