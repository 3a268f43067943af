"""
Gauges measured on demand: the queue now (messages by state, oldest waiting message, per pool, provider and domain),
delivery nodes and their heartbeats, RQ queues and workers, the scheduler's lease, Redis and the database.

Only unfinished states are counted (queued, deferred, sending, held: the `message_ready` index's leading column keeps
that an index scan however many delivered rows there are); finished states are counters in the roll-ups.
"""

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min
from django.utils import timezone

from deliveryhub import leader, redis_client
from ippools.models import DeliveryNode
from ippools.providers import provider_for
from queues.choices import READY_STATUSES, MessageStatus
from queues.models import EventStream, Message, Webhook

UNFINISHED = (MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.SENDING, MessageStatus.HELD)
HEALTH_TIMEOUT = 2  # seconds a health check waits for Redis


def _messages(tenant_id=None):
    queryset = Message.objects.filter(status__in=UNFINISHED).order_by()
    return queryset.filter(tenant_id=tenant_id) if tenant_id is not None else queryset


def queue_by_state(tenant_id=None):
    """{(tenant id, status): messages} of unfinished messages."""
    rows = _messages(tenant_id).values_list("tenant_id", "status").annotate(n=Count("id"))
    return {(tenant, status): n for tenant, status, n in rows}


def oldest_waiting(tenant_id=None, now=None):
    """{tenant id: seconds the oldest queued or deferred message has waited since it was accepted}."""
    now = now or timezone.now()
    rows = (
        _messages(tenant_id).filter(status__in=READY_STATUSES).values_list("tenant_id").annotate(first=Min("created"))
    )
    return {tenant: max(0.0, (now - first).total_seconds()) for tenant, first in rows}


def queue_by(dimension, tenant_id=None):
    """{value: waiting messages} by `pool` (the message's pool id, 0: the tenant's default), `domain` (sending domain
    id) or `provider` (from the recipient domain)."""
    column = {"pool": "ip_pool_id", "domain": "sending_domain_id", "provider": "rcpt_domain", "tenant": "tenant_id"}
    waiting = _messages(tenant_id).filter(status__in=READY_STATUSES)
    rows = waiting.values_list(column[dimension]).annotate(n=Count("id"))
    if dimension != "provider":
        return {value or 0: n for value, n in rows}
    out = {}
    for domain, n in rows:
        provider = str(provider_for(domain))
        out[provider] = out.get(provider, 0) + n
    return out


def nodes(now=None):
    """[(node, heartbeat age in seconds or None, live)] of every delivery node."""
    now = now or timezone.now()
    return [
        (node, (now - node.last_heartbeat).total_seconds() if node.last_heartbeat else None, node.is_live(now))
        for node in DeliveryNode.objects.annotate(ip_count=Count("ip_addresses")).order_by("name")
    ]


def scheduler_age(now=None):
    """Seconds since the scheduler last renewed its lease (it does every tick), or None if it never ran."""
    lease = leader.current(leader.SCHEDULER_LEASE)
    if lease is None or lease.renewed_at is None:
        return None
    return max(0.0, ((now or timezone.now()) - lease.renewed_at).total_seconds())


def redis_health_client():
    """A Redis client for health checks: it gives up after HEALTH_TIMEOUT seconds instead of hanging."""
    config = settings.REDIS_CONNECTION
    if "SENTINELS" in config:
        return redis_client.connection()
    import redis

    return redis.Redis.from_url(config["URL"], socket_connect_timeout=HEALTH_TIMEOUT, socket_timeout=HEALTH_TIMEOUT)


def redis_ok():
    try:
        return bool(redis_health_client().ping())
    except Exception:
        return False


def database_ok():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone()[0] == 1
    except Exception:
        return False


def rq_state():
    """{"queues": {name: jobs waiting}, "failed": {name: failed jobs}, "workers": n, "busy": n} (None: Redis away)."""
    import django_rq
    from rq import Worker

    try:
        client = redis_health_client()
        queues, failed = {}, {}
        for name in settings.RQ_QUEUES:
            queue = django_rq.get_queue(name, connection=client)
            queues[name] = queue.count
            failed[name] = queue.failed_job_registry.count
        workers = Worker.all(connection=client)
        busy = sum(1 for worker in workers if worker.get_state() == "busy")
        return {"queues": queues, "failed": failed, "workers": len(workers), "busy": busy}
    except Exception:
        return None


def webhook_backlog(tenant_id=None):
    """{tenant id: stream positions its enabled webhooks are behind (summed)}: events not yet delivered."""
    stream = EventStream.objects.filter(pk=1).values_list("last_position", flat=True).first() or 0
    hooks = Webhook.objects.filter(enabled=True)
    if tenant_id is not None:
        hooks = hooks.filter(tenant_id=tenant_id)
    out = {}
    for tenant, cursor in hooks.values_list("tenant_id", "cursor"):
        out[tenant] = out.get(tenant, 0) + max(0, stream - cursor)
    return out


def webhooks_by_state():
    """{"enabled": n, "failing": n, "disabled": n} of every tenant's webhooks."""
    rows = Webhook.objects.values_list("enabled", "failing_since")
    out = {"enabled": 0, "failing": 0, "disabled": 0}
    for enabled, failing_since in rows:
        out["disabled" if not enabled else "failing" if failing_since else "enabled"] += 1
    return out
