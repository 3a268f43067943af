"""The sending domain: its name, return path, DMARC intent, TLS policy, ownership and overall status."""

import re
import secrets
import uuid

import idna
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from deliveryhub.choices import Area
from deliveryhub.models import ChangeLoggedModel, TenantModel

from .. import spf
from ..choices import (
    DOMAIN_STATUS_BADGES,
    DmarcAlignment,
    DmarcPolicy,
    DomainStatus,
    MtaStsMode,
    SpfAll,
    TLSPolicy,
)
from ..constants import (
    DEFAULT_RETURN_PATH_SUBDOMAIN,
    DMARC_REPORT_LOCAL_PART,
    FEEDBACK_LOCAL_PART,
    VERIFICATION_TOKEN_BYTES,
    VERIFICATION_TXT_PREFIX,
)
from ..querysets import SendingDomainQuerySet

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SPF_TERM = re.compile(r"^(?:[+?~-]?(?:include:|ip4:|ip6:|a:|mx:|exists:)\S+|[+?~-]?(?:a|mx)(?:/\d+)?)$", re.IGNORECASE)
MAX_DOMAIN_LENGTH = 253


def normalise_domain_name(value, field="name"):
    """The ASCII (IDNA), lower-case form of a host name; ValidationError with a reason if it is not one."""
    name = (value or "").strip().rstrip(".").lower()
    if not name:
        raise ValidationError({field: "Enter a domain name."})
    if "@" in name or "/" in name or " " in name:
        raise ValidationError({field: f"{value!r} is not a domain name (no addresses, paths or spaces)."})
    try:
        if name.isascii():
            for label in name.split("."):
                if label.startswith("xn--"):
                    idna.decode(label)  # an A-label must decode to a valid U-label
        else:
            name = idna.encode(name, uts46=True).decode("ascii")  # IDNA 2008 with UTS #46 mapping (ß stays ß)
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValidationError({field: f"{value!r} is not a valid internationalised domain name ({exc})."}) from None
    labels = name.split(".")
    if len(labels) < 2:
        raise ValidationError({field: f"{name} has no dot: use the full domain (example.com)."})
    if len(name) > MAX_DOMAIN_LENGTH or not all(_LABEL.match(label) for label in labels):
        raise ValidationError({field: f"{name} is not a valid host name (letters, digits, hyphens; 63 per label)."})
    if labels[-1].isdigit():
        raise ValidationError({field: f"{name} looks like an IP address, not a domain."})
    return name


def new_verification_token():
    return secrets.token_urlsafe(VERIFICATION_TOKEN_BYTES)


