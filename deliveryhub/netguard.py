"""
Where a tenant may make us connect: the one address policy for every outbound connection a tenant configures
(routes to smarthosts, webhooks).

A tenant's target must be a public address. Loopback, private (RFC 1918, ULA), link-local (the cloud metadata
services at 169.254.169.254 and fd00:ec2::254 included), shared (100.64/10), documentation, multicast, reserved
and unspecified addresses are refused, and so are IPv6 forms that carry such an IPv4 address (::ffff:a.b.c.d,
6to4, Teredo, NAT64). An operator may allow private targets with OUTBOUND_ALLOW_PRIVATE_TARGETS (tests and the
demo do, explicitly); even then, the platform's own listeners (SMTP submission and inbound, the web server,
the database, Redis) on this host are never a target.

Two checks, the same policy:
- `check_public_host(host, port)` when a target is saved: resolves the name (A and AAAA, through
  `deliveryhub.dns`) and refuses it if any address is not allowed, or if it has none.
- `check_address(ip, port)` at connect time, on the address actually about to be connected to (a name can
  resolve differently later): resolve once, check, then connect to that address, not to the name.
Both raise `TargetNotAllowed`, whose message says why, in words a tenant admin can act on.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from . import dns

__all__ = ["TargetNotAllowed", "check_address", "check_public_host", "is_public_address", "private_targets_allowed"]

NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
LOCALHOST_NAMES = ("localhost", ".localhost")  # RFC 6761: always loopback, whatever the DNS says
DEFAULT_PORTS = {"http": 80, "https": 443, "postgres": 5432, "postgresql": 5432, "redis": 6379, "rediss": 6379}


class TargetNotAllowed(Exception):
    """A host or address a tenant may not make us connect to (or a name that does not resolve)."""


def _as_address(ip):
    return ip if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address) else ipaddress.ip_address(ip)


def _embedded_ipv4(ip):
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64), or None."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip):
    """Whether `ip` (a string or an ipaddress object) is a globally routable unicast address."""
    ip = _as_address(ip)
    embedded = _embedded_ipv4(ip)
    if embedded is not None:  # the packets go to the IPv4 address it carries
        return is_public_address(embedded)
    site_local = ip.version == 6 and ip.is_site_local
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or site_local)


def private_targets_allowed():
    """The operator's choice (OUTBOUND_ALLOW_PRIVATE_TARGETS): may tenants' targets be non-public addresses?"""
    return settings.OUTBOUND_ALLOW_PRIVATE_TARGETS


def platform_ports():
    """Ports the platform itself listens on (or talks to) on this host: never a tenant's target."""
    ports = {settings.SMTPD_PORT, settings.SMTPD_INBOUND_PORT, settings.WEB_PORT}
    for url in (settings.SITE_URL, settings.REDIS_URL, settings.DATABASE_URL):
        parts = urlsplit(url)
        if parts.hostname:
            try:
                ports.add(parts.port or DEFAULT_PORTS.get(parts.scheme))
            except ValueError:  # a malformed port in a URL is not ours to judge here
                continue
    return {port for port in ports if port}


def _is_this_host(ip):
    """Loopback, unspecified, or an address of one of this host's interfaces (it can be bound)."""
    if ip.is_loopback or ip.is_unspecified or (_embedded_ipv4(ip) or ip).is_loopback:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(ip), 0))
        except OSError:
            return False
    return True


def _why_not_public(ip):
    if ip.is_loopback or (_embedded_ipv4(ip) or ip).is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_link_local or (_embedded_ipv4(ip) or ip).is_link_local:
        return "a link-local address (cloud metadata services live there)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private or (_embedded_ipv4(ip) or ip).is_private:
        return "a private address"
    return "not a public address"


def _refusal(ip, port, allow_private):
    """Why `ip`:`port` may not be a tenant's target (the end of a sentence about the address), or None."""
    allow_private = private_targets_allowed() if allow_private is None else allow_private
    if is_public_address(ip):
        return None
    if not allow_private:
        return (
            f"{_why_not_public(ip)}: only public addresses may be targets "
            "(an operator can allow private ones with DELIVERYHUB_OUTBOUND_ALLOW_PRIVATE_TARGETS)"
        )
    if port in platform_ports() and _is_this_host(ip):
        return f"this host, and port {port} is one of the platform's own services"
    return None


def check_address(ip, port, *, allow_private=None):
    """Refuse (TargetNotAllowed) a connection to `ip`:`port` on a tenant's say-so unless the policy allows it.

    `allow_private` defaults to OUTBOUND_ALLOW_PRIVATE_TARGETS. With private targets allowed, only the
    platform's own ports on this host are refused.
    """
    ip = _as_address(ip)
    reason = _refusal(ip, port, allow_private)
    if reason:
        raise TargetNotAllowed(f"{ip} is {reason}.")


def _literal(host):
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def resolve(host):
    """The A and AAAA addresses of `host` (an IP literal is itself); TargetNotAllowed if there are none."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    name = host.rstrip(".").lower()
    if name == LOCALHOST_NAMES[0] or name.endswith(LOCALHOST_NAMES[1]):
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    addresses, failures = [], []
    for rdtype in ("A", "AAAA"):
        result = dns.query(name, rdtype)
        if result.ok:
            addresses += [ipaddress.ip_address(record) for record in result.records]
        elif result.status == dns.ERROR:
            failures.append(f"{rdtype}: {result.error}")
    if not addresses:
        detail = f" (lookup failed: {'; '.join(failures)}; try again later)" if failures else ""
        raise TargetNotAllowed(f"{name} has no address (A or AAAA record){detail}.")
    return addresses


def check_public_host(host, port, *, allow_private=None):
    """Resolve `host` and check every address with `check_address`; return the addresses (TargetNotAllowed if one
    is refused or there are none). For saving a target; connections check the address they use again."""
    addresses = resolve(host)
    for ip in addresses:
        reason = _refusal(ip, port, allow_private)
        if reason:
            if _literal(host) is not None:
                raise TargetNotAllowed(f"{ip} is {reason}.")
            raise TargetNotAllowed(f"{host.rstrip('.')} resolves to {ip}, {reason}.")
    return addresses
