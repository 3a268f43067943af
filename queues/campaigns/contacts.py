"""Verbs on contacts, lists and subscriptions, and the checks every way in (API, UI, CSV import) shares.

Addresses are normalised like intake's (`queues.mime.normalize_address`: IDNA domain, RFC 5321 limits) and then
lower-cased: one contact per address and tenant, whatever case it was written in.
"""

import csv
import functools
import json
import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from deliveryhub import audit

from ..choices import SubscriptionStatus
from ..constants import ATTRIBUTE_NAME_MAX, ATTRIBUTE_VALUE_MAX, ATTRIBUTES_MAX, CONTACT_NAME_MAX
from ..mime import normalize_address, normalize_domain
from ..models import Contact, ContactList, Subscription, Suppression

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ATTRIBUTE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


@functools.lru_cache(maxsize=65536)
def _domain(domain):
    """A recipient domain's normal form, once per distinct domain (an import sees the same few thousand again and
    again); raises ValidationError like `normalize_domain`."""
    return normalize_domain(domain)


def _normalised(address):
    local, at, domain = address.rpartition("@")
    if at and domain:
        address = f"{local}@{_domain(domain)}"  # then normalize_address finds the ASCII form and checks the rest
    return normalize_address(address).lower()


def normalise_email(value, field="email"):
    """(address, domain) of a contact: normalised like intake addresses, lower case; ValidationError otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError({field: "An email address is required."})
    try:
        address = _normalised(value.strip())
    except ValidationError as exc:
        raise ValidationError({field: exc.message_dict.get("address", exc.messages)}) from None
    return address, address.rpartition("@")[2]


def has_control_characters(value):
    return _CONTROL.search(value) is not None


def check_name(value, field="name"):
    value = (value or "").strip()
    if len(value) > CONTACT_NAME_MAX:
        raise ValidationError({field: f"A name is at most {CONTACT_NAME_MAX} characters."})
    if has_control_characters(value):
        raise ValidationError({field: "The name contains control characters (line breaks, tabs, …)."})
    return value


def check_attribute_name(name, field="attributes"):
    if not name or len(name) > ATTRIBUTE_NAME_MAX or not set(name) <= ATTRIBUTE_NAME_CHARS or name[0].isdigit():
        raise ValidationError(
            {
                field: f"{name!r} is not a field name: use up to {ATTRIBUTE_NAME_MAX} letters, digits and _, "
                "not starting with a digit (templates read it as contact.attributes.<name>)."
            }
        )
    return name


def check_attributes(value, field="attributes"):
    """Custom fields: an object of at most ATTRIBUTES_MAX names (identifiers) to strings, numbers or booleans."""
    if not isinstance(value, dict):
        raise ValidationError({field: "Custom fields are a JSON object of names to values."})
    if len(value) > ATTRIBUTES_MAX:
        raise ValidationError({field: f"At most {ATTRIBUTES_MAX} custom fields per contact."})
    cleaned = {}
    for name, item in value.items():
        check_attribute_name(name, field)
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise ValidationError({field: f"The value of {name} must be a string, a number or a boolean."})
        if isinstance(item, str) and len(item) > ATTRIBUTE_VALUE_MAX:
            raise ValidationError({field: f"The value of {name} is longer than {ATTRIBUTE_VALUE_MAX} characters."})
        cleaned[name] = item
    return cleaned


# ---------------------------------------------------------------------------------------------------------------------
# Contacts
# ---------------------------------------------------------------------------------------------------------------------


@transaction.atomic
def create_contact(tenant, *, email, name="", attributes=None, lists=(), acting_user=None):
    """Create a contact (audited) subscribed to `lists`; a second contact with the same address is a field error."""
    with audit.acting_as(acting_user):
        address, domain = normalise_email(email)
        if Contact.objects.filter(tenant=tenant, email=address).exists():
            raise ValidationError({"email": f"{address} is already a contact."})
        contact = Contact(
            tenant=tenant,
            email=address,
            domain=domain,
            name=check_name(name),
            attributes=check_attributes(attributes or {}),
        )
        contact.save()
        for contact_list in lists:
            _subscribe(contact, contact_list, SubscriptionStatus.SUBSCRIBED)
        return contact


@transaction.atomic
def update_contact(contact, *, acting_user=None, **changes):
    """Change a contact's address, name or custom fields (audited)."""
    with audit.acting_as(acting_user):
        if "email" in changes:
            address, domain = normalise_email(changes["email"])
            if Contact.objects.filter(tenant_id=contact.tenant_id, email=address).exclude(pk=contact.pk).exists():
                raise ValidationError({"email": f"{address} is already a contact."})
            contact.email, contact.domain = address, domain
        if "name" in changes:
            contact.name = check_name(changes["name"])
        if "attributes" in changes:
            contact.attributes = check_attributes(changes["attributes"])
        contact.save()
        return contact


