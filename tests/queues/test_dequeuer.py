"""The dequeuer: batching by (node, pool, domain), ids-only payloads, leases, crash and Redis-loss recovery."""

from datetime import timedelta

from django.test import override_settings
from django.utils import timezone

from deliveryhub.testing.cases import TenantTestCase
from queues.choices import EventKind, MessagePriority, MessageStatus
from queues.delivery import dequeuer
from queues.models import Message, MessageEvent
from queues.testing import make_sending_domain, make_sending_ips

from .helpers import flush_redis, scheduled_batches, send


@override_settings(DELIVERY_BATCH_SIZE=2, DEMO_MODE=False)
class DequeuerTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.node, cls.ips, cls.pool = make_sending_ips(("127.0.0.2",))

    def setUp(self):
        flush_redis()
        self.queue = dequeuer.get_delivery_queue(self.node.name)

    def schedule(self, now=None):
        with self.captureOnCommitCallbacks(execute=True):
            return dequeuer.schedule(now)

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
        token, claimed = dequeuer.claim(batch, ids)
        self.assertEqual(sorted(claimed), sorted(ids))
        self.assertEqual(set(Message.objects.values_list("status", flat=True)), {MessageStatus.SENDING})
        _, again = dequeuer.claim(batch, ids)  # RQ delivered the job twice
        self.assertEqual(again, [])
        _, other = dequeuer.claim("q:another", ids)
        self.assertEqual(other, [])

    def test_stale_lease_requeued(self):
        [m] = send(self.tenant_a, ["a@one.example"])
        self.schedule()
        [(batch, ids)] = scheduled_batches().items()
        dequeuer.claim(batch, ids)
        self.assertEqual(dequeuer.reclaim_stale_leases(), 0)  # lease still live
        later = timezone.now() + timedelta(seconds=601)
        self.assertEqual(dequeuer.reclaim_stale_leases(later), 1)
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
