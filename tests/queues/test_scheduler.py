"""The scheduler and the lease: batches by (node, pool, domain), ids-only payloads, claims, crash and Redis loss."""

from datetime import timedelta

from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from deliveryhub import jobs
from deliveryhub.constants import QUEUE_DEFAULT
from deliveryhub.management.commands.scheduler import tick
from deliveryhub.testing.cases import TenantTestCase
from queues.choices import EventKind, MessagePriority, MessageStatus
from queues.delivery import lease, scheduler
from queues.models import Message, MessageEvent
from queues.testing import make_sending_domain, make_sending_ips

from .helpers import flush_redis, scheduled_batches, send


@override_settings(DELIVERY_BATCH_SIZE=2, DEMO_MODE=False)
class SchedulerTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.node, cls.ips, cls.pool = make_sending_ips(("127.0.0.2",))

    def setUp(self):
        flush_redis()
        self.queue = scheduler.get_delivery_queue(self.node.name)

    def schedule(self, now=None):
        with self.captureOnCommitCallbacks(execute=True):
            return scheduler.schedule(now)

    def test_one_job_per_batch_with_ids_only(self):
        send(self.tenant_a, [f"u{i}@one.example" for i in range(5)])
        send(self.tenant_a, ["x@two.example"])
        self.assertEqual(self.schedule(), 4)  # one.example: 2+2+1, two.example: 1
        self.assertEqual(self.queue.count, 4)
        for job in self.queue.get_jobs():
            batch, ids = job.args
            self.assertTrue(batch.startswith("q:"))
            self.assertTrue(all(isinstance(i, int) for i in ids))
            domains = set(Message.objects.filter(id__in=ids).values_list("rcpt_domain", flat=True))
            self.assertEqual(len(domains), 1)
        self.assertEqual(Message.objects.filter(source_ip=self.ips[0]).count(), 6)
        # A second run right away finds nothing new: the rows are leased to their batches.
        self.assertEqual(self.schedule(), 0)

    def test_a_chunk_batches_only_the_rows_it_leased(self):
        """Between the scheduler's scan and its lease another run may lease a row: the batch leaves it out (when the
        lease took every row, the chunk itself is the batch without asking the database again)."""
        taken, free = send(self.tenant_a, ["taken@one.example", "free@one.example"])
        now = timezone.now()
        Message.objects.filter(pk=taken.pk).update(lease_owner="q:other", lease_expires=now + timedelta(seconds=60))
        with self.captureOnCommitCallbacks(execute=True):
            scheduled = scheduler._schedule_chunk(self.tenant_a.pk, None, MessagePriority.TRANSACTIONAL, "other",
                                                 [taken.pk, free.pk], now)  # fmt: skip
        self.assertEqual(scheduled, 1)
        [job] = self.queue.get_jobs()
        self.assertEqual(job.args[1], [free.pk])
        self.assertEqual(Message.objects.get(pk=taken.pk).lease_owner, "q:other")

    def test_redis_loss_rebuilds_from_database(self):
        send(self.tenant_a, ["a@one.example", "b@one.example"])
        self.schedule()
        flush_redis()
        self.assertEqual(self.queue.count, 0)
        later = timezone.now() + timedelta(seconds=121)
        self.assertEqual(self.schedule(later), 1)
        self.assertEqual(self.queue.count, 1)

    def test_claim_is_exclusive(self):
        send(self.tenant_a, ["a@one.example", "b@one.example"])
        self.schedule()
        [(batch, ids)] = scheduled_batches().items()
        token, claimed = lease.claim(batch, ids)
        self.assertEqual(sorted(claimed), sorted(ids))
        self.assertEqual(set(Message.objects.values_list("status", flat=True)), {MessageStatus.SENDING})
        _, again = lease.claim(batch, ids)  # RQ delivered the job twice
        self.assertEqual(again, [])
        _, other = lease.claim("q:another", ids)
        self.assertEqual(other, [])

    def test_stale_lease_requeued(self):
        [m] = send(self.tenant_a, ["a@one.example"])
        self.schedule()
        [(batch, ids)] = scheduled_batches().items()
        lease.claim(batch, ids)
        self.assertEqual(scheduler.reclaim_stale_leases(), 0)  # lease still live
        later = timezone.now() + timedelta(seconds=601)
        self.assertEqual(scheduler.reclaim_stale_leases(later), 1)
        m.refresh_from_db()
        self.assertEqual((m.status, m.lease_owner), (MessageStatus.QUEUED, None))
        self.assertTrue(MessageEvent.objects.filter(message=m, kind=EventKind.REQUEUED).exists())
        # ... and a later run schedules it again.
        self.assertEqual(self.schedule(later), 1)

    def test_expired_past_horizon(self):
        [m] = send(self.tenant_a, ["a@one.example"])
        Message.objects.filter(pk=m.pk).update(created=timezone.now() - timedelta(days=5))
        self.schedule()
        m.refresh_from_db()
        self.assertEqual(m.status, MessageStatus.EXPIRED)

    def test_scheduled_message_horizon_starts_at_send_at(self):
        """A message scheduled further ahead than the retry horizon is not expired before its first try."""
        now = timezone.now()
        send_at = now + timedelta(days=10)
        [m] = send(self.tenant_a, ["a@one.example"], send_at=send_at)
        horizon = timedelta(seconds=settings.DELIVERY_RETRY_HORIZON_SECONDS)
        for when in (now + timedelta(days=5), send_at + timedelta(minutes=1), send_at + horizon - timedelta(minutes=1)):
            with self.subTest(when=when):
                self.assertEqual(scheduler.expire_overdue(when), 0)
        m.refresh_from_db()
        self.assertEqual((m.status, m.send_at), (MessageStatus.QUEUED, send_at))
        self.assertEqual(scheduler.expire_overdue(send_at + horizon + timedelta(seconds=1)), 1)
        m.refresh_from_db()
        self.assertEqual(m.status, MessageStatus.EXPIRED)

    def test_tried_message_horizon_starts_at_first_attempt(self):
        """Once tried, a scheduled message's clock runs from its first attempt (later than send_at)."""
        now = timezone.now()
        [m] = send(self.tenant_a, ["a@one.example"], send_at=now + timedelta(hours=1))
        first = now + timedelta(days=2)
        Message.objects.filter(pk=m.pk).update(status=MessageStatus.DEFERRED, first_attempt_at=first, attempts=1)
        horizon = timedelta(seconds=settings.DELIVERY_RETRY_HORIZON_SECONDS)
        self.assertEqual(scheduler.expire_overdue(first + horizon - timedelta(minutes=1)), 0)
        self.assertEqual(scheduler.expire_overdue(first + horizon + timedelta(seconds=1)), 1)

    def test_past_send_at_means_now(self):
        """A send_at in the past neither starts the retry horizon early nor jumps the queue."""
        [m] = send(self.tenant_a, ["a@one.example"], send_at=timezone.now() - timedelta(days=10))
        self.assertEqual(scheduler.expire_overdue(), 0)
        m.refresh_from_db()
        self.assertEqual((m.status, m.send_at, m.next_attempt_at), (MessageStatus.QUEUED, m.created, m.created))

    @override_settings(DELIVERY_MAX_LEASE_RECLAIMS=3)
    def test_message_that_kills_its_workers_is_held(self):
        """Every lease that runs out counts on the row; at the limit the message is held instead of crash-looping."""
        [m] = send(self.tenant_a, ["a@one.example"])
        now = timezone.now()
        for reclaims in (1, 2, 3):
            self.assertEqual(self.schedule(now), 1)
            [(batch, ids)] = scheduled_batches().items()
            lease.claim(batch, ids, now)  # ... and the worker dies
            now += timedelta(seconds=settings.DELIVERY_LEASE_SECONDS + 1)
            self.assertEqual(scheduler.reclaim_stale_leases(now), 1)
            m.refresh_from_db()
            self.assertEqual(m.lease_reclaims, reclaims)
            self.assertIsNone(m.lease_owner)
        self.assertEqual(m.status, MessageStatus.HELD)
        self.assertIn("3 times", m.status_detail)
        self.assertEqual(MessageEvent.objects.filter(message=m, kind=EventKind.REQUEUED).count(), 2)
        self.assertEqual(MessageEvent.objects.filter(message=m, kind=EventKind.HELD).count(), 1)
        # Held is not ready: neither scheduled again nor expired.
        self.assertEqual(self.schedule(now + timedelta(days=10)), 0)
        m.refresh_from_db()
        self.assertEqual(m.status, MessageStatus.HELD)

    @override_settings(DELIVERY_MAX_LEASE_RECLAIMS=3)
    def test_reclaimed_message_goes_alone(self):
        """Rows whose workers died twice in a row go one per batch: the next death holds only the one that kills
        workers, not its batch-mates. After a single death (a node restarted) rows still share batches: a dead
        node's thousands of rows must not become thousands of one-message jobs."""
        rows = send(self.tenant_a, [f"u{i}@one.example" for i in range(5)])
        Message.objects.filter(pk=rows[1].pk).update(lease_reclaims=2)
        Message.objects.filter(pk=rows[2].pk).update(lease_reclaims=1)
        self.assertEqual(self.schedule(), 3)  # the twice-reclaimed row alone, the other four in batches of two
        batches = list(scheduled_batches().values())
        self.assertIn([rows[1].pk], batches)
        self.assertEqual(sorted(len(ids) for ids in batches), [1, 2, 2])
        self.assertEqual(sorted(pk for ids in batches for pk in ids), sorted(m.pk for m in rows))

    @override_settings(DELIVERY_MAX_LEASE_RECLAIMS=3)
    def test_released_message_gets_a_fresh_horizon_and_stays_alone(self):
        """Released days after it was held, a message is tried, not expired on the spot; it goes alone, and one more
        dead worker holds it again."""
        from queues.services import release_message

        [m] = send(self.tenant_a, ["a@one.example"])
        Message.objects.filter(pk=m.pk).update(status=MessageStatus.HELD, lease_reclaims=3,
                                               created=timezone.now() - timedelta(days=6))  # fmt: skip
        release_message(m)
        m.refresh_from_db()
        self.assertEqual((m.status, m.lease_reclaims), (MessageStatus.QUEUED, 2))
        self.assertIsNotNone(m.released_at)
        self.assertEqual(scheduler.expire_overdue(), 0)
        horizon = timedelta(seconds=settings.DELIVERY_RETRY_HORIZON_SECONDS)
        self.assertEqual(scheduler.expire_overdue(m.released_at + horizon - timedelta(minutes=1)), 0)
        self.assertEqual(scheduler.expire_overdue(m.released_at + horizon + timedelta(seconds=1)), 1)

    def test_not_due_and_suppressed_not_scheduled(self):
        send(self.tenant_a, ["a@one.example"], send_at=timezone.now() + timedelta(hours=1))
        Message.objects.create  # noqa: B018 - keep the import list honest
        self.assertEqual(self.schedule(), 0)

    @override_settings(DELIVERY_SCAN_LIMIT=1)
    def test_transactional_before_marketing(self):
        send(self.tenant_a, ["m@one.example"], priority=MessagePriority.MARKETING)
        send(self.tenant_a, ["t@two.example"])
        self.schedule()
        [(_, ids)] = scheduled_batches().items()
        self.assertEqual(Message.objects.get(pk=ids[0]).rcpt_to, "t@two.example")

    def test_no_capacity_waits(self):
        from ippools.services import pause_ip

        pause_ip(self.ips[0], reason="test")
        [m] = send(self.tenant_a, ["a@one.example"])
        self.assertEqual(self.schedule(), 0)
        m.refresh_from_db()
        self.assertEqual(m.status, MessageStatus.QUEUED)
        self.assertGreater(m.next_attempt_at, timezone.now())
        self.assertIn("capacity", m.status_detail)


@override_settings(DEMO_MODE=False)
class SchedulerProcessTest(TenantTestCase):
    """The delivery scheduler runs in `manage.py scheduler` itself (issue 12 §4): it never waits in a queue behind
    delivery batches — a tick schedules ready mail with no worker running at all."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")
        make_sending_ips(("127.0.0.2",))

    def test_a_scheduler_tick_schedules_deliveries_itself(self):
        flush_redis()
        send(self.tenant_a, ["a@one.example"])
        registry = jobs.discover_system_jobs()
        self.assertTrue(registry["queues.schedule_deliveries"].inline)
        with self.captureOnCommitCallbacks(execute=True):
            ran = tick({"queues.schedule_deliveries": registry["queues.schedule_deliveries"]})
        self.assertEqual(ran, ["queues.schedule_deliveries"])
        self.assertEqual(jobs.get_queue(QUEUE_DEFAULT).count, 0)  # nothing waits for a worker
        self.assertEqual(len(scheduled_batches()), 1)
