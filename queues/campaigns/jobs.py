"""Periodic work of campaigns: the campaign monitor and the suppression expiry (registered by queues/jobs.py)."""

from django.utils import timezone

from deliveryhub import audit
from deliveryhub.jobs import system_job

from ..constants import CAMPAIGN_MONITOR_SECONDS, SUPPRESSION_EXPIRY_SECONDS
from ..models import Suppression
from . import services


@system_job(interval=CAMPAIGN_MONITOR_SECONDS, name="queues.campaign_monitor")
def campaign_monitor():
    """Start scheduled campaigns whose time has come, close finished ones, pause those drawing complaints, finish
    cancellations."""
    services.start_due()
    services.finish_sent()
    services.pause_on_complaints()
    services.sweep_cancelled()


@system_job(interval=SUPPRESSION_EXPIRY_SECONDS, name="queues.expire_suppressions")
def expire_suppressions():
    """Remove suppressions whose expiry has passed (each removal audited)."""
    for suppression in Suppression.objects.filter(expires__lte=timezone.now()):
        with audit.audit_context(principal=None, tenant_id=suppression.tenant_id):
            suppression.delete()
