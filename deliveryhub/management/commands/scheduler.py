"""
`manage.py scheduler`: enqueue every `@system_job` when it is due — on one host at a time.

Run a scheduler on two or more hosts: one is active, the others stand by. Each tick (SCHEDULER_TICK_SECONDS) a
scheduler renews or takes the database lease `scheduler` (deliveryhub/leader.py, SCHEDULER_LEASE_SECONDS long);
only the holder walks the registry of system jobs (discovered from each app's `jobs.py`). A standby takes over
at most SCHEDULER_LEASE_SECONDS + one tick after the active one stopped renewing (killed, cut off, paused).

A job is due when its Redis key `SCHEDULER_LOCK_PREFIX + name` does not exist; the scheduler creates it with
`SET key NX EX interval` and enqueues the job only when that SET succeeded, so each job runs at most once per
interval even across a takeover. Every job carries the lease token it was enqueued under; where its work takes
effect (delivery batches being enqueued) `leader.check_fence()` refuses a token that is no longer current, so an
old leader that was paused and resumed cannot act. SIGTERM/SIGINT stop the loop after the current tick and
release the lease (the standby takes over on its next tick). `--once` runs a single tick as leader and exits.
"""

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from deliveryhub import leader
from deliveryhub.constants import SCHEDULER_LOCK_PREFIX
from deliveryhub.jobs import discover_system_jobs, get_queue, run_system_job

logger = logging.getLogger("deliveryhub.scheduler")


def tick(jobs, token=None):
    """Enqueue the due system jobs (carrying the scheduler lease `token`), run the due inline ones here; return the
    names enqueued or run."""
    enqueued = []
    for job in sorted(jobs.values(), key=lambda j: j.name):
        queue = get_queue(job.queue)
        key = f"{SCHEDULER_LOCK_PREFIX}{job.name}"
        if not queue.connection.set(key, "1", nx=True, ex=job.interval):
            continue  # enqueued by this or another scheduler less than `interval` seconds ago
        fence = (leader.SCHEDULER_LEASE, token) if token is not None else None
        if job.inline:  # run here, now: never behind the jobs queued for workers
            try:
                run_system_job(job.func_path, fence)
            except Exception:  # one failing job never stops the tick; the next interval tries again
                logger.exception("System job %s failed", job.name)
            enqueued.append(job.name)
            continue
        try:
            queue.enqueue(run_system_job, job.func_path, fence, description=job.name)
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
        holder = leader.holder_id()
        if once:
            token = leader.acquire(leader.SCHEDULER_LEASE, holder, settings.SCHEDULER_LEASE_SECONDS)
            if token is None:
                lease = leader.current(leader.SCHEDULER_LEASE)
                self.stdout.write(f"Standing by: {lease.holder} holds the scheduler lease.")
                return
            try:
                for name in tick(jobs, token):
                    self.stdout.write(f"Enqueued {name}")
            finally:
                leader.release(leader.SCHEDULER_LEASE, holder)
            return

        stop = threading.Event()

        def request_stop(signum, frame):
            logger.info("Scheduler received %s; stopping after this tick.", signal.Signals(signum).name)
            stop.set()

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        # Logged only once the handlers are in place: a SIGTERM after this line always stops cleanly.
        logger.info("Scheduler started as %s with %d system job(s): %s", holder, len(jobs),
                    ", ".join(sorted(jobs)) or "none")  # fmt: skip
        held = None
        try:
            while not stop.is_set():
                try:
                    token = leader.acquire(leader.SCHEDULER_LEASE, holder, settings.SCHEDULER_LEASE_SECONDS)
                except Exception:  # database briefly away: act as a standby (the lease runs out) and retry
                    logger.exception("Scheduler lease check failed; standing by")
                    token = None
                if token != held:
                    if token is None:
                        logger.warning("Scheduler %s is a standby now (lease token %s lost).", holder, held)
                    else:
                        logger.info("Scheduler %s is the active scheduler (lease token %s).", holder, token)
                    held = token
                if token is not None:
                    try:
                        tick(jobs, token)
                    except Exception:  # Redis briefly away: log and try again next tick, never crash-loop
                        logger.exception("Scheduler tick failed")
                stop.wait(settings.SCHEDULER_TICK_SECONDS)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if held is not None:
                try:
                    leader.release(leader.SCHEDULER_LEASE, holder)
                except Exception:
                    logger.exception("Could not release the scheduler lease (it runs out by itself)")
        logger.info("Scheduler stopped.")
