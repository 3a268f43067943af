"""
Leases with fencing tokens: how several schedulers run safely, one active at a time.

A `Lease` row per name lives in the database (the source of truth, replicated with it; Redis may lose keys in a
failover, the database does not). Every scheduler process calls `acquire(name, holder, ttl)` on each tick:

- the holder renews its lease (expiry moved `ttl` seconds ahead, token unchanged);
- anyone takes an expired (or released) lease over: the holder changes and the token grows by one;
- otherwise it is a standby and does nothing but try again next tick.

Times are the database's clock (`Now()`), so hosts with skewed clocks agree on who holds the lease. A standby takes
over at most `ttl` + one tick after the active scheduler stopped renewing (killed, partitioned, paused).

Fencing: work started by a leader carries its token (`fenced(name, token)` around it; `run_system_job` sets it from
the job's arguments). The point where that work takes effect — enqueueing delivery batches — calls
`check_fence()` inside its transaction: it locks the lease row and raises `StaleLeader` unless the token is still
the current one and the lease is live. A takeover must update the same row, so it waits for the enqueueing
transaction or makes it fail: a paused-then-resumed old leader cannot enqueue with its stale token.
"""

import contextvars
import os
import socket
import uuid
from contextlib import contextmanager
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Now

from .models import Lease

SCHEDULER_LEASE = "scheduler"

_fence = contextvars.ContextVar("deliveryhub_fence", default=None)  # (lease name, token) of the running work

__all__ = ["SCHEDULER_LEASE", "StaleLeader", "acquire", "check_fence", "current", "fenced", "holder_id", "release"]


class StaleLeader(Exception):
    """Work started under a lease token that is no longer current: it must not take effect."""


def holder_id():
    """A name for this process that no other process (here or on another host) uses: host:pid:random."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _expiry(ttl):
    return ExpressionWrapper(Now() + Value(timedelta(seconds=ttl)), output_field=DateTimeField())


def acquire(name, holder, ttl):
    """Renew `holder`'s lease on `name` or take it over when free or expired; the token held, or None (standby)."""
    with transaction.atomic():
        if not Lease.objects.filter(name=name).exists():
            try:
                with transaction.atomic():
                    Lease.objects.create(name=name)
            except IntegrityError:
                pass  # another process created it first
        live = Lease.objects.filter(name=name, holder=holder, expires_at__gt=Now())
        if live.update(renewed_at=Now(), expires_at=_expiry(ttl)):
            return Lease.objects.values_list("token", flat=True).get(name=name)
        free = Lease.objects.filter(name=name).filter(Q(expires_at__isnull=True) | Q(expires_at__lte=Now()))
        if free.update(holder=holder, token=F("token") + 1, acquired_at=Now(), renewed_at=Now(),
                       expires_at=_expiry(ttl)):  # fmt: skip
            return Lease.objects.values_list("token", flat=True).get(name=name)
    return None


def release(name, holder):
    """Give the lease up at once (a clean shutdown): a standby takes over on its next tick."""
    Lease.objects.filter(name=name, holder=holder).update(expires_at=Now())


def current(name):
    """The lease row (holder, token, expiry), or None before anyone took it."""
    return Lease.objects.filter(name=name).first()


@contextmanager
def fenced(name, token):
    """Run a block as work of the leader holding `name` with `token`: `check_fence()` inside it verifies the token."""
    reset = _fence.set((name, int(token)))
    try:
        yield
    finally:
        _fence.reset(reset)


def check_fence():
    """Raise StaleLeader if the running work's lease token is no longer current (no-op outside `fenced`).

    Call it inside the transaction whose writes must not happen under a stale token: the lease row stays locked
    until that transaction ends, so a takeover cannot slip in between the check and the commit.
    """
    fence = _fence.get()
    if fence is None:
        return
    name, token = fence
    with transaction.atomic():
        held = Lease.objects.select_for_update().filter(name=name, token=token, expires_at__gt=Now()).exists()
    if not held:
        raise StaleLeader(f"Lease {name!r} token {token} is no longer current: another scheduler took over.")
