"""Periodic work of the queues app: the delivery scheduler (ready messages → batch jobs) and housekeeping."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from deliveryhub import leader
from deliveryhub.jobs import system_job

from .campaigns import jobs as campaign_jobs  # noqa: F401  (registers the campaign monitor and suppression expiry)
from .delivery import scheduler
from .models import IdempotencyKey
from .webhooks import dispatch as webhook_dispatch

IDEMPOTENCY_KEY_TTL_HOURS = 24  # how long an Idempotency-Key's first answer is kept
IDEMPOTENCY_PRUNE_SECONDS = 3600  # how often old Idempotency-Key answers are deleted


@system_job(interval=settings.DELIVERY_SCHEDULER_INTERVAL, name="queues.schedule_deliveries", inline=True)
def schedule_deliveries():
    """Turn ready messages into batch jobs on their nodes' queues; requeue expired leases; expire old mail.

    Inline: `manage.py scheduler` runs it in its own process, so it never waits behind delivery batches (a worker
    serving `default` beside `delivery-<node>` would otherwise take it only between batches).

    Only under the current scheduler lease: a job enqueued by a scheduler that has since lost it does nothing.
    """
    leader.check_fence()
    return scheduler.schedule()


@system_job(interval=IDEMPOTENCY_PRUNE_SECONDS, name="queues.prune_idempotency_keys")
def prune_idempotency_keys():
    """Forget Idempotency-Key answers older than a day."""
    IdempotencyKey.objects.filter(created__lt=timezone.now() - timedelta(hours=IDEMPOTENCY_KEY_TTL_HOURS)).delete()


@system_job(interval=settings.WEBHOOK_DISPATCH_INTERVAL, name="queues.dispatch_webhooks")
def dispatch_webhooks():
    """Number new events in the event stream and hand each webhook with events waiting to a worker."""
    leader.check_fence()
    return webhook_dispatch.dispatch()
