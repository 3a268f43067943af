"""
Leases on message rows: who may send a row now.

The scheduler hands a chunk of ready rows to a batch with a short *scheduled* lease: `lease_owner` is the batch id
(`q:<hex>`, queues/delivery/scheduler.py), and the RQ job carries that id and the rows' ids. The worker then
`claim`s the rows it can still have under a **token** unique to that claim (`w:<node>:<pid>:<batch>:<random>`): the
rows become `sending` with a lease of DELIVERY_LEASE_SECONDS. `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, a
conditional `UPDATE … WHERE` (checked by reading back the owner) elsewhere — SQLite serialises writers with
IMMEDIATE transactions, so the condition is evaluated under the write lock. A job delivered twice claims nothing the
second time. Outcomes are written only where the token still holds the lease (`still_mine`); rows given back unsent
are `release`d.
"""

import os
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from ..choices import READY_STATUSES, MessageStatus
from ..constants import CLAIMED_LEASE_PREFIX, SCHEDULED_LEASE_PREFIX
from ..models import Message


def new_token(batch_id):
    """A lease owner unique to one claim: w:<node>:<pid>:<batch>:<random> (node and pid for the humans)."""
    batch_id = batch_id.removeprefix(SCHEDULED_LEASE_PREFIX)[:32]
    return f"{CLAIMED_LEASE_PREFIX}{settings.NODE_NAME[:30]}:{os.getpid()}:{batch_id}:{uuid.uuid4().hex[:8]}"


def _claimable(ids, batch_id, now):
    """Rows of this batch still waiting: scheduled for this batch, or free because every lease ran out."""
    return Message.objects.filter(id__in=ids, status__in=READY_STATUSES, next_attempt_at__lte=now).filter(
        Q(lease_owner=batch_id) | Q(lease_expires__isnull=True) | Q(lease_expires__lt=now)
    )


def claim(batch_id, ids, now=None):
    """Take the rows of a batch with a lease for this worker; return (token, ids actually claimed)."""
    now = now or timezone.now()
    token = new_token(batch_id)
    lease = now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    ids = list(ids)[: settings.DELIVERY_BATCH_SIZE]
    with transaction.atomic():
        candidates = _claimable(ids, batch_id, now)
        if connection.features.has_select_for_update_skip_locked:
            locked = list(candidates.select_for_update(skip_locked=True).values_list("id", flat=True))
            candidates = Message.objects.filter(id__in=locked)
        candidates.update(status=MessageStatus.SENDING, lease_owner=token, lease_expires=lease, updated=now)
        claimed = list(Message.objects.filter(id__in=ids, lease_owner=token).values_list("id", flat=True))
    return token, claimed


def still_mine(token, ids):
    """The ids whose lease `token` still holds (call inside the transaction that writes outcomes: rows locked)."""
    queryset = Message.objects.filter(id__in=ids, lease_owner=token)
    if connection.features.has_select_for_update:
        queryset = queryset.select_for_update()
    return set(queryset.values_list("id", flat=True))


def release(token, ids, *, next_attempt_at=None, detail="", outcome_unknown=False):
    """Give rows back unsent (not this node's IP any more, no capacity, the batch deadline): queued again, no attempt
    counted. `outcome_unknown`: they may have reached the receiver after all (a job timed out mid-transaction), so
    their next attempt is flagged as a possible duplicate."""
    now = timezone.now()
    changes = {"outcome_unknown": True} if outcome_unknown else {}
    return Message.objects.filter(id__in=ids, lease_owner=token).update(
        status=MessageStatus.QUEUED, lease_owner=None, lease_expires=None, source_ip=None,
        next_attempt_at=next_attempt_at or now, status_detail=detail[:500], updated=now, **changes,
    )  # fmt: skip


def renew(token, ids, now=None):
    """Extend the lease `token` holds on `ids` by DELIVERY_LEASE_SECONDS from now (a batch still at work)."""
    now = now or timezone.now()
    return Message.objects.filter(id__in=ids, lease_owner=token).update(
        lease_expires=now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    )
