"""
Verbs of the domains app: adding, changing and deleting domains, DKIM key creation, rotation and export,
DNS verification with its consequences (key activation and retirement, ownership claims, status), and
the keys that sign now.

Each verb writing rows is atomic, takes `acting_user` keyword-only, and audits in the same transaction.
`verify_domain` does its DNS lookups outside any transaction (they can take seconds) and then applies
what it found in one.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from deliveryhub import audit

from . import keys
from .choices import DkimAlgorithm, DkimKeyState, DNSCheckStatus, DomainStatus, RecordKind
from .constants import DKIM_SELECTOR_PREFIX, RSA_DEFAULT_BITS
from .models import DkimKey, DnsCheck, SendingDomain
from .plan import record_plan
from .signals import domain_status_changed
from .verification import Checker

logger = logging.getLogger(__name__)

DOMAIN_FIELDS = (
    "return_path_subdomain", "dmarc_policy", "dmarc_rua", "dmarc_ruf", "dmarc_alignment", "bulk_sender", "spf_all",
    "spf_extra_terms", "tls_policy", "mta_sts_mode", "tls_rpt_rua", "allow_unverified_sending", "feedback_address",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Domains
# ---------------------------------------------------------------------------------------------------------------------


@transaction.atomic
def create_domain(tenant, name, *, acting_user=None, dkim_bits=RSA_DEFAULT_BITS, ed25519=False, **fields):
    """Add a sending domain with a first (pending) RSA DKIM key, and optionally an Ed25519 one.

    A name already held by another tenant is added as an `unverified_claim`: it cannot send until this
    tenant's verification TXT record verifies (see `verify_domain`).
    """
    with audit.acting_as(acting_user):
        unknown = set(fields) - set(DOMAIN_FIELDS)
        if unknown:
            raise ValidationError({"non_field_errors": f"Unknown fields: {', '.join(sorted(unknown))}."})
        domain = SendingDomain(tenant=tenant, name=name, **fields)
        domain.full_clean()
        contested = SendingDomain.objects.filter(name=domain.name).exclude(tenant=tenant).exists()
        if contested:
            domain.status = DomainStatus.UNVERIFIED_CLAIM
        domain.save()
        if contested:
            audit.record(
                "domain.claim_requested", obj=domain,
                message=f"{domain.name} is a sending domain of another tenant: this tenant must publish "
                f"{domain.verification_txt!r} at {domain.name} to take it over.",
            )  # fmt: skip
        create_dkim_key(domain, algorithm=DkimAlgorithm.RSA_SHA256, bits=dkim_bits, acting_user=acting_user)
        if ed25519:
            create_dkim_key(domain, algorithm=DkimAlgorithm.ED25519_SHA256, acting_user=acting_user)
        return domain


@transaction.atomic
def update_domain(domain, *, acting_user=None, **changes):
    """Change a domain's settings (not its name: add a new domain instead)."""
    with audit.acting_as(acting_user):
        unknown = set(changes) - set(DOMAIN_FIELDS)
        if unknown:
            raise ValidationError(
                {"non_field_errors": f"These fields cannot be changed: {', '.join(sorted(unknown))}."}
            )
        for field, value in changes.items():
            setattr(domain, field, value)
        domain.full_clean()
        domain.save()
        return domain


@transaction.atomic
def delete_domain(domain, *, acting_user=None):
    """Delete a domain, its keys and checks. Refused while messages still refer to it."""
    with audit.acting_as(acting_user):
        try:
            with transaction.atomic():
                domain.delete()
        except ProtectedError:
            raise ValidationError(
                {
                    "name": f"{domain.name} has messages in the queue or history; it cannot be deleted. "
                    "Disable sending by removing its DNS records instead."
                }
            ) from None


# ---------------------------------------------------------------------------------------------------------------------
# DKIM keys
# ---------------------------------------------------------------------------------------------------------------------


def _new_selector(domain, algorithm, now):
    base = f"{DKIM_SELECTOR_PREFIX}{now:%Y%m%d}{'e' if algorithm == DkimAlgorithm.ED25519_SHA256 else 'r'}"
    taken = set(DkimKey.objects.filter(domain=domain, selector__startswith=base).values_list("selector", flat=True))
    selector, n = base, 1
    while selector in taken:
        n += 1
        selector = f"{base}{n}"
    return selector


