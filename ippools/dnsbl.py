"""
DNS blocklist queries and how to read their answers (pure functions over a dnspython resolver).

An IP is looked up as its reversed octets (IPv4) or reversed nibbles (IPv6) under the zone; a domain as
itself under the zone. An A answer inside 127.0/16 is a listing (its meaning from the zone's code table);
127.255.255.x, the zone's known error codes and anything outside 127.0/16 are `error`, never `listed`;
NXDOMAIN (or no A record) is `clear`; a timeout or SERVFAIL is `unknown` after the configured retries.
"""

import ipaddress
from dataclasses import dataclass, field

import dns.exception
import dns.rdatatype
import dns.resolver
from django.conf import settings

from .choices import BlocklistKind, ListingStatus
from .constants import ERROR_CODE_PREFIXES, ERROR_CODES, LISTING_NETWORKS, SPAMHAUS_DQS_ZONES, ZONE_CODES


@dataclass(frozen=True)
class Zone:
    """A blocklist to ask: its name, what it lists and the meaning of its answers."""

    name: str
    kind: str = BlocklistKind.IP
    codes: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def query_zone(self):
        """The zone actually queried: Spamhaus zones go through DQS when SPAMHAUS_DQS_KEY is set."""
        key = settings.SPAMHAUS_DQS_KEY
        if key and self.name in SPAMHAUS_DQS_ZONES:
            return f"{key}.{SPAMHAUS_DQS_ZONES[self.name]}"
        return self.name

    def meaning(self, code):
        return {**ZONE_CODES.get(self.name, {}), **self.codes}.get(code)


@dataclass(frozen=True)
class LookupResult:
    """One zone's interpreted answer: status, the raw codes, their meaning and how long it may be kept."""

    status: str
    codes: tuple = ()
    meaning: str = ""
    ttl: int | None = None


def configured_zones(kind=BlocklistKind.IP):
    """The zones to check: the settings' defaults plus the enabled admin-added `BlocklistZone`s."""
    from .models import BlocklistZone

    names = settings.BLOCKLIST_ZONES if kind == BlocklistKind.IP else settings.BLOCKLIST_DOMAIN_ZONES
    zones = {name.lower().rstrip("."): Zone(name.lower().rstrip("."), kind) for name in names}
    for row in BlocklistZone.objects.filter(enabled=True, kind=kind):
        zones[row.zone.lower().rstrip(".")] = Zone(row.zone.lower().rstrip("."), kind, dict(row.codes or {}))
    return list(zones.values())


def ip_query_name(address, zone):
    """'2.0.0.127.zen.spamhaus.org' for 127.0.0.2; reversed nibbles for IPv6."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        labels = reversed(ip.exploded.split("."))
    else:
        labels = reversed(ip.exploded.replace(":", ""))
    return f"{'.'.join(labels)}.{zone}"


def domain_query_name(domain, zone):
    return f"{domain.strip().rstrip('.').lower()}.{zone}"


def interpret(zone, codes):
    """(status, meaning) of the A answers `codes` from `zone`."""
    errors, listings = [], []
    for code in codes:
        meaning = zone.meaning(code)
        if code in ERROR_CODES or code.startswith(ERROR_CODE_PREFIXES):
            errors.append(ERROR_CODES.get(code, f"error answer {code}"))
        elif not _in_listing_networks(code):
            errors.append(f"unexpected answer {code}")
        else:
            listings.append(meaning or f"listed (code {code})")
    if listings:
        return ListingStatus.LISTED, "; ".join(listings)
    return ListingStatus.ERROR, "; ".join(errors)


def _in_listing_networks(code):
    try:
        address = ipaddress.ip_address(code)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net) for net in LISTING_NETWORKS)


def lookup(resolver, zone, query_name, attempts=None):
    """Ask `zone` about `query_name` (absolute) and interpret the answer; timeouts and SERVFAIL are retried."""
    attempts = attempts or settings.BLOCKLIST_QUERY_ATTEMPTS
    problem = ""
    for _ in range(max(1, attempts)):
        try:
            answer = resolver.resolve(query_name.rstrip(".") + ".", dns.rdatatype.A, search=False)
        except dns.resolver.NXDOMAIN as exc:
            return LookupResult(ListingStatus.CLEAR, ttl=_negative_ttl(exc))
        except dns.resolver.NoAnswer as exc:
            return LookupResult(ListingStatus.CLEAR, ttl=_negative_ttl(exc))
        except dns.resolver.LifetimeTimeout:
            problem = "timed out"
            continue
        except dns.resolver.NoNameservers:
            problem = "SERVFAIL (or refused) from every resolver"
            continue
        except dns.exception.DNSException as exc:
            problem = f"DNS error: {exc.__class__.__name__}"
            continue
        codes = tuple(sorted(rdata.address for rdata in answer))
        status, meaning = interpret(zone, codes)
        return LookupResult(status, codes, meaning, answer.rrset.ttl)
    return LookupResult(ListingStatus.UNKNOWN, meaning=problem)


def _negative_ttl(exc):
    """The negative-caching TTL of an NXDOMAIN/NODATA answer: min(SOA TTL, SOA minimum), if the SOA came along."""
    try:
        responses = exc.responses().values() if hasattr(exc, "responses") else [exc.response()]
    except Exception:
        return None
    for response in responses:
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                return min(rrset.ttl, rrset[0].minimum)
    return None
