"""Enumerations of the domains app, with their badge colours beside them."""

from django.db import models


class DomainStatus(models.TextChoices):
    """A sending domain's overall state, derived from its last DNS verification."""

    PENDING = "pending", "Pending"  # DKIM never verified yet
    VERIFIED = "verified", "Verified"  # every required record checks out
    WARNING = "warning", "Needs attention"  # DKIM verified, something else missing, wrong or weak
    FAILING = "failing", "Failing"  # was verified, DKIM no longer checks out
    UNVERIFIED_CLAIM = "unverified_claim", "Unverified claim"  # another tenant holds it: prove ownership first


DOMAIN_STATUS_BADGES = {
    DomainStatus.PENDING: "secondary",
    DomainStatus.VERIFIED: "success",
    DomainStatus.WARNING: "warning",
    DomainStatus.FAILING: "danger",
    DomainStatus.UNVERIFIED_CLAIM: "dark",
}


class DNSCheckStatus(models.TextChoices):
    """What one published record looked like at the last check."""

    OK = "ok", "OK"
    MISSING = "missing", "Missing"  # the name or record does not exist (NXDOMAIN/NODATA/no matching record)
    MISMATCH = "mismatch", "Mismatch"  # a record exists but says something else than planned
    INVALID = "invalid", "Invalid"  # a record exists but is broken (syntax, limits, duplicates)
    ERROR = "error", "DNS error"  # SERVFAIL or timeout: unknown, never reported as missing


DNS_CHECK_BADGES = {
    DNSCheckStatus.OK: "success",
    DNSCheckStatus.MISSING: "danger",
    DNSCheckStatus.MISMATCH: "danger",
    DNSCheckStatus.INVALID: "danger",
    DNSCheckStatus.ERROR: "warning",
    None: "secondary",  # never checked
}
WARNING_BADGE = "warning"  # an `ok` record with warnings (p=none, PTR not matching EHLO)


class RecordKind(models.TextChoices):
    """The kinds of records in a domain's plan, in the order the panel shows them."""

    OWNERSHIP = "ownership", "Ownership token"
    SPF = "spf", "SPF"
    DKIM = "dkim", "DKIM"
    DMARC = "dmarc", "DMARC"
    RETURN_PATH_MX = "return_path_mx", "Return path MX"
    RETURN_PATH_SPF = "return_path_spf", "Return path SPF"
    ALIGNMENT = "alignment", "DMARC alignment"
    PTR = "ptr", "PTR (forward-confirmed)"
    MTA_STS = "mta_sts", "MTA-STS"
    TLS_RPT = "tls_rpt", "TLS-RPT"


# Kinds summarised as one health badge each on the domain list.
HEALTH_KINDS = [
    ("spf", (RecordKind.SPF,)),
    ("dkim", (RecordKind.DKIM,)),
    ("dmarc", (RecordKind.DMARC, RecordKind.ALIGNMENT)),
    ("return path", (RecordKind.RETURN_PATH_MX, RecordKind.RETURN_PATH_SPF)),
    ("ptr", (RecordKind.PTR,)),
]


class DmarcPolicy(models.TextChoices):
    NONE = "none", "none (monitor only)"
    QUARANTINE = "quarantine", "quarantine"
    REJECT = "reject", "reject"


class DmarcAlignment(models.TextChoices):
    RELAXED = "r", "relaxed"
    STRICT = "s", "strict"


class SpfAll(models.TextChoices):
    """How the SPF record ends: what receivers do with mail from IPs it does not list."""

    SOFTFAIL = "~all", "~all (soft fail)"
    FAIL = "-all", "-all (fail)"


class TLSPolicy(models.TextChoices):
    """TLS for mail sent from the domain."""

    OPPORTUNISTIC = "opportunistic", "Opportunistic (STARTTLS when offered)"
    REQUIRED = "required", "Required (never send in clear text)"


class MtaStsMode(models.TextChoices):
    OFF = "", "Off"
    TESTING = "testing", "testing"
    ENFORCE = "enforce", "enforce"


class DkimAlgorithm(models.TextChoices):
    """The DKIM signing algorithm (the `a=` tag)."""

    RSA_SHA256 = "rsa-sha256", "RSA-SHA256"
    ED25519_SHA256 = "ed25519-sha256", "Ed25519-SHA256 (RFC 8463)"


class DkimKeyState(models.TextChoices):
    """pending → active → retiring → retired."""

    PENDING = "pending", "Pending (publish its record)"
    ACTIVE = "active", "Active (signs)"
    RETIRING = "retiring", "Retiring (still published)"
    RETIRED = "retired", "Retired"


DKIM_STATE_BADGES = {
    DkimKeyState.PENDING: "info",
    DkimKeyState.ACTIVE: "success",
    DkimKeyState.RETIRING: "warning",
    DkimKeyState.RETIRED: "secondary",
}
# States whose public key is in the record plan.
PUBLISHED_KEY_STATES = (DkimKeyState.PENDING, DkimKeyState.ACTIVE, DkimKeyState.RETIRING)
