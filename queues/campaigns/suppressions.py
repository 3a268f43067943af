"""The suppression centre's verbs: add one or many addresses (pasted, or a CSV import job), remove, export."""

import csv

from django.core.exceptions import ValidationError
from django.db import transaction

from deliveryhub import audit

from ..choices import SuppressionReason
from ..mime import normalize_address
from ..models import Suppression

PASTE_MAX = 1000  # addresses one paste may add (larger lists: the CSV import)


class _Echo:
    def write(self, value):
        return value


@transaction.atomic
def add_suppressions(tenant, addresses, *, reason=SuppressionReason.MANUAL, source="", expires=None, acting_user=None):
    """Add addresses to the tenant's suppression list (each audited); existing entries stay as they are.

    All or nothing: one invalid address is a field error naming it, and nothing is added. Returns the new entries.
    """
    with audit.acting_as(acting_user):
        cleaned = []
        for line, value in enumerate(addresses, start=1):
            value = (value or "").strip()
            if not value:
                continue
            try:
                cleaned.append(normalize_address(value).lower())
            except ValidationError:
                raise ValidationError({"addresses": f"Line {line}: {value!r} is not an email address."}) from None
        cleaned = list(dict.fromkeys(cleaned))
        if not cleaned:
            raise ValidationError({"addresses": "Give at least one address."})
        if len(cleaned) > PASTE_MAX:
            raise ValidationError({"addresses": f"At most {PASTE_MAX} addresses at once: import larger lists as CSV."})
        if reason not in SuppressionReason.values:
            raise ValidationError({"reason": "Unknown reason."})
        existing = set(Suppression.objects.filter(tenant=tenant, address__in=cleaned).values_list("address", flat=True))
        created = []
        for address in cleaned:
            if address in existing:
                continue
            suppression = Suppression(
                tenant=tenant, address=address, reason=reason, source=source[:500], expires=expires
            )
            suppression.save()
            created.append(suppression)
        return created


@transaction.atomic
def remove_suppression(suppression, *, acting_user=None):
    """Take an address off the suppression list (audited): it may be sent to again."""
    with audit.acting_as(acting_user):
        suppression.delete()


def export_rows(queryset):
    """CSV lines of suppressions (header first), streamed."""
    writer = csv.writer(_Echo())
    yield writer.writerow(["address", "reason", "source", "campaign", "message", "created", "expires"])
    rows = queryset.order_by("address").values_list(
        "address", "reason", "source", "campaign__uuid", "message__uuid", "created", "expires"
    )
    for address, reason, source, campaign, message, created, expires in rows.iterator(chunk_size=5000):
        yield writer.writerow(
            [
                address,
                reason,
                source,
                campaign or "",
                message or "",
                created.isoformat(),
                expires.isoformat() if expires else "",
            ]
        )
