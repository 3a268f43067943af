"""Periodic work of the reports app: the retention purge."""

from deliveryhub.constants import QUEUE_LOW
from deliveryhub.jobs import system_job

from . import services
from .constants import PURGE_INTERVAL_SECONDS


@system_job(interval=PURGE_INTERVAL_SECONDS, queue=QUEUE_LOW, name="reports.purge_expired_data")
def purge_expired_data():
    """Delete what is past its retention period (per tenant, platform defaults otherwise); recorded and audited."""
    return services.purge(triggered_by="system (hourly purge)").pk
