"""Sending configuration: routes (smarthosts), suppressions, bounce rules, SMTP submission credentials."""

import hmac
import ipaddress
import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from deliveryhub.choices import Area
from deliveryhub.crypto import EncryptedTextField, digest
from deliveryhub.models import ChangeLoggedModel, PanelURLs, TenantModel
from deliveryhub.netguard import TargetNotAllowed, check_public_host
from deliveryhub.querysets import TenantQuerySet

from ..choices import RuleAction, SuppressionReason
from ..querysets import SuppressionQuerySet

_PATTERN = re.compile(r"^(\*|(\*\.)?([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^\[?[0-9a-fA-F:.]+\]?$")


class Route(PanelURLs, ChangeLoggedModel, TenantModel):
    """A smarthost rule: mail to matching recipient domains goes to a fixed relay instead of the MX hosts.

    `pattern` is an exact domain (`example.com`), a subdomain wildcard (`*.example.com`: any subdomain, not
    the domain itself) or `*` (everything). The most specific match wins (exact, then the longest wildcard,
    then `*`); `priority` (lower first) breaks ties. The host must resolve to public addresses only
    (`deliveryhub.netguard`), checked on save here and again by the delivery engine when it connects.
    """

    pattern = models.CharField(max_length=255, help_text="example.com, *.example.com or *")
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=25, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    username = models.CharField(max_length=255, blank=True)
    password = EncryptedTextField(blank=True)
    tls_required = models.BooleanField(default=False, help_text="Refuse to send unless STARTTLS succeeds and verifies.")
    priority = models.PositiveSmallIntegerField(default=100)
    enabled = models.BooleanField(default=True)

    permission_area = Area.INFRASTRUCTURE
    panel_url_name, panel_detail = "route", "edit"
    audit_redact = frozenset({"password"})

    class Meta:
        ordering = ["priority", "pattern"]

    def __str__(self):
        return f"{self.pattern} → {self.host}:{self.port}"

    def clean(self):
        self.pattern = (self.pattern or "").strip().lower().rstrip(".")
        if not _PATTERN.match(self.pattern):
            raise ValidationError({"pattern": "Use a domain (example.com), *.example.com or *."})
        self.host = (self.host or "").strip()
        if not _HOST.match(self.host):
            raise ValidationError({"host": "Enter a host name or an IP address."})
        if self.port is not None:
            try:
                check_public_host(self.host, self.port)
            except TargetNotAllowed as exc:
                raise ValidationError({"host": str(exc)}) from None
        if self.password and not self.username:
            raise ValidationError({"username": "A password needs a user name."})

    def specificity(self):
        """Sort key: exact domains first, then longer wildcards, `*` last."""
        if self.pattern == "*":
            return (2, 0)
        if self.pattern.startswith("*."):
            return (1, -len(self.pattern))
        return (0, 0)

    def matches(self, domain):
        domain = domain.lower().rstrip(".")
        if self.pattern == "*":
            return True
        if self.pattern.startswith("*."):
            return domain.endswith(self.pattern[1:])
        return domain == self.pattern


class Suppression(ChangeLoggedModel, TenantModel):
    """An address the tenant never sends to again (hard bounce, complaint, unsubscribe, by hand).

    After a data-subject erasure the address is its pseudonym (`<HMAC>@erased.invalid`): the person stays
    suppressed (`suppressed_among` matches both forms) but cannot be read back.
    """

    address = models.CharField(max_length=320)  # lower case
    reason = models.CharField(max_length=20, choices=SuppressionReason.choices, default=SuppressionReason.MANUAL)
    source = models.CharField(max_length=500, blank=True)  # the reply or report that caused it, or who added it
    message = models.ForeignKey("queues.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    campaign = models.ForeignKey(
        "queues.Campaign", on_delete=models.SET_NULL, null=True, blank=True, related_name="suppressions"
    )
    expires = models.DateTimeField(null=True, blank=True)  # empty: for good; removed (audited) when it has passed

    permission_area = Area.SENDING
    personal_fields = frozenset({"address", "source"})  # the source may quote the address (a bounce reply)

    objects = SuppressionQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["tenant", "address"], name="suppression_unique_address")]

    def __str__(self):
        return f"{self.address} ({self.reason})"

    def clean(self):
        self.address = (self.address or "").strip().lower()
        if "@" not in self.address:
            raise ValidationError({"address": "Enter an email address."})


