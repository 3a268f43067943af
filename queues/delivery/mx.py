"""Where mail for a domain goes: MX lookup (RFC 5321 5.1) through `deliveryhub.dns`, cached for the records' TTL.

- MX hosts in preference order, equal preferences shuffled on every call; each host's addresses resolved here too
  (through DNS_RESOLVERS, so tests and split-horizon setups work), A before AAAA.
- Null MX (RFC 7505, a lone `0 .`): bounce with 5.1.10 without connecting.
- NXDOMAIN: bounce (5.1.2). No MX: the domain's own A/AAAA (implicit MX). Neither: bounce (5.1.2).
- SERVFAIL or timeout: defer (4.4.3), not cached.
- MX hosts without any address: bounce (5.4.4), or defer (4.4.3) if one of their lookups failed.
"""

from __future__ import annotations

import ipaddress
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from django.conf import settings

from deliveryhub import dns as dnsq

from .result import SendResult

_cache: OrderedDict[tuple, tuple[float, object]] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass
class Destination:
    """Where to deliver one domain's mail: `hosts` [(host, port)] to try in order, or an `error` result that settles
    every message for the domain without connecting. `addresses` maps a host to its IP addresses (a host missing
    from it is an IP literal or resolved when connecting). Relays (routes) carry optional AUTH credentials and may
    require TLS."""

    domain: str
    hosts: list[tuple[str, int]]
    error: SendResult | None = None
    addresses: dict[str, list[str]] = field(default_factory=dict)
    username: str | None = None
    password: str | None = None
    tls_required: bool = False
    relay: bool = False

    @classmethod
    def for_relay(cls, host: str, port: int, *, username=None, password=None, tls_required=False) -> Destination:
        """A fixed smarthost (a route) instead of the MX hosts."""
        host = host.strip().strip("[]")
        return cls(
            domain=host,
            hosts=[(host, int(port))],
            username=username or None,
            password=password or None,
            tls_required=tls_required,
            relay=True,
        )


def clear_cache() -> None:
    """Forget every cached destination and host address (tests; a changed resolver configuration)."""
    with _cache_lock:
        _cache.clear()


def _cache_get(key):
    with _cache_lock:
        entry = _cache.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del _cache[key]
            return None
        _cache.move_to_end(key)
        return entry[1]


def _cache_put(key, value, ttl) -> None:
    if ttl <= 0:
        return
    with _cache_lock:
        _cache[key] = (time.monotonic() + ttl, value)
        _cache.move_to_end(key)
        while len(_cache) > settings.MX_CACHE_MAX_ENTRIES:
            _cache.popitem(last=False)


def _ascii(domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    return domain if domain.isascii() else domain.encode("idna").decode("ascii")


@dataclass(frozen=True)
class _Resolved:
    """A cached lookup: preference groups of (host, addresses), or an error (code-less SendResult fields)."""

    groups: tuple[tuple[tuple[str, tuple[str, ...]], ...], ...] = ()
    error: tuple[str, str] | None = None  # (enhanced, text)


def resolve_destination(domain: str) -> Destination:
    """The MX hosts (or an error result) for a recipient domain; port settings.SMTP_PORT."""
    port = settings.SMTP_PORT
    try:
        name = _ascii(domain)
    except UnicodeError:
        return _error_destination(domain, "5.1.2", f"Invalid domain name {domain!r}")
    key = ("mx", name, tuple(settings.DNS_RESOLVERS))
    resolved = _cache_get(key)
    if resolved is None:
        resolved, ttl = _lookup(name)
        _cache_put(key, resolved, ttl)
    if resolved.error is not None:
        return _error_destination(domain, *resolved.error)
    hosts, addresses = [], {}
    for group in resolved.groups:
        group = list(group)
        random.shuffle(group)
        for host, host_addresses in group:
            hosts.append((host, port))
            addresses[host] = list(host_addresses)
    return Destination(domain=domain, hosts=hosts, addresses=addresses)


def _error_destination(domain, enhanced, text) -> Destination:
    return Destination(domain=domain, hosts=[], error=SendResult(None, enhanced, text))


def _lookup(name: str) -> tuple[_Resolved, float]:
    """Resolve a domain: (result, seconds to cache it)."""
    negative_ttl = settings.MX_NEGATIVE_CACHE_SECONDS
    mx = dnsq.query(name, "MX")
    if mx.status == dnsq.NXDOMAIN:
        return _Resolved(error=("5.1.2", f"Host or domain name not found: {name} (NXDOMAIN)")), negative_ttl
    if mx.status == dnsq.ERROR:
        return _Resolved(error=("4.4.3", f"DNS lookup of the MX records of {name} failed: {mx.error}")), 0
    if mx.status == dnsq.NODATA:
        addresses, ttl, failure = _host_addresses(name)
        if addresses:
            return _Resolved(groups=(((name, tuple(addresses)),),)), ttl
        if failure:
            return _Resolved(error=("4.4.3", f"DNS lookup of {name} failed: {failure}")), 0
        return _Resolved(error=("5.1.2", f"{name} has no MX and no address record")), negative_ttl
    records = sorted((rdata.preference, rdata.exchange.to_text(omit_final_dot=True).lower()) for rdata in mx.answer)
    real = [(preference, host) for preference, host in records if host not in ("", ".")]
    if not real:
        return _Resolved(error=("5.1.10", f"Recipient address has null MX: {name} accepts no mail (RFC 7505)")), mx.ttl
    ttl = mx.ttl
    groups: dict[int, list] = {}
    failures = []
    for preference, host in real:
        addresses, host_ttl, failure = _host_addresses(host)
        if failure:
            failures.append(f"{host}: {failure}")
        if addresses:
            groups.setdefault(preference, []).append((host, tuple(addresses)))
            ttl = min(ttl, host_ttl)
    if not groups:
        if failures:
            return _Resolved(error=("4.4.3", f"DNS lookup of the MX hosts of {name} failed: {'; '.join(failures)}")), 0
        hosts = ", ".join(host for _, host in real)
        return _Resolved(error=("5.4.4", f"No address for any MX host of {name} ({hosts})")), negative_ttl
    return _Resolved(groups=tuple(tuple(groups[preference]) for preference in sorted(groups))), ttl


def _host_addresses(host: str) -> tuple[list[str], float, str]:
    """(IPv4 then IPv6 addresses of a host, TTL, error text if a lookup failed temporarily)."""
    try:
        return [str(ipaddress.ip_address(host))], float("inf"), ""
    except ValueError:
        pass
    addresses, ttl, failure = [], float("inf"), ""
    for rdtype in ("A", "AAAA"):
        result = dnsq.query(host, rdtype)
        if result.ok:
            addresses.extend(result.records)
            ttl = min(ttl, result.ttl)
        elif result.status == dnsq.ERROR:
            failure = result.error
    return addresses, ttl, failure


def resolve_host(host: str) -> list[str]:
    """Addresses of a host name (an IP literal is its own address), cached for the TTL; [] when none were found."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    key = ("host", host.lower(), tuple(settings.DNS_RESOLVERS))
    cached = _cache_get(key)
    if cached is not None:
        return list(cached)
    addresses, ttl, failure = _host_addresses(_ascii(host))
    _cache_put(key, tuple(addresses), ttl if addresses else (0 if failure else settings.MX_NEGATIVE_CACHE_SECONDS))
    return addresses
