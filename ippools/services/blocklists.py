"""Blocklists (DNSBL) for IPs and sending domains, and reverse DNS (PTR) checks."""

import ipaddress
import logging
from datetime import timedelta

import dns.reversename
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deliveryhub import audit
from deliveryhub import dns as dh_dns
from domains.models import SendingDomain

from .. import dnsbl, signals
from ..choices import BlocklistKind, IPEventKind, IPState, ListingStatus, PTRStatus
from ..models import BlocklistCheck, IPAddress, IPPoolMember
from .events import ip_event
from .reputation import update_reputation

logger = logging.getLogger(__name__)


def _resolver():
    return dh_dns.make_resolver()


def check_blocklists(ip, *, force=False, now=None, acting_user=None, resolver=None):
    """Check an IP against every configured IP blocklist (answers kept for their TTL unless `force`), then
    pause or resume it in its pools on a new listing or a delisting, and recompute its reputation.
    Returns the current BlocklistCheck per zone."""
    with audit.acting_as(acting_user):
        now = now or timezone.now()
        resolver = resolver or _resolver()
        results = []
        for zone in dnsbl.configured_zones(BlocklistKind.IP):
            latest = BlocklistCheck.objects.filter(ip=ip, zone=zone.name).order_by("-checked_at", "-id").first()
            if not force and latest is not None and latest.expires_at > now:
                results.append(latest)
                continue
            query_name = dnsbl.ip_query_name(ip.address, zone.query_zone)
            results.append(
                _store_check(
                    latest, dnsbl.lookup(resolver, zone, query_name), now, ip=ip, zone=zone.name, query_name=query_name
                )
            )
        apply_listing_state(ip, now=now)
        update_reputation(ip, now=now)
        return results


def check_domain_blocklists(domain, *, force=False, now=None, resolver=None):
    """Check a sending domain against the domain blocklists (Spamhaus DBL by default)."""
    now = now or timezone.now()
    resolver = resolver or _resolver()
    results = []
    for zone in dnsbl.configured_zones(BlocklistKind.DOMAIN):
        latest = BlocklistCheck.objects.filter(ip=None, domain=domain, zone=zone.name).order_by("-checked_at").first()
        if not force and latest is not None and latest.expires_at > now:
            results.append(latest)
            continue
        query_name = dnsbl.domain_query_name(domain, zone.query_zone)
        result = dnsbl.lookup(resolver, zone, query_name)
        check = _store_check(latest, result, now, domain=domain, zone=zone.name, query_name=query_name)
        if check.status == ListingStatus.LISTED and (latest is None or latest.status != ListingStatus.LISTED):
            audit.record(
                "domain.listed",
                object_type="domains.sendingdomain",
                object_repr=domain,
                message=f"{domain} is listed on {zone.name}: {check.meaning}",
            )
        results.append(check)
    return results


def _store_check(latest, result, now, **fields):
    """Extend the latest row when the answer is unchanged, else start a new one (the history)."""
    if result.status == ListingStatus.UNKNOWN:
        keep = settings.BLOCKLIST_RETRY_SECONDS
    else:
        keep = min(max(result.ttl or 0, settings.BLOCKLIST_MIN_CACHE_SECONDS), settings.BLOCKLIST_MAX_CACHE_SECONDS)
    expires = now + timedelta(seconds=keep)
    codes = list(result.codes)
    if latest is not None and latest.status == result.status and latest.codes == codes:
        latest.checked_at, latest.expires_at, latest.meaning = now, expires, result.meaning
        latest.attempts += 1
        latest.save(update_fields=["checked_at", "expires_at", "meaning", "attempts"])
        return latest
    return BlocklistCheck.objects.create(
        status=result.status,
        codes=codes,
        meaning=result.meaning,
        first_seen=now,
        checked_at=now,
        expires_at=expires,
        **fields,
    )