class BounceRule(PanelURLs, ChangeLoggedModel):
    """An admin's classification rule, applied before the default rules (tenant rules, then global ones).

    Patterns as in queues/data/bounce_rules.tsv: `code` like `550` or `5xx` (empty: any), `enhanced` like
    `5.1.1` or `5.7.*` (empty: any), `text` a case-insensitive regular expression (empty: any).
    """

    tenant = models.ForeignKey(
        "deliveryhub.Tenant", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )  # empty: a global rule (platform operators)
    priority = models.PositiveSmallIntegerField(default=100)
    code = models.CharField(max_length=3, blank=True)
    enhanced = models.CharField(max_length=12, blank=True)
    text = models.CharField(max_length=500, blank=True)
    category = models.CharField(max_length=40)
    action = models.CharField(max_length=20, choices=RuleAction.choices)
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)

    permission_area = Area.INFRASTRUCTURE
    panel_url_name, panel_detail = "bounce-rule", "edit"

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["priority", "pk"]

    def __str__(self):
        return f"{self.code or '*'} {self.enhanced or '*'} /{self.text}/ → {self.category} ({self.action})"

    def clean(self):
        if self.code and not re.fullmatch(r"[2-5][0-9x]{2}", self.code):
            raise ValidationError({"code": "Use a reply code such as 550 or a pattern such as 5xx."})
        if self.enhanced and not re.fullmatch(r"[245](\.(\d{1,3}|\*)){0,2}(\.\*)?", self.enhanced):
            raise ValidationError({"enhanced": "Use an enhanced status code such as 5.1.1 or a pattern such as 5.7.*."})
        if self.text:
            try:
                re.compile(self.text)
            except re.error as exc:
                raise ValidationError({"text": f"Not a regular expression: {exc}"}) from None


class SmtpCredential(PanelURLs, ChangeLoggedModel, TenantModel):
    """A login for SMTP submission: the user name is global, the password generated, shown once and stored only as
    a digest. Optional limits: the From domains it may send as, the client networks it may log in from."""

    username = models.CharField(max_length=150, unique=True)
    password_digest = models.CharField(max_length=64, editable=False)
    description = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    allowed_from_domains = models.JSONField(default=list, blank=True, help_text="Empty: any of the tenant's domains.")
    allowed_networks = models.JSONField(default=list, blank=True, help_text="CIDR networks; empty: anywhere.")

    permission_area = Area.ACCESS
    panel_url_name, panel_detail = "smtp-credential", "edit"
    audit_exclude = ChangeLoggedModel.audit_exclude | {"password_digest", "last_used"}

    class Meta:
        ordering = ["username"]
        verbose_name = "SMTP credential"

    def __str__(self):
        return self.username

    def clean(self):
        domains, networks = self.allowed_from_domains, self.allowed_networks
        if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
            raise ValidationError({"allowed_from_domains": "A list of domain names."})
        if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
            raise ValidationError({"allowed_networks": "A list of networks (CIDR)."})
        self.allowed_from_domains = sorted({d.strip().lower().rstrip(".") for d in domains if d.strip()})
        for domain in self.allowed_from_domains:
            if not _PATTERN.match(domain) or domain.startswith("*"):
                raise ValidationError({"allowed_from_domains": f"{domain} is not a domain name."})
        cleaned = []
        for network in networks:
            try:
                cleaned.append(str(ipaddress.ip_network(network.strip(), strict=False)))
            except ValueError:
                error = f"{network} is not a network (e.g. 192.0.2.0/24)."
                raise ValidationError({"allowed_networks": error}) from None
        self.allowed_networks = sorted(set(cleaned))

    def allows_client(self, client_ip):
        """Whether a login from `client_ip` is allowed (no networks: from anywhere)."""
        if not self.allowed_networks:
            return True
        try:
            address = ipaddress.ip_address(client_ip or "")
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(n) for n in self.allowed_networks)

    def allows_from_domain(self, domain):
        """Whether the credential may send as `domain` (no domains listed: any of the tenant's)."""
        return not self.allowed_from_domains or (domain or "").lower().rstrip(".") in self.allowed_from_domains

    def set_password(self, raw):
        self.password_digest = digest(raw)

    def check_password(self, raw):
        return bool(self.password_digest) and hmac.compare_digest(self.password_digest, digest(raw))

    def touch(self):
        SmtpCredential.objects.filter(pk=self.pk).update(last_used=timezone.now())
