"""Periodic work of the IP pools app, run by the scheduler (`@system_job`)."""

from django.conf import settings

from deliveryhub.jobs import system_job

from . import services


@system_job(interval=settings.BLOCKLIST_SWEEP_SECONDS)
def sweep_blocklists():
    """Check every IP and sending domain whose blocklist answers expired; list → pause, delist → resume."""
    services.sweep_blocklists()


@system_job(interval=settings.WARMUP_STEP_SECONDS)
def step_warmups():
    """Advance, hold or step back each warming IP once its local day has turned."""
    services.step_warmups()


@system_job(interval=settings.IP_USAGE_FLUSH_SECONDS)
def flush_ip_usage():
    """Write the Redis warm-up counters back to the database (the authority they are re-seeded from)."""
    services.flush_usage()


@system_job(interval=settings.REPUTATION_UPDATE_SECONDS)
def update_reputations():
    """Recompute every IP's reputation score from its recent outcomes and listings."""
    services.update_reputations()