class SendingDomain(ChangeLoggedModel, TenantModel):
    """A tenant's sending domain: what it publishes in DNS and whether the world sees it right.

    `name` is stored in its ASCII (IDNA) form. A name is unique within a tenant; another tenant can add
    it only as an `unverified_claim` that becomes theirs once their `dh-verification=<token>` TXT record
    verifies (then the earlier claim is released). `status` is derived by `domains.services.verify_domain`.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=MAX_DOMAIN_LENGTH, help_text="The From domain, e.g. example.com.")
    return_path_subdomain = models.CharField(
        max_length=63, default=DEFAULT_RETURN_PATH_SUBDOMAIN,
        help_text="Bounce (envelope sender) host below the domain, e.g. 'bounces' → bounces.example.com.",
    )  # fmt: skip
    # DMARC intent.
    dmarc_policy = models.CharField(max_length=12, choices=DmarcPolicy.choices, default=DmarcPolicy.NONE)
    dmarc_rua = models.CharField(max_length=500, blank=True, help_text="Aggregate report addresses, comma-separated.")
    dmarc_ruf = models.CharField(max_length=500, blank=True, help_text="Failure report addresses, comma-separated.")
    # Where receivers' feedback loops send complaints (registered with them); empty: fbl@<return-path host>.
    feedback_address = models.EmailField(
        max_length=320, blank=True,
        help_text="Feedback-loop address registered with receivers (empty: fbl@<return-path host>).",
    )
    dmarc_alignment = models.CharField(max_length=1, choices=DmarcAlignment.choices, default=DmarcAlignment.RELAXED)
    bulk_sender = models.BooleanField(default=False, help_text="Sends bulk mail (warns about a weak DMARC policy).")
    # SPF intent.
    spf_all = models.CharField(max_length=4, choices=SpfAll.choices, default=SpfAll.SOFTFAIL)
    spf_extra_terms = models.CharField(
        max_length=500,
        blank=True,
        help_text="Other senders to authorise, e.g. 'include:_spf.google.com ip4:198.51.100.0/24'.",
    )
    # Transport security.
    tls_policy = models.CharField(max_length=16, choices=TLSPolicy.choices, default=TLSPolicy.OPPORTUNISTIC)
    mta_sts_mode = models.CharField(max_length=8, choices=MtaStsMode.choices, default=MtaStsMode.OFF, blank=True)
    tls_rpt_rua = models.CharField(max_length=300, blank=True, help_text="TLS-RPT report address (mailto:), optional.")
    # Ownership and state.
    verification_token = models.CharField(max_length=64, default=new_verification_token, editable=False)
    ownership_verified = models.DateTimeField(null=True, blank=True, editable=False)
    status = models.CharField(max_length=20, choices=DomainStatus.choices, default=DomainStatus.PENDING, editable=False)
    status_changed = models.DateTimeField(null=True, blank=True, editable=False)
    dkim_verified = models.BooleanField(default=False, editable=False, help_text="An active key's record verified.")
    ever_verified = models.BooleanField(default=False, editable=False)
    last_checked = models.DateTimeField(null=True, blank=True, editable=False)
    allow_unverified_sending = models.BooleanField(
        default=False, help_text="Let this domain send before its DKIM record verifies (not recommended)."
    )

    permission_area = Area.INFRASTRUCTURE
    audit_exclude = ChangeLoggedModel.audit_exclude | {"verification_token", "last_checked"}

    objects = SendingDomainQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="sendingdomain_unique_tenant_name")]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("domain-detail", args=[self.pk])

    # -- validation -----------------------------------------------------------------------------------------------
    def clean(self):
        self.name = normalise_domain_name(self.name)
        sub = (self.return_path_subdomain or "").strip().rstrip(".").lower()
        if sub.endswith("." + self.name):
            sub = sub[: -len(self.name) - 1]
        if not sub or not all(_LABEL.match(label) for label in sub.split(".")):
            raise ValidationError({"return_path_subdomain": "Use one or more host labels, e.g. 'bounces'."})
        self.return_path_subdomain = sub
        for field in ("dmarc_rua", "dmarc_ruf"):
            addresses = [a.strip() for a in getattr(self, field).split(",") if a.strip()]
            cleaned = []
            for address in addresses:
                address = address.removeprefix("mailto:")
                if not re.match(r"^[^@\s,;!]+@[^@\s,;!]+\.[^@\s,;!]+$", address):
                    raise ValidationError({field: f"{address!r} is not an email address."})
                cleaned.append(address)
            setattr(self, field, ", ".join(cleaned))
        if self.tls_rpt_rua:
            address = self.tls_rpt_rua.strip().removeprefix("mailto:")
            if not re.match(r"^[^@\s,;!]+@[^@\s,;!]+\.[^@\s,;!]+$", address):
                raise ValidationError({"tls_rpt_rua": f"{address!r} is not an email address."})
            self.tls_rpt_rua = address
        terms = self.spf_extra_terms.split()
        bad = [term for term in terms if not _SPF_TERM.match(term)]
        if bad:
            raise ValidationError(
                {"spf_extra_terms": f"Not an SPF term: {', '.join(bad)}. Use include:, ip4:, ip6:, a, mx or exists:."}
            )
        self.spf_extra_terms = " ".join(terms)
        problems = spf.plan_errors(self.name, self.spf_extra_terms, settings.SPF_INCLUDE) if self.name else []
        if problems:
            raise ValidationError({"spf_extra_terms": problems})
        if self.tenant_id and type(self).objects.filter(tenant_id=self.tenant_id, name=self.name).exclude(pk=self.pk):
            raise ValidationError({"name": f"{self.name} is already a sending domain of this tenant."})

    # -- derived names and values ---------------------------------------------------------------------------------
    @property
    def unicode_name(self):
        """The name as people write it (internationalised labels decoded)."""
        try:
            return idna.decode(self.name)
        except (idna.IDNAError, UnicodeError):
            return self.name

    @property
    def return_path_host(self):
        """The envelope-sender (bounce) host: `<subdomain>.<domain>`."""
        return f"{self.return_path_subdomain}.{self.name}"

    @property
    def feedback_loop_address(self):
        """The address the inbound listener takes ARF complaints at for this domain (lower case)."""
        return (self.feedback_address or f"{FEEDBACK_LOCAL_PART}@{self.return_path_host}").lower()

    @property
    def dmarc_report_address(self):
        """The address the inbound listener always takes DMARC aggregate reports at for this domain (put it in rua)."""
        return f"{DMARC_REPORT_LOCAL_PART}@{self.return_path_host}".lower()

    def dmarc_rua_addresses(self):
        """The mailto: addresses of `dmarc_rua` (lower case, without `mailto:` and size limits)."""
        out = []
        for item in (self.dmarc_rua or "").split(","):
            item = item.strip()
            item = item[7:] if item.lower().startswith("mailto:") else item
            item = item.split("!", 1)[0].strip().lower()
            if "@" in item:
                out.append(item)
        return out

    @property
    def verification_txt(self):
        return f"{VERIFICATION_TXT_PREFIX}{self.verification_token}"

    @property
    def status_badge(self):
        return DOMAIN_STATUS_BADGES.get(self.status, "secondary")

    def dmarc_txt_value(self):
        """The DMARC record to publish at `_dmarc.<domain>`, from the desired policy."""
        parts = ["v=DMARC1", f"p={self.dmarc_policy}"]
        if self.dmarc_rua:
            parts.append("rua=" + ",".join(f"mailto:{a.strip()}" for a in self.dmarc_rua.split(",") if a.strip()))
        if self.dmarc_ruf:
            parts.append("ruf=" + ",".join(f"mailto:{a.strip()}" for a in self.dmarc_ruf.split(",") if a.strip()))
            parts.append("fo=1")
        if self.dmarc_alignment == DmarcAlignment.STRICT:
            parts += ["adkim=s", "aspf=s"]
        return "; ".join(parts)

    # -- sending gate ---------------------------------------------------------------------------------------------
    def can_send(self):
        """(allowed, reason): may mail leave with this From domain now? The reason says what to do if not."""
        if self.status == DomainStatus.UNVERIFIED_CLAIM:
            return False, (
                f"{self.name} is claimed by another tenant: publish the TXT record {self.verification_txt!r} at "
                f"{self.name} and check the domain again to prove it is yours."
            )
        if self.dkim_verified or self.allow_unverified_sending:
            return True, ""
        pending = self.dkim_keys.filter(state="pending").order_by("-algorithm", "-created").first()  # RSA first
        where = f" at {pending.dns_name}" if pending else ""
        return False, (
            f"{self.name} cannot send yet: its DKIM record{where} has not verified. Publish the records shown "
            "under Domains and check again, or have an admin allow unverified sending for this domain."
        )
