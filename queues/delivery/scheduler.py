"""
The scheduler: turn ready messages into batch jobs.

`schedule()` runs every few seconds (`manage.py scheduler`, see queues/jobs.py). It

1. puts rows back whose worker lease ran out (`sending` past `lease_expires`: the worker died) — or holds them
   when workers died on them DELIVERY_MAX_LEASE_RECLAIMS times, so one message cannot crash-loop the workers,
2. expires rows that waited past the retry horizon (from their first try, else their send time) without success,
3. reads ready rows (queued or deferred, due, no live lease), highest priority first, groups them by
   (tenant, IP pool, recipient domain), judges each group's destination and provider (`destination_for`, the
   tenant's routes read once per run), asks ippools for a source IP (that IP's node decides the queue), gives each
   chunk of up to DELIVERY_BATCH_SIZE rows a short *scheduled* lease owned by a batch id (`q:<hex>`) and enqueues
   ONE RQ job per chunk on `delivery-<node>` after commit: the job by its dotted name (DELIVER_BATCH_JOB), the
   payload the batch id and the rows' ids.

The database is the truth: if Redis loses the jobs, the scheduled leases run out and the next run enqueues
the rows again. A row enqueued twice is still sent once: the worker's claim (queues/delivery/lease.py) is a
conditional UPDATE. Nothing here imports the worker.
"""

import logging
import uuid
from collections import OrderedDict
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from rq import Queue

from deliveryhub.models import Tenant
from ippools import services as ip_services
from ippools.choices import PoolPurpose
from ippools.models import IPPool

from ..choices import READY_STATUSES, EventKind, MessagePriority, MessageStatus
from ..constants import DELIVER_BATCH_JOB, DELIVERY_QUEUE_PREFIX, SCHEDULED_LEASE_PREFIX
from ..models import Message, MessageEvent
from .destination import destination_for, tenant_routes

logger = logging.getLogger(__name__)

NO_CAPACITY_RETRY_SECONDS = 60  # when ippools says "no capacity" without saying until when


def queue_name(node_name):
    return f"{DELIVERY_QUEUE_PREFIX}{node_name}"


def get_delivery_queue(node_name):
    """The RQ queue of a node (any node, not only this process's: the scheduler feeds them all)."""
    conn = django_rq.get_connection("delivery")
    return Queue(queue_name(node_name), connection=conn, default_timeout=settings.DELIVERY_JOB_TIMEOUT)


def enqueue_batch(node_name, batch_id, ids):
    """ONE job for the batch on its node's queue; the job id is the batch id (a re-enqueue replaces nothing)."""
    get_delivery_queue(node_name).enqueue(
        DELIVER_BATCH_JOB, batch_id, ids, job_id=batch_id.replace(":", "-"), job_timeout=settings.DELIVERY_JOB_TIMEOUT,
        result_ttl=0, failure_ttl=3600, description=f"deliver {len(ids)} message(s)",
    )  # fmt: skip