@transaction.atomic
def create_dkim_key(domain, *, algorithm=DkimAlgorithm.RSA_SHA256, bits=None, selector=None, acting_user=None):
    """Generate a key pair and store it as a `pending` key (its record joins the plan; it signs once verified)."""
    with audit.acting_as(acting_user):
        if algorithm not in DkimAlgorithm.values:
            raise ValidationError({"algorithm": f"Unknown algorithm {algorithm!r}: use rsa-sha256 or ed25519-sha256."})
        if algorithm == DkimAlgorithm.RSA_SHA256:
            bits = int(bits or RSA_DEFAULT_BITS)
        else:
            bits = None
        key = DkimKey(
            tenant_id=domain.tenant_id, domain=domain, algorithm=algorithm, key_bits=bits,
            selector=selector or _new_selector(domain, algorithm, timezone.now()),
        )  # fmt: skip
        key.full_clean(exclude=["public_key", "private_key", "tenant", "domain"])  # size and selector checked first
        key.private_key, key.public_key = keys.generate(algorithm, bits)
        key.full_clean()
        key.save()
        return key


@transaction.atomic
def rotate_dkim_key(domain, *, algorithm=DkimAlgorithm.RSA_SHA256, bits=None, acting_user=None):
    """Start a key rotation: a new `pending` key of `algorithm` that takes over signing once its record
    verifies; the current key then keeps being published for DKIM_ROTATION_GRACE_SECONDS. An earlier
    pending key of the same algorithm (never verified) is retired at once."""
    with audit.acting_as(acting_user):
        domain = SendingDomain.objects.select_for_update().get(pk=domain.pk)
        for stale in DkimKey.objects.filter(domain=domain, algorithm=algorithm, state=DkimKeyState.PENDING):
            _set_key_state(
                stale, DkimKeyState.RETIRED, "dkim.retire", "Replaced by a newer pending key before it verified.",
                retired_at=timezone.now(),
            )  # fmt: skip
        key = create_dkim_key(domain, algorithm=algorithm, bits=bits, acting_user=acting_user)
        current = DkimKey.objects.filter(domain=domain, algorithm=algorithm, state=DkimKeyState.ACTIVE).first()
        audit.record(
            "dkim.rotate", obj=domain,
            postchange={"selector": key.selector, "algorithm": key.algorithm, "bits": key.key_bits},
            message=f"New {key.label} key {key.selector}: publish {key.dns_name}; it signs once that record verifies"
            + (f", and {current.selector} stays published for the grace period." if current else "."),
        )  # fmt: skip
        return key


def _set_key_state(key, state, verb, message, **fields):
    before = key.state
    fields["state"] = state
    DkimKey.objects.filter(pk=key.pk).update(**fields)
    for name, value in fields.items():
        setattr(key, name, value)
    audit.record(verb, obj=key, prechange={"state": before}, postchange={"state": state}, message=message)


@transaction.atomic
def export_private_key(key, *, acting_user=None):
    """The key's PEM private key, for an admin who passed a fresh 2FA check; audited `dkim.export`."""
    with audit.acting_as(acting_user):
        audit.record("dkim.export", obj=key, message=f"Private key of {key.dns_name} exported.")
        return key.private_key_pem()


@transaction.atomic
def retire_expired_keys(now=None):
    """Retire every `retiring` key whose grace period is over (its record may then be removed)."""
    now = now or timezone.now()
    retired = 0
    for key in DkimKey.objects.select_related("domain").filter(state=DkimKeyState.RETIRING, retire_after__lte=now):
        _set_key_state(
            key,
            DkimKeyState.RETIRED,
            "dkim.retire",
            f"Grace period over: {key.dns_name} no longer needs to be published.",
            retired_at=now,
        )
        retired += 1
    return retired


