"""
`manage.py scheduler`: enqueue every `@system_job` when it is due.

Every SCHEDULER_TICK_SECONDS the scheduler walks the registry of system jobs (discovered from each
app's `jobs.py`). A job is due when its Redis key `SCHEDULER_LOCK_PREFIX + name` does not exist; the
scheduler creates it with `SET key NX EX interval` and enqueues the job only when that SET succeeded,
so any number of schedulers enqueue each job at most once per interval. SIGTERM/SIGINT stop the loop
after the current tick. `--once` runs a single tick and exits (tests, cron).
"""

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from deliveryhub.constants import SCHEDULER_LOCK_PREFIX
from deliveryhub.jobs import discover_system_jobs, get_queue, run_system_job

logger = logging.getLogger("deliveryhub.scheduler")


def tick(jobs):
    """Enqueue the due system jobs; return the names enqueued."""
    enqueued = []
    for job in sorted(jobs.values(), key=lambda j: j.name):
        queue = get_queue(job.queue)
        key = f"{SCHEDULER_LOCK_PREFIX}{job.name}"
        if not queue.connection.set(key, "1", nx=True, ex=job.interval):
            continue  # enqueued by this or another scheduler less than `interval` seconds ago
        try:
            queue.enqueue(run_system_job, job.func_path, description=job.name)
        except Exception:
            queue.connection.delete(key)  # not enqueued: let the next tick try again
            raise
        logger.debug("Enqueued system job %s on %s (every %ss)", job.name, job.queue, job.interval)
        enqueued.append(job.name)
    return enqueued


class Command(BaseCommand):
    help = "Enqueue periodic system jobs when they are due (run one scheduler or several: they never double-enqueue)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run one tick and exit.")

    def handle(self, *args, once=False, **options):
        jobs = discover_system_jobs()
        if once:
            for name in tick(jobs):
                self.stdout.write(f"Enqueued {name}")
            return

        stop = threading.Event()

        def request_stop(signum, frame):
            logger.info("Scheduler received %s; stopping after this tick.", signal.Signals(signum).name)
            stop.set()

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        # Logged only once the handlers are in place: a SIGTERM after this line always stops cleanly.
        logger.info("Scheduler started with %d system job(s): %s", len(jobs), ", ".join(sorted(jobs)) or "none")
        try:
            while not stop.is_set():
                try:
                    tick(jobs)
                except Exception:  # Redis briefly away: log and try again next tick, never crash-loop
                    logger.exception("Scheduler tick failed")
                stop.wait(settings.SCHEDULER_TICK_SECONDS)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        logger.info("Scheduler stopped.")
