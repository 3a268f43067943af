"""Delivery nodes: heartbeats from their workers, moving a lost node's IPs, and the local node of the demo/dev stack."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from deliveryhub import audit

from ..choices import NodeStatus, PoolPurpose
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


@transaction.atomic
def move_node_ips(source, target, *, acting_user=None):
    """Give every IP address of node `source` to node `target` (a lost node's IPs, in one action); returns them.

    The operator moves the addresses themselves on the hosts (a floating IP, keepalived, the cloud's API); from
    here on the scheduler sends batches for those IPs to `target`'s queue. Work the lost node held comes back by
    itself: claimed messages when their lease runs out, batches waiting in its queue when their schedule lease
    does. `source` is set to draining so that it gets nothing new if it comes back.
    """
    if source.pk == target.pk:
        raise ValidationError({"to": "Choose another node than the one the addresses are on."})
    if target.status != NodeStatus.ACTIVE:
        state = target.get_status_display().lower()
        raise ValidationError({"to": f"Node {target.name} is {state}: activate it first."})
    with audit.acting_as(acting_user):
        moved = list(IPAddress.objects.select_for_update().filter(node=source).order_by("address"))
        for ip in moved:
            ip.node = target
            ip.save()
        if source.status == NodeStatus.ACTIVE:
            source.status = NodeStatus.DRAINING
            source.save()
        audit.record(
            "node.ips_moved", obj=source,
            postchange={"to": target.name, "addresses": [ip.address for ip in moved]},
            message=f"{len(moved)} IP address(es) moved from {source.name} to {target.name}.",
        )  # fmt: skip
    return moved
