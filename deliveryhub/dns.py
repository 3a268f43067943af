"""
DNS lookups of the whole project through one resolver factory, so tests can point every lookup at a
local DNS server (settings.DNS_RESOLVERS = ["127.0.0.1:5353"]) instead of mocking.

`make_resolver()` builds a dnspython resolver from DNS_RESOLVERS and DNS_TIMEOUT; `query(name, rdtype)`
answers with a `DNSResult` that tells an answer, NXDOMAIN, NODATA and an error apart. A truncated UDP answer
(TC flag: big TXT records such as 4096-bit DKIM keys) is retried over TCP by dnspython's resolver
(tests/domains/test_verification.py checks it against the loopback server).
"""

from dataclasses import dataclass, field

import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
from django.conf import settings

ANSWER = "answer"
NXDOMAIN = "nxdomain"
NODATA = "nodata"
ERROR = "error"  # timeout, SERVFAIL, refused: worth retrying later


def _nameserver(spec):
    """("127.0.0.1", 5353) from "127.0.0.1:5353", "[::1]:53", "::1" or "10.0.0.1"."""
    spec = spec.strip()
    if spec.startswith("["):
        host, _, port = spec[1:].partition("]")
        return host, int(port.lstrip(":") or 53)
    if spec.count(":") == 1:
        host, port = spec.split(":")
        return host, int(port)
    return spec, 53


def make_resolver(timeout=None):
    """A resolver using settings.DNS_RESOLVERS (host[:port] list; empty = the system's) and DNS_TIMEOUT seconds."""
    timeout = settings.DNS_TIMEOUT if timeout is None else timeout
    if settings.DNS_RESOLVERS:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(host, port) for host, port in map(_nameserver, settings.DNS_RESOLVERS)
        ]
    else:
        resolver = dns.resolver.Resolver()
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver


@dataclass
class DNSResult:
    """What a query found: `status` (answer/nxdomain/nodata/error), the records as text, their TTL, the error."""

    status: str
    records: list = field(default_factory=list)
    ttl: int | None = None
    error: str = ""
    answer: object = None  # the dnspython Answer, for callers that need rdata objects

    @property
    def ok(self):
        return self.status == ANSWER


def query(name, rdtype, *, resolver=None):
    """Resolve `name` (made absolute) for `rdtype` ("A", "MX", "TXT", ...) without raising."""
    resolver = resolver or make_resolver()
    qname = name if name.endswith(".") else name + "."
    try:
        answer = resolver.resolve(qname, rdtype, search=False)
    except dns.resolver.NXDOMAIN:
        return DNSResult(NXDOMAIN)
    except dns.resolver.NoAnswer:
        return DNSResult(NODATA)
    except dns.resolver.LifetimeTimeout:
        return DNSResult(ERROR, error="timed out")
    except dns.resolver.NoNameservers:
        return DNSResult(ERROR, error="SERVFAIL or refused by every resolver")
    except dns.exception.DNSException as exc:
        return DNSResult(ERROR, error=f"{exc.__class__.__name__}: {exc}")
    return DNSResult(ANSWER, records=[rdata.to_text() for rdata in answer], ttl=answer.rrset.ttl, answer=answer)
