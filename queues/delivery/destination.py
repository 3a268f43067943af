"""
Where mail goes: one decision, used by the scheduler (to judge the provider a batch counts against), the processor
(to connect, before anything is signed) and the panel (the Routes and Test inbox pages say what it decides).

`mail_path(tenant_id, domain, routes)` is the decision in words, without DNS: the tenant's most specific enabled
route, else (demo mode) the capture server, else the domain's MX hosts. Demo capture catches whatever no route
matches: adding a route for one domain does not send every other domain's mail out.

`destination_for(tenant_id, domain, routes)` is the same decision made concrete: a `Target` with the `MailPath`, the
`mx.Destination` to connect to (relay, capture server or MX hosts, or an error result that settles the mail without
connecting: null MX, NXDOMAIN, SERVFAIL) and the mailbox provider the mail counts against — from the domain and its
MX hosts, so a Google Workspace domain counts as Google; by the name alone for a route, the capture server or a
domain whose MX lookup failed. Callers load the tenant's routes once (`tenant_routes`) per scheduler run or batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from ippools.providers import provider_for

from ..models import Route
from .mx import Destination, resolve_destination

ROUTE, CAPTURE, MX = "route", "capture", "mx"

_failed_lookups = {}  # domain -> (monotonic expiry, Target) after a failed MX lookup


@dataclass(frozen=True)
class MailPath:
    """Where mail to one recipient domain goes: `kind` is "route" (a relay), "capture" (the demo capture server) or
    "mx" (the domain's MX hosts, i.e. the real recipient), `route` the matching route, `text` the same in words."""

    kind: str
    route: Route | None = None
    text: str = ""

    @property
    def reaches_real_recipient(self):
        """Whether mail on this path leaves the machine for a real mailbox (not the capture server)."""
        return self.kind != CAPTURE


@dataclass(frozen=True)
class Target:
    """The destination of one (tenant, recipient domain): the path, what to connect to, the provider."""

    path: MailPath
    destination: Destination
    provider: str

    @property
    def route(self):
        return self.path.route

    @property
    def error(self):
        """The result that settles every message without connecting (null MX, NXDOMAIN, SERVFAIL), or None."""
        return self.destination.error


def tenant_routes(tenant_id):
    """The tenant's enabled routes: load them once per scheduler run or batch and pass them on."""
    return list(Route.objects.filter(tenant_id=tenant_id, enabled=True))


def route_for(tenant_id, domain, routes):
    """The tenant's enabled route for a recipient domain (most specific match), or None."""
    matching = [r for r in routes if r.tenant_id == tenant_id and r.enabled and r.matches(domain)]
    if not matching:
        return None
    return min(matching, key=lambda r: (r.specificity(), r.priority, r.pk))


def mail_path(tenant_id, domain, routes=None):
    """Where the tenant's mail to `domain` goes, in words (no DNS): route, demo capture server, or MX hosts."""
    route = route_for(tenant_id, domain, tenant_routes(tenant_id) if routes is None else routes)
    if route is not None:
        return MailPath(ROUTE, route, f"to the relay {route.host}:{route.port} (route {route.pattern})")
    if settings.DEMO_MODE:
        capture = f"{settings.CAPTURE_SMTP_HOST}:{settings.CAPTURE_SMTP_PORT}"
        return MailPath(CAPTURE, None, f"to the demo capture server ({capture}): it appears in the Test inbox")
    return MailPath(MX, None, f"to the MX hosts of {domain}: the real recipient")


def destination_for(tenant_id, domain, routes):
    """The `Target` of the tenant's mail to `domain` (see the module docstring). MX answers come from the engine's
    TTL cache (queues/delivery/mx.py); a failed lookup is remembered here for MX_NEGATIVE_CACHE_SECONDS, so a
    domain whose DNS is broken costs one lookup per window, not one per scheduler run."""
    path = mail_path(tenant_id, domain, routes)
    if path.kind == ROUTE:
        route = path.route
        relay = Destination.for_relay(route.host, route.port, username=route.username or None,
                                      password=route.password or None, tls_required=route.tls_required)  # fmt: skip
        return Target(path, relay, provider_for(domain))
    if path.kind == CAPTURE:
        return Target(path, Destination.for_relay(settings.CAPTURE_SMTP_HOST, settings.CAPTURE_SMTP_PORT),
                      provider_for(domain))  # fmt: skip
    failed = _failed_lookups.get(domain)
    if failed is not None and failed[0] > time.monotonic():
        return failed[1]
    destination = resolve_destination(domain)
    if destination.error is not None:
        target = Target(path, destination, provider_for(domain))
        if len(_failed_lookups) >= settings.MX_CACHE_MAX_ENTRIES:
            _failed_lookups.clear()
        _failed_lookups[domain] = (time.monotonic() + settings.MX_NEGATIVE_CACHE_SECONDS, target)
        return target
    return Target(path, destination, provider_for(domain, [host for host, _ in destination.hosts]))


def clear_cache():
    """Forget remembered lookup failures (tests; a changed resolver configuration)."""
    _failed_lookups.clear()
