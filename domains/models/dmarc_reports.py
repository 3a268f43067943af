"""DMARC aggregate reports (RFC 7489 `rua`) that receivers send about a sending domain: who sends as it."""

from django.db import models
from django.utils import timezone

from deliveryhub.choices import Area
from deliveryhub.models import TenantModel
from deliveryhub.querysets import RestrictedQuerySet


class DmarcReport(TenantModel):
    """One aggregate report: one reporter's (org_name) view of one domain over its date range (usually a day)."""

    sending_domain = models.ForeignKey(
        "domains.SendingDomain", on_delete=models.CASCADE, related_name="dmarc_reports"
    )
    org_name = models.CharField(max_length=200)  # the reporter: google.com, Yahoo, …
    reporter_email = models.CharField(max_length=320, blank=True)
    report_id = models.CharField(max_length=200)
    date_begin = models.DateTimeField()
    date_end = models.DateTimeField()
    policy_domain = models.CharField(max_length=255)
    policy = models.CharField(max_length=20, blank=True)  # p= as the reporter saw it
    message_count = models.PositiveIntegerField(default=0)  # sum of the rows' counts
    received = models.DateTimeField(default=timezone.now)

    permission_area = Area.INFRASTRUCTURE

    class Meta:
        ordering = ["-date_begin", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["sending_domain", "org_name", "report_id"], name="dmarcreport_unique")
        ]
        indexes = [models.Index(fields=["sending_domain", "date_begin"], name="dmarcreport_domain_day")]

    def __str__(self):
        return f"{self.org_name} {self.date_begin:%Y-%m-%d} ({self.policy_domain})"


class DmarcRecordQuerySet(RestrictedQuerySet):
    """Rows belong to a tenant through their report."""

    def tenant_lookup(self):
        return "report__tenant_id"


class DmarcRecord(models.Model):
    """One row of a report: a source IP, how many messages it sent as the domain, and how they authenticated."""

    report = models.ForeignKey(DmarcReport, on_delete=models.CASCADE, related_name="records")
    source_ip = models.GenericIPAddressField()
    count = models.PositiveIntegerField()
    disposition = models.CharField(max_length=20, blank=True)  # none, quarantine, reject
    dkim = models.CharField(max_length=10, blank=True)  # the DMARC-aligned DKIM result: pass / fail
    spf = models.CharField(max_length=10, blank=True)  # the DMARC-aligned SPF result: pass / fail
    header_from = models.CharField(max_length=255, blank=True)
    dkim_domain = models.CharField(max_length=255, blank=True)
    spf_domain = models.CharField(max_length=255, blank=True)
    ours = models.BooleanField(default=False)  # one of the platform's sending IPs

    permission_area = Area.INFRASTRUCTURE

    objects = DmarcRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-count", "id"]

    def __str__(self):
        return f"{self.source_ip} ×{self.count} dkim={self.dkim} spf={self.spf}"

    @property
    def dmarc_pass(self):
        return self.dkim == "pass" or self.spf == "pass"
