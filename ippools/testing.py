"""Test helpers of the IP pools app: build nodes, IPs, pools and plans in one call."""

from django.utils import timezone

from . import counters, services
from .choices import IPState, PoolPurpose
from .models import DeliveryNode, IPAddress, IPPool, WarmupPlan


def flush_test_redis():
    """Empty the test Redis database (REDIS_URL's db: one per helper/test run)."""
    counters.get_redis().flushdb()


def make_node(name="node-1", *, region="", live=True, now=None):
    node = DeliveryNode.objects.create(name=name, region=region, hostname=f"{name}.example.test")
    if live:
        services.heartbeat(name, now=now or timezone.now())
        node.refresh_from_db()
    return node


def make_ip(address, node, *, state=IPState.ACTIVE, ehlo=None, plan=None, day=1, now=None):
    ip = IPAddress(address=address, node=node, ehlo_hostname=ehlo or f"mta-{address.replace(':', '-')}.example.test")
    ip.full_clean()
    ip.save()
    if plan is not None:
        services.start_warmup(ip, plan, day=day, now=now)
    if state not in (IPState.ACTIVE, IPState.WARMING):
        ip.state = state
        ip.save()
    return ip


def make_pool(name, *, tenant=None, all_tenants=False, purpose=PoolPurpose.TRANSACTIONAL, members=(), **kwargs):
    """A pool with `members` = [(ip, weight), ...]."""
    pool = IPPool.objects.create(name=name, tenant=tenant, all_tenants=all_tenants, purpose=purpose, **kwargs)
    for ip, weight in members:
        services.assign_ip(pool, ip, weight=weight)
    return pool


def make_plan(name="test plan", days=None, **kwargs):
    plan = WarmupPlan(name=name, days=days or [{"total": 100, "google": 10, "microsoft": 20}] * 5, **kwargs)
    plan.full_clean()
    plan.save()
    return plan
