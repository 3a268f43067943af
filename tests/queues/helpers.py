"""Shared set-up of the delivery tests: a tenant domain that may send, a node with source IPs, runs of the pipeline."""

import django_rq
from django.conf import settings
from django.utils import timezone
from rq import SimpleWorker

from queues.choices import READY_STATUSES
from queues.constants import SCHEDULED_LEASE_PREFIX
from queues.delivery import scheduler, worker
from queues.models import Message
from queues.services import Submission, accept_messages


def redis():
    return django_rq.get_connection("delivery")


def flush_redis():
    redis().flushdb()


def send(tenant, to, *, sender="App <app@mail-a.test>", **fields):
    fields.setdefault("subject", "Hello")
    fields.setdefault("text", "Hello there")
    return accept_messages(tenant, Submission(sender=sender, to=list(to) if not isinstance(to, str) else [to],
                                              **fields)).messages  # fmt: skip


def scheduled_batches():
    """{batch token: [ids]} of rows the scheduler handed out and no worker claimed yet."""
    batches = {}
    for pk, owner in Message.objects.filter(lease_owner__startswith=SCHEDULED_LEASE_PREFIX).values_list(
        "id", "lease_owner"
    ):
        batches.setdefault(owner, []).append(pk)
    return batches


def run_once(now=None):
    """One scheduler run, then every batch it produced delivered in this process (no Redis hop)."""
    scheduler.schedule(now)
    for batch, ids in scheduled_batches().items():
        worker.deliver_batch(batch, ids)


def make_due():
    """Make every deferred message due now (instead of waiting for its backoff)."""
    Message.objects.filter(status__in=READY_STATUSES).update(next_attempt_at=timezone.now())


def work_queue():
    """Run the node's RQ queue with a real (in-process) SimpleWorker until it is empty."""
    queue = scheduler.get_delivery_queue(settings.NODE_NAME)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
