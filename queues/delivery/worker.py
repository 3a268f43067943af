"""
The RQ entry point of a delivery batch: `deliver_batch(batch_id, ids)` on the node's queue `delivery-<node>`.

Run a node's workers with the node name in the environment, one process per core:

    DELIVERYHUB_NODE=node1 python manage.py rqworker delivery-node1 --worker-class queues.delivery.worker.DeliveryWorker

`DeliveryWorker` is RQ's `SimpleWorker` (jobs run in the worker process itself, so the SMTP connection pool of
queues/delivery/state.py lives across batches) that also tells ippools its node is alive while idle: the
scheduler only hands batches to live nodes. RQ's warm shutdown (SIGTERM) finishes the current batch first.

The job claims its rows (queues/delivery/lease.py: a lease token unique to this claim), runs them through the
processor (queues/delivery/processor.py) and never raises: a batch that fails as a whole is deferred with its error
recorded, so one poison batch cannot crash-loop a worker; a worker killed outright leaves leases that run out and
the scheduler hands the rows to others. The scheduler enqueues this job by its dotted name and imports nothing of
this module.
"""

import logging
import time

from django.conf import settings
from django.db import close_old_connections, connection
from rq.worker import SimpleWorker

from ippools import services as ip_services

from . import lease, processor

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY_SECONDS = 30  # how often a busy worker tells ippools its node is alive
_last_heartbeat = 0.0


def _fresh_connections():
    if not connection.in_atomic_block:
        close_old_connections()


def _heartbeat(force=False):
    global _last_heartbeat
    now = time.monotonic()
    if not force and now - _last_heartbeat < HEARTBEAT_EVERY_SECONDS:
        return
    _last_heartbeat = now
    try:
        ip_services.heartbeat(settings.NODE_NAME)
    except Exception:
        logger.exception("Heartbeat failed")


def deliver_batch(batch_id, ids):
    """Claim the batch's rows, deliver them, record the outcomes. Returns the number of rows processed."""
    _fresh_connections()
    try:
        _heartbeat()
        try:
            token, claimed = lease.claim(batch_id, ids)
        except Exception:  # database away, bad ids: the schedule lease runs out and the scheduler tries again
            logger.exception("Batch %s: claiming its rows failed", batch_id)
            return 0
        if not claimed:
            logger.info("Batch %s: nothing left to claim (%d id(s) taken elsewhere or done)", batch_id, len(ids))
            return 0
        try:
            rows = processor.process(token, claimed)
        except Exception:  # finish() itself failed (database away): let the leases run out, never crash
            logger.exception("Batch %s: writing outcomes failed; leases will expire and the rows be retried", batch_id)
            return 0
        return len(rows)
    finally:
        _fresh_connections()


class DeliveryWorker(SimpleWorker):
    """A SimpleWorker that keeps its delivery node's heartbeat fresh, busy or idle."""

    @property
    def dequeue_timeout(self):
        return max(1, min(self.worker_ttl - 15, HEARTBEAT_EVERY_SECONDS))

    def heartbeat(self, *args, **kwargs):
        result = super().heartbeat(*args, **kwargs)
        _fresh_connections()
        _heartbeat()
        return result