@transaction.atomic
def delete_contacts(queryset, *, acting_user=None):
    """Delete contacts with their subscriptions (each deletion audited). Their sent messages stay, unlinked."""
    with audit.acting_as(acting_user):
        count = 0
        for contact in queryset:
            contact.delete()
            count += 1
        return count


def _subscribe(contact, contact_list, status):
    now = timezone.now()
    subscription, created = Subscription.objects.get_or_create(
        contact=contact, contact_list=contact_list, defaults={"status": status, "created": now, "updated": now}
    )
    if not created and subscription.status != status:
        subscription.status, subscription.updated = status, now
        subscription.save(update_fields=["status", "updated"])
    return subscription


@transaction.atomic
def set_subscription(contact, contact_list, status, *, acting_user=None):
    """Put a contact on a list with `status` (subscribed, unsubscribed, …), audited as `contact.subscription`."""
    if contact.tenant_id != contact_list.tenant_id:
        raise ValidationError({"lists": "That list belongs to another tenant."})
    if status not in SubscriptionStatus.values:
        raise ValidationError({"status": f"Unknown status {status!r}."})
    with audit.acting_as(acting_user):
        before = Subscription.objects.filter(contact=contact, contact_list=contact_list).first()
        subscription = _subscribe(contact, contact_list, status)
        audit.record(
            "contact.subscription",
            obj=contact,
            prechange={"list": contact_list.pk, "status": before.status} if before else None,
            postchange={"list": contact_list.pk, "status": status},
        )
        return subscription


@transaction.atomic
def remove_from_list(contact, contact_list, *, acting_user=None):
    """Take a contact off a list altogether (its history on the list is gone; use unsubscribe to keep it)."""
    with audit.acting_as(acting_user):
        deleted, _ = Subscription.objects.filter(contact=contact, contact_list=contact_list).delete()
        if deleted:
            audit.record("contact.remove_from_list", obj=contact, prechange={"list": contact_list.pk})
        return deleted


def is_suppressed(tenant_id, address):
    return Suppression.objects.filter(tenant_id=tenant_id, address=address).exists()


def suppressed_among(contacts):
    """{(tenant id, address)} of these contacts that are on their tenant's suppression list: one query for a page."""
    contacts = list(contacts)
    if not contacts:
        return set()
    rows = Suppression.objects.filter(
        tenant_id__in={c.tenant_id for c in contacts}, address__in={c.email for c in contacts}
    ).values_list("tenant_id", "address")
    return set(rows)


# ---------------------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------------------


class _Echo:
    def write(self, value):
        return value


EXPORT_CHUNK = 5000  # rows read per query while streaming an export


def export_rows(contact_list):
    """CSV lines of a list (header first): email, name, status, subscribed, then one column per custom field.

    Streams: two passes over the list (field names, then rows), EXPORT_CHUNK rows at a time, never all in memory.
    """
    writer = csv.writer(_Echo())
    subscriptions = Subscription.objects.filter(contact_list=contact_list).order_by("contact_id")
    names = set()
    for attributes in subscriptions.values_list("contact__attributes", flat=True).iterator(chunk_size=EXPORT_CHUNK):
        names.update((attributes or {}).keys())
    names = sorted(names)
    yield writer.writerow(["email", "name", "status", "subscribed", *names])
    rows = subscriptions.values_list("contact__email", "contact__name", "status", "created", "contact__attributes")
    for email, name, status, created, attributes in rows.iterator(chunk_size=EXPORT_CHUNK):
        attributes = attributes or {}
        values = [_cell(attributes.get(key)) for key in names]
        yield writer.writerow([email, _cell(name), status, created.isoformat(), *values])


def _cell(value):
    """A value safe to open in a spreadsheet: formulas (=, +, -, @ first) are quoted with a leading apostrophe."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@transaction.atomic
def create_list(tenant, *, name, description="", opt_in="single", acting_user=None):
    """Create a contact list (audited); a second list with the same name is a field error."""
    with audit.acting_as(acting_user):
        name = (name or "").strip()
        if not name:
            raise ValidationError({"name": "A list needs a name."})
        if ContactList.objects.filter(tenant=tenant, name=name).exists():
            raise ValidationError({"name": f"There is already a list named {name}."})
        contact_list = ContactList(tenant=tenant, name=name, description=description, opt_in=opt_in)
        contact_list.full_clean(exclude=["tenant"], validate_unique=False)
        contact_list.save()
        return contact_list
