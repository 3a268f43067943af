"""
Background jobs: user-visible `Job` rows run by `JobRunner` subclasses, and periodic `@system_job`s.

A runner (NetBox `netbox/jobs.py` shape) declares `name` and `queue` and implements `run(self, job)`:

    class AuditExportRunner(JobRunner):
        name = "Audit export"
        queue = QUEUE_LOW

        def run(self, job):
            ...
            self.progress(job, 50, "half way")

    job = AuditExportRunner.enqueue(tenant=tenant, user=user, params={"format": "csv"})

`enqueue()` writes the `Job` row and hands RQ only its id, after the surrounding transaction commits
(a rolled-back transaction enqueues nothing). The worker calls `handle(job_id)`, which marks the job
running, runs it, and records how it ended: `completed`, `failed` (an expected `JobFailed`, its message
in `error`) or `errored` (any other exception, the traceback in `error`).

Periodic work is a plain function decorated with `@system_job(interval=seconds)` in an app's `jobs.py`;
the `scheduler` command discovers those modules and enqueues each function when it is due.
"""

import logging
import traceback
from contextlib import nullcontext
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules, import_string

from . import audit, leader
from .choices import JobStatus
from .constants import QUEUE_DEFAULT, QUEUE_LOW

logger = logging.getLogger(__name__)

__all__ = ["JobFailed", "JobRunner", "SystemJob", "handle", "registry", "run_system_job", "system_job"]


class JobFailed(Exception):
    """An expected failure: the job ends `failed` and the message is shown to the user as is."""


def get_queue(name):
    """The RQ queue `name` (synchronous when settings.RQ_IS_ASYNC is off).

    It enqueues immediately (`commit_mode="auto"`): callers decide when, and user jobs are handed to it
    from `transaction.on_commit` explicitly rather than through django-rq's implicit deferral.
    """
    import django_rq

    return django_rq.get_queue(name, is_async=settings.RQ_IS_ASYNC, commit_mode="auto")


def _close_old_connections():
    # Never close a connection in the middle of a transaction (a synchronous queue inside a request or a test).
    if not connection.in_atomic_block:
        close_old_connections()


# ---------------------------------------------------------------------------------------------------------------------
# User-visible jobs
# ---------------------------------------------------------------------------------------------------------------------


class JobRunner:
    """Base class of a user-visible background job. Subclasses set `name`, `queue` and implement `run(job)`."""

    name = None  # shown in the UI; defaults to the class name
    queue = QUEUE_DEFAULT  # "default" or "low" (long exports and reports)

    @classmethod
    def dotted_path(cls):
        return f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def display_name(cls):
        return cls.name or cls.__name__

    def run(self, job):
        raise NotImplementedError(f"{type(self).__name__} must implement run(job).")

    # -- helpers for run() ----------------------------------------------------------------------------------------
    def progress(self, job, percent, log_line=None):
        """Record progress (0-100) and optionally append a log line, saving only those two fields."""
        job.progress = max(0, min(100, int(percent)))
        fields = ["progress"]
        if log_line:
            job.log = f"{job.log}{timezone.now():%Y-%m-%d %H:%M:%S} {log_line}\n"
            fields.append("log")
        job.save(update_fields=fields)

    # -- enqueueing -----------------------------------------------------------------------------------------------
    @classmethod
    def enqueue(cls, *, tenant=None, user=None, api_key=None, params=None, object=None):
        """Create the `Job` row and enqueue `handle(job.pk)` on this runner's queue once the transaction commits."""
        from .models import Job

        job = Job.objects.create(
            tenant=tenant,
            user=user if getattr(user, "pk", None) else None,
            api_key=api_key,
            name=cls.display_name(),
            runner=cls.dotted_path(),
            params=params or {},
            object_type=audit.object_type_of(object) if object is not None else "",
            object_id=str(object.pk) if object is not None else "",
        )
        queue_name, job_pk, rq_id = cls.queue, job.pk, str(job.uuid)
        transaction.on_commit(lambda: get_queue(queue_name).enqueue(handle, job_pk, job_id=rq_id))
        return job


