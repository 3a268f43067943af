"""Pools: membership and weights, grants to tenants, default pools, pausing and resuming IPs."""

from django.db import transaction

from deliveryhub import audit

from ..choices import SENDING_IP_STATES, IPEventKind, IPState, PoolPurpose
from ..models import IPAddress, IPPool, IPPoolGrant, IPPoolMember, TenantDefaultPool
from .events import ip_event
from .warmup import announce_capacity_change


@transaction.atomic
def assign_ip(pool, ip, *, weight=100, acting_user=None):
    """Put an IP in a pool with a rotation weight (or change its weight)."""
    with audit.acting_as(acting_user):
        member = IPPoolMember.objects.filter(pool=pool, ip=ip).first() or IPPoolMember(pool=pool, ip=ip)
        member.weight = weight
        member.full_clean()
        member.save()
        announce_capacity_change(IPPoolMember, f"{ip} in pool {pool} (weight {weight})")
        return member


@transaction.atomic
def remove_ip(pool, ip, *, acting_user=None):
    """Take an IP out of a pool."""
    with audit.acting_as(acting_user):
        for member in IPPoolMember.objects.filter(pool=pool, ip=ip):
            member.delete()


@transaction.atomic
def grant_pool(pool, tenant, *, acting_user=None):
    """Let a tenant use a shared pool."""
    with audit.acting_as(acting_user):
        grant = IPPoolGrant.objects.filter(pool=pool, tenant=tenant).first()
        if grant is None:
            grant = IPPoolGrant(pool=pool, tenant=tenant)
            grant.full_clean()
            grant.save()
        return grant


@transaction.atomic
def revoke_pool_grant(pool, tenant, *, acting_user=None):
    with audit.acting_as(acting_user):
        for grant in IPPoolGrant.objects.filter(pool=pool, tenant=tenant):
            grant.delete()


@transaction.atomic
def set_default_pool(tenant, purpose, pool, *, acting_user=None):
    """Make `pool` the tenant's default for mail of `purpose` (the pool must be usable by the tenant)."""
    with audit.acting_as(acting_user):
        default = TenantDefaultPool.objects.filter(tenant=tenant, purpose=purpose).first()
        default = default or TenantDefaultPool(tenant=tenant, purpose=purpose)
        default.pool = pool
        default.full_clean()
        default.save()
        return default


def default_pool_for(tenant, purpose=PoolPurpose.TRANSACTIONAL):
    """The pool a tenant's mail of `purpose` uses when none is named: its chosen default, else a usable pool of
    that purpose (dedicated before shared), else None."""
    chosen = TenantDefaultPool.objects.filter(tenant=tenant, purpose=purpose).select_related("pool").first()
    if chosen is not None and chosen.pool.is_usable_by(tenant):
        return chosen.pool
    usable = IPPool.objects.usable_by(tenant).filter(purpose=purpose)
    return usable.filter(tenant=tenant).order_by("name").first() or usable.order_by("name").first()


@transaction.atomic
def pause_ip(ip, *, reason="", acting_user=None):
    """Take an IP out of every pool's rotation (state `paused`)."""
    with audit.acting_as(acting_user):
        return _set_state(ip, IPState.PAUSED, IPEventKind.PAUSED, reason or "paused by an admin")


@transaction.atomic
def resume_ip(ip, *, acting_user=None):
    """Put a paused IP back: `warming` if it is on a plan, else `active`."""
    with audit.acting_as(acting_user):
        state = IPState.WARMING if ip.warmup_plan_id and not _warmup_done(ip) else IPState.ACTIVE
        ip = _set_state(ip, state, IPEventKind.RESUMED, "resumed by an admin")
        announce_capacity_change(IPAddress, f"{ip} resumed")
        return ip


@transaction.atomic
def pause_unbindable_ip(ip, *, reason):
    """The delivery node cannot bind `ip` as a source address (EADDRNOTAVAIL: the address is not configured on the
    host): take it out of rotation (`paused`) with an event and an audit entry, so that the scheduler picks other IPs
    and an admin sees why, instead of every message failing on it. Resume it once the address is back."""
    ip = IPAddress.objects.select_related("node").select_for_update(of=("self",)).get(pk=ip.pk)
    if ip.state not in SENDING_IP_STATES:
        return ip
    node = ip.node.name if ip.node_id else "its node"
    message = f"paused: {ip.address} cannot be bound as a source address on {node} ({reason})"
    ip = _set_state(ip, IPState.PAUSED, IPEventKind.PAUSED, message[:500])
    announce_capacity_change(IPAddress, f"{ip} cannot be bound")
    return ip


def _warmup_done(ip):
    return ip.warmup_plan is not None and ip.warmup_day > ip.warmup_plan.length


def _set_state(ip, state, kind, message):
    ip.state = state
    ip.full_clean()
    ip.save()
    ip_event(ip, kind, message)
    return ip