def signing_keys(domain):
    """The keys that sign the domain's mail now: the active RSA key, and an active Ed25519 key as a second
    signature (RFC 8463). None while the domain is an unverified claim."""
    if domain.status == DomainStatus.UNVERIFIED_CLAIM:
        return []
    order = {DkimAlgorithm.RSA_SHA256: 0, DkimAlgorithm.ED25519_SHA256: 1}
    return sorted(DkimKey.objects.filter(domain=domain, state=DkimKeyState.ACTIVE), key=lambda k: order[k.algorithm])


# ---------------------------------------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------------------------------------


def verify_domain(domain, *, acting_user=None, query=None, now=None):
    """Check every record of the domain's plan in the DNS and apply the outcome; return the `DnsCheck` rows.

    Lookups happen first, outside any transaction; `_apply_results` then stores the checks, activates
    pending keys whose record verified (retiring the key they replace), settles ownership claims,
    recomputes the status and audits a status change as `domain.dns_status_changed`.
    """
    with audit.acting_as(acting_user):
        plan = record_plan(domain)
        checker = Checker(domain, query=query)
        results = [checker.check(record) for record in plan]
        return _apply_results(domain.pk, results, now or timezone.now())


@transaction.atomic
def _apply_results(domain_pk, results, now):
    domain = SendingDomain.objects.select_for_update().get(pk=domain_pk)
    previous = {(c.kind, c.subject): c for c in DnsCheck.objects.filter(domain=domain)}
    checks = []
    for result in results:
        record = result.record
        old = previous.pop((record.kind, record.subject), None)
        check = old or DnsCheck(tenant_id=domain.tenant_id, domain=domain, kind=record.kind, subject=record.subject)
        old_status = old.status if old else None
        known = old.known_status if old else ""
        if old_status != result.status:
            check.status_since = now
        check.name, check.rdtype, check.expected = record.name, record.rdtype, record.value
        check.observed, check.status, check.explanation = result.observed, result.status, result.explanation
        check.warnings, check.required, check.checked_at = result.warnings, record.required, now
        # A DNS failure tells nothing: for the domain's status, the record keeps its last known state.
        if result.status != DNSCheckStatus.ERROR:
            known = result.status
        check.known_status = known
        check.effective_status = known or result.status
        check.save()
        checks.append(check)
    DnsCheck.objects.filter(pk__in=[c.pk for c in previous.values()]).delete()

    _settle_ownership(domain, checks, now)
    _apply_key_transitions(domain, checks, now)
    _update_status(domain, checks, now)
    return checks


def _settle_ownership(domain, checks, now):
    ownership = next((c for c in checks if c.kind == RecordKind.OWNERSHIP), None)
    token_ok = ownership is not None and ownership.status == DNSCheckStatus.OK
    if domain.status == DomainStatus.UNVERIFIED_CLAIM:
        if not token_ok:
            return
        for other in SendingDomain.objects.select_for_update().filter(name=domain.name).exclude(pk=domain.pk):
            before = other.status
            SendingDomain.objects.filter(pk=other.pk).update(
                status=DomainStatus.UNVERIFIED_CLAIM, ownership_verified=None, dkim_verified=False, status_changed=now
            )
            audit.record(
                "domain.claim_released", obj=other, prechange={"status": before},
                postchange={"status": DomainStatus.UNVERIFIED_CLAIM},
                message=f"Another tenant proved ownership of {other.name} with its verification TXT record; this "
                "tenant's claim is released and the domain cannot send until it proves ownership again.",
            )  # fmt: skip
            _announce(other, before, DomainStatus.UNVERIFIED_CLAIM)
        domain.status = DomainStatus.PENDING  # recomputed by _update_status
        domain.ownership_verified = now
        audit.record(
            "domain.ownership_verified",
            obj=domain,
            message=f"{domain.verification_txt!r} found at {domain.name}: the domain now belongs to this tenant.",
        )
        domain._claim_settled = True
    elif token_ok and domain.ownership_verified is None:
        domain.ownership_verified = now