def _finish(job, status, error=""):
    job.status = status
    job.error = error
    job.completed = timezone.now()
    fields = ["status", "error", "completed"]
    if status == JobStatus.COMPLETED:
        job.progress = 100
        fields.append("progress")
    job.save(update_fields=fields)


def handle(job_id):
    """RQ entry point: run the `Job` with this id through its runner and record how it ended."""
    from .models import Job
    from .permissions import Principal

    _close_old_connections()
    try:
        job = Job.objects.select_related("tenant", "user", "api_key").filter(pk=job_id).first()
        if job is None:
            logger.warning("Job %s no longer exists; nothing to run.", job_id)
            return
        # Claim the job with a conditional UPDATE: a job delivered twice by RQ still runs once.
        started = timezone.now()
        if not Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
            status=JobStatus.RUNNING, started=started
        ):
            logger.warning("Job %s (%s) is %s, not pending; not running it again.", job.uuid, job.name, job.status)
            return
        job.status, job.started = JobStatus.RUNNING, started
        logger.info("Job %s (%s) started", job.uuid, job.name)
        principal = Principal.of(job.api_key or job.user) if job.api_key_id or job.user_id else None
        try:
            if job.api_key_id and not job.api_key.is_usable():
                raise JobFailed("The API key that requested this job was revoked or has expired.")
            runner = import_string(job.runner)()
            with audit.audit_context(principal=principal, tenant_id=job.tenant_id):
                runner.run(job)
        except JobFailed as exc:
            _finish(job, JobStatus.FAILED, str(exc))
            logger.info("Job %s (%s) failed: %s", job.uuid, job.name, exc)
        except Exception:
            _finish(job, JobStatus.ERRORED, traceback.format_exc())
            logger.exception("Job %s (%s) errored", job.uuid, job.name)
        else:
            _finish(job, JobStatus.COMPLETED)
            logger.info("Job %s (%s) completed", job.uuid, job.name)
    finally:
        _close_old_connections()


# ---------------------------------------------------------------------------------------------------------------------
# Periodic system jobs
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemJob:
    """A periodic function: run at most once per `interval` seconds on `queue` — or, `inline`, in the scheduler
    process itself, so that it never waits behind other jobs (the delivery scheduler behind deliveries)."""

    name: str
    func_path: str
    interval: int
    queue: str
    inline: bool = False


registry = {}  # name -> SystemJob


def system_job(interval, queue=QUEUE_DEFAULT, name=None, inline=False):
    """Declare a module-level function as periodic work the scheduler enqueues every `interval` seconds.

        @system_job(interval=300)
        def recheck_dns(): ...

    The function takes no arguments and is returned unchanged. `inline=True`: `manage.py scheduler` runs it itself
    on its tick instead of enqueueing it (short, frequent work that must not queue behind workers' jobs).
    """
    if int(interval) <= 0:
        raise ValueError("A system job's interval must be a positive number of seconds.")
    if queue not in (QUEUE_DEFAULT, QUEUE_LOW) and queue not in settings.RQ_QUEUES:
        raise ValueError(f"Unknown queue {queue!r} for a system job.")

    def decorator(func):
        path = f"{func.__module__}.{func.__qualname__}"
        job = SystemJob(name=name or path, func_path=path, interval=int(interval), queue=queue, inline=inline)
        registry[job.name] = job
        return func

    return decorator


def discover_system_jobs():
    """Import every installed app's `jobs` module so their `@system_job`s register; return the registry."""
    autodiscover_modules("jobs")
    return registry


def run_system_job(func_path, fence=None):
    """RQ entry point of a system job: run the function as the system actor with fresh connections.

    `fence` is the (lease name, token) of the scheduler that enqueued it: the work runs inside `leader.fenced`, so
    whatever takes effect through `leader.check_fence()` is refused once that scheduler lost its lease.
    """
    _close_old_connections()
    try:
        func = import_string(func_path)
        with audit.audit_context(principal=None), leader.fenced(*fence) if fence else nullcontext():
            func()
    except leader.StaleLeader as exc:
        logger.warning("System job %s did nothing: %s", func_path, exc)
    finally:
        _close_old_connections()
