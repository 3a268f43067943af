"""
Querysets of platform objects (nodes, IPs, pools, warm-up plans, blocklist results).

Platform principals (superusers, operator keys) see and change everything. Tenant members only read,
and only what their tenants may use: their dedicated pools, the shared pools open to all or granted to
them, the IPs in those pools, the nodes owning those IPs and the plans those IPs follow. Every other
action gives nothing (so the API answers 403 for writes and 404 for what a tenant cannot see).
"""

from django.db.models import Q

from deliveryhub.choices import Action, Area
from deliveryhub.querysets import RestrictedQuerySet

from .choices import ListingStatus


def _tenant_ids(tenants):
    """A tenant, a tenant id, or an iterable of either → list of ids."""
    if tenants is None:
        return []
    if hasattr(tenants, "pk") or isinstance(tenants, int):
        tenants = [tenants]
    return [getattr(t, "pk", t) for t in tenants]


def usable_pools_q(tenants, prefix=""):
    """Q for pools usable by any of `tenants`: dedicated to them, open to all, or granted to them."""
    ids = _tenant_ids(tenants)
    return (
        Q(**{f"{prefix}tenant_id__in": ids})
        | Q(**{f"{prefix}tenant__isnull": True, f"{prefix}all_tenants": True})
        | Q(**{f"{prefix}tenant__isnull": True, f"{prefix}grants__tenant_id__in": ids})
    )


class PlatformQuerySet(RestrictedQuerySet):
    """A platform object: everything for platform principals, read-only `visible_to(tenant_ids)` for members."""

    def restrict(self, actor, action="view"):
        from deliveryhub.permissions import Principal

        principal = Principal.of(actor)
        if principal.is_platform:
            return self if principal.allows(None, Area.PLATFORM, action) else self.none()
        if action != Action.VIEW:
            return self.none()
        return self.visible_to(principal.tenant_ids_allowing(Area.PLATFORM, Action.VIEW))

    def visible_to(self, tenant_ids):
        """What members of these tenants may read (nothing, unless a subclass says otherwise)."""
        return self.none()

    def tenant_lookup(self):
        return None  # a platform object belongs to no tenant: `for_request()` is what `restrict()` gives


class IPPoolQuerySet(PlatformQuerySet):
    def usable_by(self, tenant):
        """Pools this tenant may see and send from."""
        return self.filter(pk__in=self.model.objects.filter(usable_pools_q(tenant)).values("pk"))

    def visible_to(self, tenant_ids):
        return self.usable_by(tenant_ids) if tenant_ids else self.none()


class IPAddressQuerySet(PlatformQuerySet):
    def usable_by(self, tenant):
        """Non-retired IPs in pools this tenant may use (for SPF and PTR expectations and sending)."""
        from .choices import IPState

        return self.in_pools_of(tenant).exclude(state=IPState.RETIRED)

    def in_pools_of(self, tenant):
        from .models import IPPool, IPPoolMember

        member_ips = IPPoolMember.objects.filter(pool__in=IPPool.objects.usable_by(tenant).values("pk")).values("ip_id")
        return self.filter(pk__in=member_ips)

    def visible_to(self, tenant_ids):
        return self.in_pools_of(tenant_ids) if tenant_ids else self.none()


class DeliveryNodeQuerySet(PlatformQuerySet):
    def live(self, now=None):
        """Active nodes heard from within NODE_HEARTBEAT_TIMEOUT seconds."""
        from datetime import timedelta

        from django.conf import settings
        from django.utils import timezone

        from .choices import NodeStatus

        since = (now or timezone.now()) - timedelta(seconds=settings.NODE_HEARTBEAT_TIMEOUT)
        return self.filter(status=NodeStatus.ACTIVE, last_heartbeat__gte=since)

    def visible_to(self, tenant_ids):
        from .models import IPAddress

        if not tenant_ids:
            return self.none()
        return self.filter(pk__in=IPAddress.objects.visible_to(tenant_ids).values("node_id"))


class WarmupPlanQuerySet(PlatformQuerySet):
    def visible_to(self, tenant_ids):
        from .models import IPAddress

        if not tenant_ids:
            return self.none()
        return self.filter(pk__in=IPAddress.objects.visible_to(tenant_ids).values("warmup_plan_id"))


class IPChildQuerySet(PlatformQuerySet):
    """Rows hanging off an IP (events, reputation, usage): visible with their IP."""

    def visible_to(self, tenant_ids):
        from .models import IPAddress

        if not tenant_ids:
            return self.none()
        return self.filter(ip__in=IPAddress.objects.visible_to(tenant_ids).values("pk"))


class BlocklistCheckQuerySet(IPChildQuerySet):
    """IP results follow their IP; domain results are the platform's (the domains app shows its own)."""

    def listing_zones(self, ip):
        """Zones whose last conclusive answer (listed or clear; not error/unknown) lists the IP, sorted."""
        known = self.filter(ip=ip, status__in=[ListingStatus.LISTED, ListingStatus.CLEAR])
        zones = []
        for zone in sorted(set(known.values_list("zone", flat=True))):
            if known.filter(zone=zone).order_by("-checked_at", "-id").first().status == ListingStatus.LISTED:
                zones.append(zone)
        return zones


class PoolChildQuerySet(PlatformQuerySet):
    """Pool members and grants: visible with their pool (a grant only to its own tenant)."""

    def visible_to(self, tenant_ids):
        from .models import IPPool, IPPoolGrant

        if not tenant_ids:
            return self.none()
        visible = self.filter(pool__in=IPPool.objects.visible_to(tenant_ids).values("pk"))
        if self.model is IPPoolGrant:
            visible = visible.filter(tenant_id__in=tenant_ids)
        return visible
