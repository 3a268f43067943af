"""Periodic work of the reports app: the retention purge, the roll-ups and their pruning, alert evaluation."""

from django.conf import settings

from deliveryhub.constants import QUEUE_LOW
from deliveryhub.jobs import system_job

from . import alerts, rollups, services
from .constants import ALERT_EVALUATION_SECONDS, PURGE_INTERVAL_SECONDS, ROLLUP_PRUNE_SECONDS


@system_job(interval=PURGE_INTERVAL_SECONDS, queue=QUEUE_LOW, name="reports.purge_expired_data")
def purge_expired_data():
    """Delete what is past its retention period (per tenant, platform defaults otherwise); recorded and audited."""
    return services.purge(triggered_by="system (hourly purge)").pk


@system_job(interval=settings.ROLLUP_INTERVAL_SECONDS, name="reports.roll_up")
def roll_up():
    """Count the attempts, events and messages since the last run into the minute/hour roll-ups (ROLLUPS_ENABLED)."""
    return rollups.roll_up()


@system_job(interval=ROLLUP_PRUNE_SECONDS, queue=QUEUE_LOW, name="reports.prune_rollups")
def prune_rollups():
    """Delete minute roll-ups past 48 h and hour roll-ups past 400 days (the retention settings)."""
    return rollups.prune()


@system_job(interval=ALERT_EVALUATION_SECONDS, name="reports.evaluate_alerts")
def evaluate_alerts():
    """Evaluate every enabled alert rule: open, remind, resolve, notify (ALERTS_ENABLED)."""
    if settings.ALERTS_ENABLED:
        return alerts.evaluate_all()
    return None
