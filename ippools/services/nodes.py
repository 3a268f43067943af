"""Delivery nodes: heartbeats from their workers, and the local node of the demo/dev stack."""

from django.db import transaction
from django.utils import timezone

from deliveryhub import audit

from ..choices import PoolPurpose
from ..models import DeliveryNode, IPAddress, IPPool, IPPoolMember
from .pools import assign_ip

LOCAL_NODE_NAME = "local"
LOCAL_IP = "127.0.0.1"
DEFAULT_POOL_NAME = "default"


def heartbeat(node_name, *, now=None):
    """Mark a node alive (called by its workers); a node not yet known is registered, active, with no IPs."""
    now = now or timezone.now()
    if DeliveryNode.objects.filter(name=node_name).update(last_heartbeat=now):
        return
    with transaction.atomic():
        node, _ = DeliveryNode.objects.get_or_create(name=node_name)
        DeliveryNode.objects.filter(pk=node.pk).update(last_heartbeat=now)


@transaction.atomic
def ensure_local_node(*, acting_user=None, now=None):
    """The demo/dev stack's sending setup: node "local" with IP 127.0.0.1 in the shared pool "default"
    (transactional, open to every tenant). Idempotent; returns (node, ip, pool)."""
    with audit.acting_as(acting_user):
        node, _ = DeliveryNode.objects.get_or_create(name=LOCAL_NODE_NAME, defaults={"hostname": "localhost"})
        ip = IPAddress.objects.filter(address=LOCAL_IP).first()
        if ip is None:
            ip = IPAddress(
                address=LOCAL_IP, node=node, ehlo_hostname="localhost", notes="Created by ensure_local_node."
            )
            ip.full_clean()
            ip.save()
        pool, _ = IPPool.objects.get_or_create(
            name=DEFAULT_POOL_NAME,
            defaults={
                "purpose": PoolPurpose.TRANSACTIONAL,
                "all_tenants": True,
                "description": "Shared pool of the local node (created by ensure_local_node).",
            },
        )
        if not IPPoolMember.objects.filter(pool=pool, ip=ip).exists():
            assign_ip(pool, ip, acting_user=acting_user)
        heartbeat(node.name, now=now)
        return node, ip, pool