@transaction.atomic
def apply_listing_state(ip, *, now=None):
    """Mirror the IP's listings on it; a new listing pauses it in pools with `pause_on_listing`, the last
    delisting resumes the members that the listing paused. Each is an event and audited."""
    ip = IPAddress.objects.select_for_update().get(pk=ip.pk)
    zones = BlocklistCheck.objects.listing_zones(ip)
    text = ", ".join(zones)[:500]
    before = set(ip.listed_zones.split(", ")) if ip.listed and ip.listed_zones else set()
    new = sorted(set(zones) - before)
    if new:
        IPAddress.objects.filter(pk=ip.pk).update(listed=True, listed_zones=text)
        paused = 0
        reason = f"listed on {text}"[:200]
        for member in IPPoolMember.objects.filter(ip=ip, pool__pause_on_listing=True, paused=False):
            member.paused, member.paused_by_listing, member.pause_reason = True, True, reason
            member.save()
            paused += 1
        message = f"{ip} newly listed on {', '.join(new)}; paused in {paused} pool(s)."
        ip_event(ip, IPEventKind.LISTED, message, {"zones": zones, "new": new, "paused": paused}, now=now)
        transaction.on_commit(lambda: signals.ip_listed.send(IPAddress, ip=ip, zones=zones))
    elif zones and text != ip.listed_zones:
        IPAddress.objects.filter(pk=ip.pk).update(listed=True, listed_zones=text)
    elif not zones and ip.listed:
        IPAddress.objects.filter(pk=ip.pk).update(listed=False, listed_zones="")
        resumed = 0
        for member in IPPoolMember.objects.filter(ip=ip, paused_by_listing=True):
            member.paused, member.paused_by_listing, member.pause_reason = False, False, ""
            member.save()
            resumed += 1
        message = f"{ip} is no longer listed; resumed in {resumed} pool(s)."
        ip_event(ip, IPEventKind.DELISTED, message, {"resumed": resumed}, now=now)
        transaction.on_commit(lambda: signals.ip_delisted.send(IPAddress, ip=ip))
    return zones


def sweep_blocklists(now=None):
    """Check every non-retired IP (and every sending domain) whose answers expired. Returns the IPs checked."""
    checked = 0
    resolver = _resolver()
    for ip in IPAddress.objects.exclude(state=IPState.RETIRED):
        try:
            check_blocklists(ip, now=now, resolver=resolver)
            check_ptr(ip, resolver=resolver)
            checked += 1
        except Exception:  # one failing IP must not stop the sweep
            logger.exception("Blocklist check of IP %s failed", ip.pk)
    for domain in sending_domain_names():
        try:
            check_domain_blocklists(domain, now=now, resolver=resolver)
        except Exception:
            logger.exception("Blocklist check of domain %s failed", domain)
    return checked


def sending_domain_names():
    """Names of every sending domain (checked against the domain blocklists)."""
    return list(SendingDomain.objects.values_list("name", flat=True).distinct())


def check_ptr(ip, *, resolver=None):
    """Reverse DNS of an IP: `ok` when its PTR name resolves back to it (FCrDNS), else `mismatch` or
    `missing`; `unknown` when DNS failed. Stores the status and the PTR name on the IP."""
    resolver = resolver or _resolver()
    result = dh_dns.query(dns.reversename.from_address(ip.address).to_text(), "PTR", resolver=resolver)
    hostname = ""
    if result.status in (dh_dns.NXDOMAIN, dh_dns.NODATA):
        status = PTRStatus.MISSING
    elif result.status != dh_dns.ANSWER:
        status = PTRStatus.UNKNOWN
    else:
        hostname = result.records[0].rstrip(".").lower()
        forward = dh_dns.query(hostname, "A" if ip.version == 4 else "AAAA", resolver=resolver)
        if forward.status == dh_dns.ERROR:
            status = PTRStatus.UNKNOWN
        else:
            addresses = {str(ipaddress.ip_address(r)) for r in forward.records}
            status = PTRStatus.OK if ip.address in addresses else PTRStatus.MISMATCH
    IPAddress.objects.filter(pk=ip.pk).update(ptr_status=status, ptr_hostname=hostname[:253])
    ip.ptr_status, ip.ptr_hostname = status, hostname
    return status
