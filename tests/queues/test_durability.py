"""Durability of outcomes (issue 12 §2, §3): what a receiver accepted is recorded soon after its reply, a job timeout
is not a poison message, a lost database connection is re-opened, and a message re-sent after an unknown outcome is
flagged as a possible duplicate. Real RQ workers and aiosmtpd peers on loopback."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection, connections
from django.test import TransactionTestCase, override_settings
from django.utils import timezone

from deliveryhub import services as core
from deliveryhub.testing.cases import TenantTestCase
from deliveryhub.testing.smtp import DATA_OK, STALL, SMTPSink
from queues.choices import EventKind, MessageStatus
from queues.delivery import lease, processor, scheduler, state
from queues.models import DeliveryAttempt, Message, MessageEvent, Route
from queues.testing import make_sending_domain, make_sending_ips

from .helpers import flush_redis, make_due, run_once, scheduled_batches, send, work_queue


@override_settings(DEMO_MODE=False, DELIVERY_BATCH_SIZE=50, DELIVERY_BATCH_CONCURRENCY=2)
class JobTimeoutTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")
        make_sending_ips(("127.0.0.2",))

    def setUp(self):
        flush_redis()
        self.sink = SMTPSink().start()
        self.addCleanup(self.sink.stop)
        self.addCleanup(state.close)
        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=self.sink.port)

    @override_settings(DELIVERY_JOB_TIMEOUT=3, SMTP_DATA_TIMEOUT=60)
    def test_a_job_timeout_records_what_was_accepted_and_gives_the_rest_back(self):
        """One end-of-data reply never comes and the RQ job times out first (a job timeout at or below the data
        timeout, as shipped before): the messages the receiver took are delivered, the one on the wire goes back
        flagged as a possible duplicate — not "Processing error" with a 900 s retry, not its batch-mates."""
        rows = send(self.tenant_a, [f"u{i}@example.com" for i in range(12)] + ["stuck@example.com"])
        self.sink.script_data("stuck@example.com", [STALL, DATA_OK])
        with self.captureOnCommitCallbacks(execute=True):
            scheduler.schedule()
        work_queue()  # a real (in-process) RQ SimpleWorker: its job timeout raises JobTimeoutException
        statuses = dict(Message.objects.filter(pk__in=[m.pk for m in rows]).values_list("rcpt_to", "status"))
        self.assertEqual(len(self.sink.messages), 12)
        self.assertEqual({s for r, s in statuses.items() if r != "stuck@example.com"}, {MessageStatus.DELIVERED})
        stuck = Message.objects.get(rcpt_to="stuck@example.com")
        self.assertEqual(stuck.status, MessageStatus.QUEUED)
        self.assertTrue(stuck.outcome_unknown)
        self.assertIsNone(stuck.lease_owner)
        self.assertIn("may have been delivered", stuck.status_detail)
        self.assertLessEqual(stuck.next_attempt_at, timezone.now())
        self.assertFalse(MessageEvent.objects.filter(kind=EventKind.ERROR).exists())
        # Its next attempt says it may repeat the first.
        run_once()
        stuck.refresh_from_db()
        self.assertEqual(stuck.status, MessageStatus.DELIVERED)
        attempt = DeliveryAttempt.objects.get(message=stuck)
        self.assertTrue(attempt.possible_duplicate)
        self.assertFalse(stuck.outcome_unknown)
        self.assertFalse(DeliveryAttempt.objects.filter(message__rcpt_to="u0@example.com", possible_duplicate=True))

    @override_settings(DELIVERY_BATCH_SECONDS=0)
    def test_past_the_batch_deadline_no_transaction_starts_and_the_rows_go_back_unchanged(self):
        rows = send(self.tenant_a, ["a@example.com", "b@example.com"])
        run_once()
        self.assertEqual(self.sink.messages, [])
        for message in Message.objects.filter(pk__in=[m.pk for m in rows]):
            self.assertEqual((message.status, message.attempts, message.lease_owner), (MessageStatus.QUEUED, 0, None))
            self.assertIn("batch deadline", message.status_detail)


@override_settings(DEMO_MODE=False, DELIVERY_BATCH_SIZE=50)
class ReclaimedRowsTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")
        make_sending_ips(("127.0.0.2",))

    def setUp(self):
        flush_redis()
        self.sink = SMTPSink().start()
        self.addCleanup(self.sink.stop)
        self.addCleanup(state.close)
        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=self.sink.port)

    def test_a_row_reclaimed_from_a_dead_lease_is_sent_again_flagged_as_a_possible_duplicate(self):
        [m] = send(self.tenant_a, "a@example.com")
        scheduler.schedule()
        [(batch_id, ids)] = scheduled_batches().items()
        lease.claim(batch_id, ids)  # ... and the worker dies mid-transaction
        later = timezone.now() + timezone.timedelta(seconds=3600)
        self.assertEqual(scheduler.reclaim_stale_leases(later), 1)
        m.refresh_from_db()
        self.assertTrue(m.outcome_unknown)
        make_due()
        run_once()
        m.refresh_from_db()
        [attempt] = DeliveryAttempt.objects.filter(message=m)
        self.assertEqual((m.status, attempt.possible_duplicate, m.outcome_unknown), ("delivered", True, False))
        detail = self.api(self.alice_key).get(f"/api/v1/messages/{m.uuid}/").json()
        self.assertTrue(detail["attempts_log"][0]["possible_duplicate"])


def _tenant_with_route(port):
    tenant = core.create_tenant("durable", "Durable")
    make_sending_domain(tenant, "mail-a.test")
    make_sending_ips(("127.0.0.2",))
    Route.objects.create(tenant=tenant, pattern="*", host="127.0.0.1", port=port)
    return tenant


@override_settings(DEMO_MODE=False, DELIVERY_BATCH_SIZE=100, DELIVERY_BATCH_CONCURRENCY=1, DELIVERY_FLUSH_MESSAGES=5,
                   DELIVERY_WRITE_RETRY_SECONDS=60)  # fmt: skip
class LostDatabaseConnectionTest(TransactionTestCase):
    """The database backend of a worker is terminated mid-batch (a failover, a restart): the outcomes it holds are
    written once the connection is open again, none dropped."""

    def setUp(self):
        if connection.vendor != "postgresql":
            pytest.skip("terminating a backend needs PostgreSQL")
        flush_redis()
        self.sink = SMTPSink(reply_delay=0.02).start()
        self.addCleanup(self.sink.stop)
        self.addCleanup(state.close)
        self.tenant = _tenant_with_route(self.sink.port)

    def test_outcomes_survive_terminated_backends(self):
        rows = send(self.tenant, [f"u{i}@example.com" for i in range(40)])
        scheduler.schedule()
        [(batch_id, ids)] = scheduled_batches().items()
        token, claimed = lease.claim(batch_id, ids)
        pid = connection.connection.info.backend_pid

        def terminate(after):
            self.sink.wait_for_messages(after, timeout=60)
            killer = connections.create_connection("default")
            try:
                with killer.cursor() as cursor:
                    cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            finally:
                killer.close()

        thread = threading.Thread(target=terminate, args=(10,))
        thread.start()
        written = processor.process(token, claimed)
        thread.join()
        self.assertEqual(len(self.sink.messages), 40)
        self.assertEqual(len(written), 40)
        delivered = Message.objects.filter(pk__in=[m.pk for m in rows], status=MessageStatus.DELIVERED).count()
        self.assertEqual(delivered, 40)
        self.assertEqual(DeliveryAttempt.objects.filter(message__in=rows).count(), 40)


def test_a_killed_worker_has_recorded_what_the_receiver_accepted(tmp_path):
    """A real worker process is SIGKILLed while one message waits for its end-of-data reply: the messages the
    receiver accepted before are already recorded (streamed flushes), so after the lease runs out only what was in
    flight is sent again — not the batch."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'durable.sqlite3'}",
        "DELIVERYHUB_VAR_DIR": str(tmp_path),
        "DELIVERYHUB_NODE": "durable-node",
        "DELIVERYHUB_DEMO_MODE": "false",
        "DELIVERYHUB_BATCH_SIZE": "30",
        "DELIVERYHUB_BATCH_CONCURRENCY": "1",
        "DELIVERYHUB_LEASE_SECONDS": "4",
        "DELIVERYHUB_SCHEDULE_LEASE_SECONDS": "3",
    }
    script = Path(__file__).with_name("durability_scenario.py")
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=script.parents[2])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["killed"], result
    assert result["delivered_at_kill"] == result["accepted_at_kill"] == 19, result
    assert result["statuses"] == {"delivered": 30}, result
    assert result["sink_unique"] == 30, result
    assert result["sink_total"] - result["sink_unique"] <= 1, result  # at most the one in flight (connections x 1)
    assert result["possible_duplicates"] >= 1, result