def reclaim_stale_leases(now=None):
    """Rows a dead worker was sending go back to `queued` (the lease ran out). Returns how many.

    A reclaimed row may have reached its receiver before the worker died (we cannot know): `outcome_unknown` is set,
    and its next attempt is recorded as a possible duplicate. Each reclaim counts on the row: a message whose
    processing kills its worker (OOM, segfault) would otherwise take down every worker that picks it up, forever.
    At DELIVERY_MAX_LEASE_RECLAIMS it is `held` for a person to look at (services.release_message puts it back).
    """
    now = now or timezone.now()
    limit = settings.DELIVERY_MAX_LEASE_RECLAIMS
    with transaction.atomic():
        stale = Message.objects.stale_leases(now)
        if connection.features.has_select_for_update_skip_locked:
            # Rows a late worker is finishing right now are skipped: its outcome wins, or the next run takes them.
            stale = stale.select_for_update(skip_locked=True)
        rows = list(stale.values_list("id", "lease_reclaims")[: settings.DELIVERY_SCAN_LIMIT])
        if not rows:
            return 0
        held = [pk for pk, reclaims in rows if reclaims + 1 >= limit]
        requeued = [pk for pk, reclaims in rows if reclaims + 1 < limit]
        reclaimed = Message.objects.filter(status=MessageStatus.SENDING, lease_expires__lt=now)
        count = reclaimed.filter(id__in=requeued).update(
            status=MessageStatus.QUEUED, lease_owner=None, lease_expires=None, next_attempt_at=now, updated=now,
            lease_reclaims=F("lease_reclaims") + 1, status_detail="The worker's lease ran out: queued again.",
            outcome_unknown=True,
        )  # fmt: skip
        detail = (
            f"Held: a worker's lease ran out {limit} times while sending this message (the worker was killed or hung, "
            f"e.g. out of memory). Look at the message, then release or cancel it."
        )
        count += reclaimed.filter(id__in=held).update(
            status=MessageStatus.HELD, lease_owner=None, lease_expires=None, updated=now,
            lease_reclaims=F("lease_reclaims") + 1, status_detail=detail, outcome_unknown=True,
        )  # fmt: skip
        events = [
            MessageEvent(message_id=i, time=now, kind=EventKind.REQUEUED, detail="Worker lease expired.")
            for i in requeued
        ]
        events += [MessageEvent(message_id=i, time=now, kind=EventKind.HELD, detail=detail) for i in held]
        MessageEvent.objects.bulk_create(events)
    if count:
        logger.warning("Reclaimed %d message(s) whose worker lease expired", count)
    if held:
        logger.error("Held %d message(s) whose workers died %d times: %s", len(held), limit, held[:20])
    return count


def expire_overdue(now=None):
    """Ready rows past the retry horizon that never got through become `expired`.

    The horizon runs from the first attempt; before one, from the scheduled send time (a message scheduled days
    ahead has not been waiting), else from intake; and never from before the message was last released from `held`
    (someone looked at it and wants it tried).
    """
    now = now or timezone.now()
    horizon = now - timedelta(seconds=settings.DELIVERY_RETRY_HORIZON_SECONDS)
    with transaction.atomic():
        overdue = (
            Message.objects.ready(now)
            .alias(
                clock=Greatest(  # NULLs coalesced: Greatest is NULL on SQLite when any argument is
                    Coalesce("first_attempt_at", "send_at", "created"), Coalesce("released_at", "created")
                )
            )
            .filter(clock__lt=horizon)
        )
        ids = list(overdue.values_list("id", flat=True)[: settings.DELIVERY_SCAN_LIMIT])
        if not ids:
            return 0
        count = Message.objects.filter(id__in=ids, status__in=READY_STATUSES).update(
            status=MessageStatus.EXPIRED, status_detail="Not delivered within the retry horizon.", updated=now,
            lease_owner=None, lease_expires=None,
        )  # fmt: skip
        MessageEvent.objects.bulk_create(
            [MessageEvent(message_id=i, time=now, kind=EventKind.EXPIRED, detail="Retry horizon reached.") for i in ids]
        )
    return count


def _select_ip(tenant_id, pool_id, priority, provider, count, known=None):
    """(ip, how many rows it may take) from ippools, or (None, (reason, until)) when nothing can send now.

    `known`: a dict kept for one scheduler run, remembering each (tenant, pool, priority)'s tenant and pool, and
    ippools' reads of pools, members and throttle rules (a run schedules many chunks of the same few; looking them up
    again was a quarter of the scheduler's time, then another 4 of a chunk's 9 queries)."""
    known = {} if known is None else known
    if (tenant_id, pool_id, priority) not in known:
        tenant = Tenant.objects.get(pk=tenant_id)
        known[(tenant_id, pool_id, priority)] = tenant, pool_id or default_pool(tenant, priority)
    tenant, pool = known[(tenant_id, pool_id, priority)]
    if pool is None:
        return None, ("No IP pool is available to this tenant: ask an operator to grant one.", None)
    try:
        selection = ip_services.select_source_ip(tenant=tenant, pool=pool, provider=provider, count=count,
                                                 cache=known.setdefault("ippools", {}))  # fmt: skip
    except ip_services.NoCapacity as exc:
        return None, (exc.reason, exc.until)
    except IPPool.DoesNotExist:
        return None, ("The message's IP pool is no longer available to this tenant.", None)
    return selection.ip, int(selection.reserved)


