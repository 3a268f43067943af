"""Background jobs: runner states, enqueue-after-commit, ids-only payloads, and the scheduler's single enqueue."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from django.test import TestCase, TransactionTestCase
from rq import SimpleWorker

from deliveryhub import audit, jobs
from deliveryhub.choices import JobStatus
from deliveryhub.constants import QUEUE_DEFAULT, QUEUE_LOW, SCHEDULER_LOCK_PREFIX
from deliveryhub.jobs import JobFailed, JobRunner, get_queue, handle, system_job
from deliveryhub.management.commands.scheduler import tick
from deliveryhub.models import AuditEntry, Job
from deliveryhub.testing.cases import TenantTestCase

BASE_DIR = Path(settings.BASE_DIR)


class OkRunner(JobRunner):
    name = "Test: ok"

    def run(self, job):
        self.progress(job, 40, "first half done")
        job.result = {"echo": job.params.get("value")}
        job.save(update_fields=["result"])
        self.progress(job, 80, "second half done")


class FailingRunner(JobRunner):
    name = "Test: failing"
    queue = QUEUE_LOW

    def run(self, job):
        raise JobFailed("The domain has no DNS records yet.")


class CrashingRunner(JobRunner):
    name = "Test: crashing"

    def run(self, job):
        return 1 / 0


def tick_job():
    """A system job: leaves a trace in the audit log (as the system actor)."""
    audit.record("test.tick", message="scheduled work ran")


def flush_redis():
    get_queue(QUEUE_DEFAULT).connection.flushdb()  # the test Redis db (REDIS_URL), never a shared one


def run_worker(*queue_names):
    """Drain the queues with a real in-process RQ worker."""
    queues = [get_queue(name) for name in queue_names or (QUEUE_DEFAULT, QUEUE_LOW)]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True)


class JobRunnerTest(TenantTestCase):
    def setUp(self):
        flush_redis()

    def enqueue(self, runner, **kwargs):
        with self.captureOnCommitCallbacks(execute=True):
            job = runner.enqueue(tenant=self.tenant_a, user=self.alice, **kwargs)
        return job

    def test_completed_with_progress_log_and_result(self):
        job = self.enqueue(OkRunner, params={"value": 7})
        self.assertEqual(job.status, JobStatus.PENDING)
        self.assertEqual(job.runner, f"{__name__}.OkRunner")
        self.assertEqual(job.name, "Test: ok")
        run_worker()
        job.refresh_from_db()
        self.assertEqual(job.status, JobStatus.COMPLETED, job.error)
        self.assertEqual(job.progress, 100)
        self.assertEqual(job.result, {"echo": 7})
        self.assertIn("first half done", job.log)
        self.assertIn("second half done", job.log)
        self.assertIsNotNone(job.started)
        self.assertGreaterEqual(job.completed, job.started)
        self.assertEqual(job.error, "")

    def test_expected_failure_is_failed_with_message(self):
        job = self.enqueue(FailingRunner)
        self.assertEqual(get_queue(QUEUE_LOW).count, 1)  # the runner's queue
        self.assertEqual(get_queue(QUEUE_DEFAULT).count, 0)
        run_worker()
        job.refresh_from_db()
        self.assertEqual(job.status, JobStatus.FAILED)
        self.assertEqual(job.error, "The domain has no DNS records yet.")
        self.assertIsNotNone(job.completed)

    def test_unexpected_exception_is_errored_with_traceback(self):
        job = self.enqueue(CrashingRunner)
        run_worker()
        job.refresh_from_db()
        self.assertEqual(job.status, JobStatus.ERRORED)
        self.assertIn("Traceback", job.error)
        self.assertIn("ZeroDivisionError", job.error)

    def test_payload_is_the_job_id_only(self):
        job = self.enqueue(OkRunner, params={"value": 1})
        (rq_job,) = get_queue(QUEUE_DEFAULT).get_jobs()
        self.assertEqual(rq_job.func_name, "deliveryhub.jobs.handle")
        self.assertEqual(rq_job.args, (job.pk,))
        self.assertEqual(rq_job.kwargs, {})
        self.assertEqual(rq_job.id, str(job.uuid))

    def test_progress_saves_only_its_fields(self):
        job = OkRunner.enqueue(tenant=self.tenant_a, params={"value": 1})
        stale = Job.objects.get(pk=job.pk)
        Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, error="kept")
        OkRunner().progress(stale, 150, "over the top")
        job.refresh_from_db()
        self.assertEqual((job.progress, job.status, job.error), (100, JobStatus.RUNNING, "kept"))
        self.assertIn("over the top", job.log)

    def test_a_job_runs_once_even_if_delivered_twice(self):
        job = self.enqueue(OkRunner, params={"value": 2})
        handle(job.pk)
        job.refresh_from_db()
        completed = job.completed
        Job.objects.filter(pk=job.pk).update(log="")
        handle(job.pk)  # RQ redelivery, or a second worker
        job.refresh_from_db()
        self.assertEqual((job.status, job.completed, job.log), (JobStatus.COMPLETED, completed, ""))

    def test_handle_of_a_vanished_job_is_a_no_op(self):
        handle(987654321)


class EnqueueAfterCommitTest(TransactionTestCase):
    """With real transactions: nothing reaches Redis before COMMIT, and a rollback sends nothing at all."""

    def setUp(self):
        flush_redis()

    def test_enqueued_only_after_commit(self):
        queue = get_queue(QUEUE_DEFAULT)
        with transaction.atomic():
            job = OkRunner.enqueue(params={"value": 3})
            self.assertEqual(queue.count, 0, "enqueued before commit")
        self.assertEqual(queue.count, 1)
        run_worker()
        job.refresh_from_db()
        self.assertEqual(job.status, JobStatus.COMPLETED, job.error)

    def test_rolled_back_transaction_enqueues_nothing(self):
        queue = get_queue(QUEUE_DEFAULT)
        with self.assertRaises(RuntimeError), transaction.atomic():
            OkRunner.enqueue(params={"value": 4})
            raise RuntimeError("the request failed after enqueueing")
        self.assertEqual(queue.count, 0)
        self.assertFalse(Job.objects.exists())


class SchedulerTest(TestCase):
    def setUp(self):
        flush_redis()
        saved = dict(jobs.discover_system_jobs())  # the apps' jobs register once per process...
        jobs.registry.clear()  # ...and stay out of these tests, which run only their own
        self.addCleanup(lambda: (jobs.registry.clear(), jobs.registry.update(saved)))

    def our_jobs(self, queue_name=QUEUE_DEFAULT):
        return [j for j in get_queue(queue_name).get_jobs() if j.args[:1] == (f"{__name__}.tick_job",)]

    def test_once_enqueues_a_due_job_once_even_when_run_twice(self):
        system_job(interval=3600, name="tests.tick")(tick_job)
        call_command("scheduler", "--once", stdout=open(os.devnull, "w"))
        call_command("scheduler", "--once", stdout=open(os.devnull, "w"))
        self.assertEqual(len(self.our_jobs()), 1)
        self.assertTrue(get_queue(QUEUE_DEFAULT).connection.exists(f"{SCHEDULER_LOCK_PREFIX}tests.tick"))
        run_worker()
        entry = AuditEntry.objects.filter(action="test.tick").get()
        self.assertEqual(entry.actor_type, "system")

    def test_due_again_after_its_interval(self):
        system_job(interval=1, queue=QUEUE_LOW, name="tests.fast")(tick_job)
        self.assertIn("tests.fast", tick(jobs.registry))
        self.assertNotIn("tests.fast", tick(jobs.registry))
        time.sleep(1.2)
        self.assertIn("tests.fast", tick(jobs.registry))
        self.assertEqual(len(self.our_jobs(QUEUE_LOW)), 2)

    def test_two_schedulers_at_once_enqueue_once(self):
        system_job(interval=3600, name="tests.race")(tick_job)
        barrier = threading.Barrier(4)
        results = []

        def scheduler():
            barrier.wait()
            results.append(tick({"tests.race": jobs.registry["tests.race"]}))

        threads = [threading.Thread(target=scheduler) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(sorted(map(len, results)), [0, 0, 0, 1])
        self.assertEqual(len(self.our_jobs()), 1)

    def test_system_job_rejects_a_bad_interval(self):
        with self.assertRaises(ValueError):
            system_job(interval=0)(tick_job)

    def test_sigterm_stops_the_loop_cleanly(self):
        env = {
            **os.environ,
            "DELIVERYHUB_SCHEDULER_TICK_SECONDS": "1",
            "DJANGO_SETTINGS_MODULE": "deliveryhub.settings",
        }
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "scheduler", "--skip-checks"],
            cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            output = ""
            while "Scheduler started" not in output and time.monotonic() < deadline:
                output += proc.stdout.readline()
                self.assertIsNone(proc.poll(), output)
            proc.send_signal(signal.SIGTERM)
            rest, _ = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 0, output + rest)
        self.assertIn("Scheduler stopped", rest)
