"""The last observed state of each record in a domain's plan."""

from django.db import models

from deliveryhub.choices import Area
from deliveryhub.models import TenantModel

from ..choices import DNS_CHECK_BADGES, WARNING_BADGE, DNSCheckStatus, RecordKind
from ..querysets import DnsCheckQuerySet


class DnsCheck(TenantModel):
    """One record of a domain's plan as last checked: expected and observed value, status and why.

    Rows are rewritten by every verification (not change-logged: a status change of the domain is
    audited as `domain.dns_status_changed` instead). `subject` tells apart records of one kind (a DKIM
    selector, a sending IP).
    """

    domain = models.ForeignKey("domains.SendingDomain", on_delete=models.CASCADE, related_name="dns_checks")
    kind = models.CharField(max_length=20, choices=RecordKind.choices)
    subject = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=300)  # owner name queried
    rdtype = models.CharField(max_length=10)
    expected = models.TextField(blank=True)
    observed = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=DNSCheckStatus.choices)
    known_status = models.CharField(
        max_length=10, choices=DNSCheckStatus.choices, blank=True, help_text="The last status that was not a DNS error."
    )
    explanation = models.TextField(blank=True)
    warnings = models.JSONField(default=list, blank=True)
    required = models.BooleanField(default=True)
    checked_at = models.DateTimeField()
    status_since = models.DateTimeField()

    permission_area = Area.INFRASTRUCTURE

    objects = DnsCheckQuerySet.as_manager()

    class Meta:
        ordering = ["domain", "kind", "subject"]
        verbose_name = "DNS check"
        constraints = [
            models.UniqueConstraint(fields=["domain", "kind", "subject"], name="dnscheck_unique_domain_kind_subject")
        ]

    def __str__(self):
        return f"{self.domain} {self.kind} {self.subject}: {self.status}".strip()

    @property
    def badge(self):
        if self.status == DNSCheckStatus.OK and self.warnings:
            return WARNING_BADGE
        return DNS_CHECK_BADGES.get(self.status, "secondary")