def default_pool(tenant, priority):
    """The tenant's default pool for this kind of mail (transactional or marketing)."""
    purpose = PoolPurpose.MARKETING if priority == MessagePriority.MARKETING else PoolPurpose.TRANSACTIONAL
    return ip_services.default_pool_for(tenant, purpose) or ip_services.default_pool_for(tenant)


def schedule(now=None):
    """One scheduler run: requeue stale leases, expire overdue rows, enqueue ready rows as batches.

    Returns the number of batches enqueued.
    """
    now = now or timezone.now()
    reclaim_stale_leases(now)
    expire_overdue(now)
    rows = (
        Message.objects.ready(now)
        .order_by("priority", "next_attempt_at", "id")
        .values_list("id", "tenant_id", "ip_pool_id", "priority", "rcpt_domain", "lease_reclaims")[
            : settings.DELIVERY_SCAN_LIMIT
        ]
    )
    groups = OrderedDict()
    for pk, tenant_id, pool_id, priority, domain, reclaims in rows:
        groups.setdefault((tenant_id, pool_id, priority, domain), []).append((pk, reclaims))
    batches, routes, known = 0, {}, {}
    for (tenant_id, pool_id, priority, domain), members in groups.items():
        try:
            if tenant_id not in routes:
                routes[tenant_id] = tenant_routes(tenant_id)
            provider = destination_for(tenant_id, domain, routes[tenant_id]).provider
        except Exception:  # one bad group never stops the others
            logger.exception("Finding the destination of %s failed", domain)
            continue
        # A row one dead worker short of being held goes in a batch of its own: if it is what kills workers, only it
        # is held, not the rows that happened to share its batch. Rows after a single death (a node restarted: its
        # thousands of rows) still share batches, so as not to turn into thousands of one-message jobs.
        size, alone_from = settings.DELIVERY_BATCH_SIZE, max(settings.DELIVERY_MAX_LEASE_RECLAIMS - 1, 1)
        ids = [pk for pk, reclaims in members if reclaims < alone_from]
        chunks = [[pk] for pk, reclaims in members if reclaims >= alone_from]
        chunks += [ids[i : i + size] for i in range(0, len(ids), size)]
        for chunk in chunks:
            try:
                batches += _schedule_chunk(tenant_id, pool_id, priority, provider, chunk, now, known)
            except Exception:  # one bad group never stops the others
                logger.exception("Scheduling %d message(s) to %s failed", len(chunk), domain)
    return batches


def _schedule_chunk(tenant_id, pool_id, priority, provider, chunk, now, known=None):
    ip, reserved = _select_ip(tenant_id, pool_id, priority, provider, len(chunk), known)
    if ip is None:
        reason, until = reserved
        until = until or now + timedelta(seconds=NO_CAPACITY_RETRY_SECONDS)
        Message.objects.filter(id__in=chunk, status__in=READY_STATUSES).update(
            next_attempt_at=until, status_detail=f"Waiting for sending capacity: {reason}"[:500], updated=now
        )
        return 0
    chunk = chunk[: max(0, reserved)]
    if not chunk:
        return 0
    batch_id = f"{SCHEDULED_LEASE_PREFIX}{uuid.uuid4().hex}"
    node_name = ip.node.name
    with transaction.atomic():
        leased = (
            Message.objects.filter(id__in=chunk)
            .filter(Q(lease_expires__isnull=True) | Q(lease_expires__lt=now), status__in=READY_STATUSES)
            .update(
                lease_owner=batch_id,
                lease_expires=now + timedelta(seconds=settings.DELIVERY_SCHEDULE_LEASE_SECONDS),
                source_ip=ip,
            )
        )
        if leased == len(chunk):  # every row of the chunk (ids are distinct): no need to ask which
            ids = list(chunk)
        else:
            ids = list(Message.objects.filter(id__in=chunk, lease_owner=batch_id).values_list("id", flat=True))
        if ids:
            transaction.on_commit(lambda: enqueue_batch(node_name, batch_id, ids))
    return 1 if ids else 0
