"""
The deliverability gate: what Gmail, Yahoo and Microsoft require of bulk senders (2024-2025), checked when a
campaign starts.

The From domain must have SPF and DKIM verified, a DMARC record published (at least p=none) and aligned, and the
campaign's messages must carry working one-click unsubscribe (RFC 8058: an https `DELIVERYHUB_PUBLIC_URL`). When
BULK_SENDER_THRESHOLD or more recipients are at those providers (judged by the domain's name, and by its MX hosts
as the delivery engine judges them), any failing point refuses the start, with the list of what to fix; below
that, they are warnings.
"""

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count

from domains.choices import DNSCheckStatus, RecordKind
from domains.models import DnsCheck
from ippools.choices import Provider
from ippools.providers import provider_for

from ..constants import BULK_SENDER_THRESHOLD, GATE_MX_LOOKUPS_MAX
from ..delivery.destination import destination_for, tenant_routes
from .fanout import recipient_contacts

logger = logging.getLogger(__name__)

BULK_PROVIDERS = frozenset({Provider.GOOGLE, Provider.YAHOO, Provider.MICROSOFT})
CHECKED_KINDS = (
    (RecordKind.SPF, "SPF"),
    (RecordKind.DKIM, "DKIM"),
    (RecordKind.DMARC, "DMARC"),
    (RecordKind.ALIGNMENT, "DMARC alignment"),
)


@dataclass
class Verdict:
    """The gate's answer: what fails, how many recipients are at the big providers, whether that refuses."""

    problems: list = field(default_factory=list)
    bulk_recipients: int = 0
    recipients: int = 0

    @property
    def enforced(self):
        return self.bulk_recipients >= BULK_SENDER_THRESHOLD

    @property
    def refuses(self):
        return self.enforced and bool(self.problems)

    def as_dict(self):
        return {
            "problems": self.problems,
            "bulk_recipients": self.bulk_recipients,
            "recipients": self.recipients,
            "enforced": self.enforced,
        }


def domain_problems(domain):
    """What to fix on the From domain, in words: one line per failing record (SPF, DKIM, DMARC, alignment)."""
    checks = {}
    for check in DnsCheck.objects.filter(domain=domain, kind__in=[kind for kind, _ in CHECKED_KINDS]):
        checks.setdefault(check.kind, []).append(check)
    problems = []
    for kind, label in CHECKED_KINDS:
        rows = checks.get(kind, [])
        if not rows:
            problems.append(
                f"{label} of {domain.name} has not been checked yet: publish the records shown under "
                f"Domains → {domain.name} and press Check now."
            )
        elif not any(row.status == DNSCheckStatus.OK for row in rows):
            row = rows[0]
            problems.append(
                f"{label} of {domain.name} is {row.get_status_display().lower()}: "
                f"{row.explanation or 'see Domains → ' + domain.name}"
            )
    return problems


def unsubscribe_problems():
    if not settings.PUBLIC_URL.startswith("https://"):
        return [
            f"One-click unsubscribe needs an https public URL (RFC 8058), but DELIVERYHUB_PUBLIC_URL is "
            f"{settings.PUBLIC_URL!r}: set it to the https address recipients reach this server at."
        ]
    return []


def bulk_recipients(campaign, contacts=None):
    """(recipients at Gmail/Yahoo/Microsoft, all recipients): by name first; then the MX hosts of the biggest other
    domains (at most GATE_MX_LOOKUPS_MAX, and only while they could still reach the threshold)."""
    contacts = recipient_contacts(campaign) if contacts is None else contacts
    counts = list(contacts.order_by().values_list("domain").annotate(n=Count("id")).order_by("-n"))
    total = sum(n for _, n in counts)
    bulk = sum(n for domain, n in counts if provider_for(domain) in BULK_PROVIDERS)
    others = [(domain, n) for domain, n in counts if provider_for(domain) not in BULK_PROVIDERS]
    left = sum(n for _, n in others)
    routes = tenant_routes(campaign.tenant_id)
    for domain, n in others[:GATE_MX_LOOKUPS_MAX]:
        if bulk >= BULK_SENDER_THRESHOLD or bulk + left < BULK_SENDER_THRESHOLD:
            break
        left -= n
        try:
            if destination_for(campaign.tenant_id, domain, routes).provider in BULK_PROVIDERS:
                bulk += n
        except Exception:  # DNS trouble: judged by the name alone (done above)
            logger.warning("The gate could not look up the MX hosts of %s", domain, exc_info=True)
    return bulk, total


def check(campaign):
    """The gate's verdict for starting `campaign` now."""
    verdict = Verdict()
    verdict.bulk_recipients, verdict.recipients = bulk_recipients(campaign)
    verdict.problems = domain_problems(campaign.sending_domain) + unsubscribe_problems()
    return verdict