def _apply_key_transitions(domain, checks, now):
    if domain.status == DomainStatus.UNVERIFIED_CLAIM:
        domain.dkim_verified = False
        return
    by_selector = {c.subject: c for c in checks if c.kind == RecordKind.DKIM}
    grace = timedelta(seconds=settings.DKIM_ROTATION_GRACE_SECONDS)
    keys_now = list(DkimKey.objects.filter(domain=domain, state__in=(DkimKeyState.PENDING, DkimKeyState.ACTIVE)))
    for key in keys_now:
        check = by_selector.get(key.selector)
        if check is None or check.status != DNSCheckStatus.OK:
            continue
        if key.state == DkimKeyState.PENDING:
            replaced = [k for k in keys_now if k.state == DkimKeyState.ACTIVE and k.algorithm == key.algorithm]
            for old in replaced:
                _set_key_state(
                    old,
                    DkimKeyState.RETIRING,
                    "dkim.retiring",
                    f"Replaced by {key.selector}; keep {old.dns_name} published until "
                    f"{now + grace:%Y-%m-%d %H:%M} UTC.",
                    retiring_since=now,
                    retire_after=now + grace,
                )
            _set_key_state(
                key,
                DkimKeyState.ACTIVE,
                "dkim.activate",
                f"{key.dns_name} verified in DNS: {key.selector} signs from now on.",
                activated_at=now,
                verified_at=now,
            )
        else:
            DkimKey.objects.filter(pk=key.pk).update(verified_at=now)
    active = [k for k in DkimKey.objects.filter(domain=domain, state=DkimKeyState.ACTIVE)]
    statuses = [by_selector[k.selector].effective_status for k in active if k.selector in by_selector]
    # Ed25519 is a second signature (RFC 8463): many receivers do not check it, so an RSA key must sign too.
    has_rsa = any(k.algorithm == DkimAlgorithm.RSA_SHA256 for k in active)
    domain.dkim_verified = has_rsa and bool(statuses) and all(s == DNSCheckStatus.OK for s in statuses)
    if domain.dkim_verified and domain.ownership_verified is None:
        domain.ownership_verified = now  # publishing our key proves control of the zone


def _update_status(domain, checks, now):
    before = SendingDomain.objects.filter(pk=domain.pk).values_list("status", flat=True).get()
    if domain.status == DomainStatus.UNVERIFIED_CLAIM:
        after = DomainStatus.UNVERIFIED_CLAIM
    elif not domain.dkim_verified:
        after = DomainStatus.FAILING if domain.ever_verified else DomainStatus.PENDING
    elif all(c.effective_status == DNSCheckStatus.OK for c in checks if c.required):
        after = DomainStatus.VERIFIED
    else:
        after = DomainStatus.WARNING
    fields = {
        "status": after, "dkim_verified": domain.dkim_verified, "ownership_verified": domain.ownership_verified,
        "last_checked": now, "ever_verified": domain.ever_verified or domain.dkim_verified,
    }  # fmt: skip
    if after != before:
        fields["status_changed"] = now
    SendingDomain.objects.filter(pk=domain.pk).update(**fields)
    for name, value in fields.items():
        setattr(domain, name, value)
    if after != before:
        failing = [f"{c.get_kind_display()} {c.subject}".strip() + f": {c.status}" for c in checks
                   if c.required and c.effective_status != DNSCheckStatus.OK]  # fmt: skip
        audit.record(
            "domain.dns_status_changed", obj=domain, prechange={"status": before}, postchange={"status": after},
            message=f"{domain.name}: {before} → {after}" + (f" ({'; '.join(failing)})" if failing else ""),
        )  # fmt: skip
        _announce(domain, before, after)


def _announce(domain, before, after):
    transaction.on_commit(
        lambda: domain_status_changed.send(sender=SendingDomain, domain=domain, before=before, after=after)
    )


@transaction.atomic
def activate_key_without_dns(key, *, acting_user=None, reason):
    """Make a pending key sign without a DNS check: only for the demo domain, whose zone exists nowhere.

    Audited as `dkim.activate_unverified` with the reason; real domains always activate through `verify_domain`.
    """
    with audit.acting_as(acting_user):
        if key.state != DkimKeyState.PENDING:
            return key
        _set_key_state(key, DkimKeyState.ACTIVE, "dkim.activate_unverified", reason, activated_at=timezone.now())
        return key
