"""The processor against scripted aiosmtpd sinks: outcomes, retries, bounces, suppressions, poison messages."""

from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from deliveryhub.testing.cases import TenantTestCase
from deliveryhub.testing.smtp import SMTPSink
from queues.choices import EventKind, MessageStatus
from queues.delivery import lease, processor, scheduler, state
from queues.models import BounceRule, DeliveryAttempt, Message, MessageEvent, Route, Suppression
from queues.testing import make_sending_domain, make_sending_ips

from .helpers import flush_redis, make_due, run_once, scheduled_batches, send


@override_settings(DEMO_MODE=False, DELIVERY_BATCH_SIZE=50)
class ProcessorTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain = make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.node, cls.ips, cls.pool = make_sending_ips(("127.0.0.2",))

    def setUp(self):
        flush_redis()
        self.sink = SMTPSink().start()
        self.addCleanup(self.sink.stop)
        self.addCleanup(state.close)
        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=self.sink.port)

    def status(self, message):
        message.refresh_from_db()
        return message.status

    def test_delivered_from_the_pool_ip_with_attempt(self):
        [m] = send(self.tenant_a, "ok@example.com")
        run_once()
        self.assertEqual(self.status(m), MessageStatus.DELIVERED)
        [received] = self.sink.messages
        self.assertEqual(received.peer[0], "127.0.0.2")
        self.assertEqual(received.mail_from, m.mail_from)
        self.assertEqual(received.rcpt_tos, ["ok@example.com"])
        self.assertEqual(received.ehlo, "mta-127-0-0-2.example.test")
        self.assertIn(b"DKIM-Signature:", received.data)
        attempt = DeliveryAttempt.objects.get(message=m)
        self.assertEqual((attempt.status, attempt.code, attempt.source_ip), ("delivered", 250, "127.0.0.2"))
        self.assertEqual(m.attempts, 1)
        self.assertIsNotNone(m.delivered_at)
        event = MessageEvent.objects.get(message=m, kind=EventKind.DELIVERED)
        expected = {"code": 250, "enhanced": "2.0.0", "mx_host": "127.0.0.1", "source_ip": "127.0.0.2"}
        self.assertEqual(event.data, expected)
        self.assertEqual((event.time, attempt.time), (m.last_attempt_at, m.last_attempt_at))

    def test_a_batch_with_mixed_replies_records_each_attempt_with_its_own_values(self):
        """finish() converts each distinct value once per batch: rows that share values and rows that do not must
        each keep their own (reply, code, status, event data)."""
        rows = send(self.tenant_a, ["ok1@example.com", "full@example.com", "ok2@example.com", "gone@example.com"])
        self.sink.script_data("full@example.com", "552 5.2.2 Mailbox full")
        self.sink.script("gone@example.com", "550 5.1.1 No such user")
        run_once()
        attempts = {a.message.rcpt_to: a for a in DeliveryAttempt.objects.filter(message__in=rows)}
        got = {rcpt: (a.status, a.code, a.enhanced_code, a.node) for rcpt, a in attempts.items()}
        self.assertEqual(got, {
            "ok1@example.com": ("delivered", 250, "2.0.0", settings.NODE_NAME),
            "ok2@example.com": ("delivered", 250, "2.0.0", settings.NODE_NAME),
            "full@example.com": ("deferred", 552, "5.2.2", settings.NODE_NAME),
            "gone@example.com": ("bounced", 550, "5.1.1", settings.NODE_NAME),
        })  # fmt: skip
        self.assertIn("Mailbox full", attempts["full@example.com"].text)
        replied = MessageEvent.objects.filter(message__in=rows, data__has_key="code")
        events = {e.message.rcpt_to: e.data["code"] for e in replied}
        self.assertEqual(events, {"ok1@example.com": 250, "ok2@example.com": 250, "full@example.com": 552,
                                  "gone@example.com": 550})  # fmt: skip

    def test_outcomes_are_written_only_where_this_worker_still_holds_the_lease(self):
        """A lease that ran out mid-batch was handed to another worker: that row's outcome is not ours to write (it
        was sent twice: the documented duplicate bound); the other rows of the batch are written as usual."""
        kept, lost = send(self.tenant_a, ["kept@example.com", "lost@example.com"])
        scheduler.schedule()
        [(batch, ids)] = scheduled_batches().items()
        token, claimed = lease.claim(batch, ids)
        Message.objects.filter(pk=lost.pk).update(lease_owner="w:another-worker")
        written = processor.process(token, claimed)
        self.assertEqual([m.pk for m in written], [kept.pk])
        self.assertEqual(len(self.sink.messages), 2)
        kept.refresh_from_db()
        lost.refresh_from_db()
        self.assertEqual((kept.status, kept.attempts, kept.lease_owner), (MessageStatus.DELIVERED, 1, None))
        self.assertEqual((lost.status, lost.attempts, lost.lease_owner), (MessageStatus.SENDING, 0, "w:another-worker"))
        self.assertFalse(DeliveryAttempt.objects.filter(message=lost).exists())
        self.assertFalse(MessageEvent.objects.filter(message=lost, kind=EventKind.DELIVERED).exists())
        self.assertTrue(DeliveryAttempt.objects.filter(message=kept).exists())

    def test_a_batch_that_finishes_clears_the_count_of_dead_workers(self):
        """lease_reclaims counts workers that died in a row on the message: once a worker gets through with it, the
        count starts again (and the row goes back to sharing batches)."""
        rows = send(self.tenant_a, ["ok@example.com", "grey@example.com"])
        self.sink.script("grey@example.com", "450 4.2.0 Greylisted, try again later")
        Message.objects.filter(pk__in=[m.pk for m in rows]).update(lease_reclaims=2)
        run_once()
        self.assertEqual([(self.status(m), m.lease_reclaims) for m in rows],
                         [(MessageStatus.DELIVERED, 0), (MessageStatus.DEFERRED, 0)])  # fmt: skip

    def test_greylisting_then_delivered(self):
        self.sink.script("grey@example.com", ["450 4.2.0 Greylisted, try again later", "250 2.1.5 OK"])
        [m] = send(self.tenant_a, "grey@example.com")
        run_once()
        self.assertEqual(self.status(m), MessageStatus.DEFERRED)
        self.assertGreater(m.next_attempt_at, timezone.now())
        run_once()  # not due yet: nothing happens
        self.assertEqual(self.status(m), MessageStatus.DEFERRED)
        make_due()
        run_once()
        self.assertEqual(self.status(m), MessageStatus.DELIVERED)
        self.assertEqual(m.attempts, 2)
        self.assertEqual(list(m.delivery_attempts.values_list("code", flat=True)), [450, 250])
        self.assertEqual(len(self.sink.messages), 1)

    def test_invalid_recipient_bounces_and_suppresses(self):
        self.sink.script(
            "nobody@example.com", "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"
        )
        [m] = send(self.tenant_a, "nobody@example.com")
        run_once()
        self.assertEqual(self.status(m), MessageStatus.BOUNCED)
        self.assertTrue(Suppression.objects.filter(tenant=self.tenant_a, address="nobody@example.com").exists())
        # The next message to that address is never sent.
        [again] = send(self.tenant_a, "nobody@example.com")
        self.assertEqual(self.status(again), MessageStatus.SUPPRESSED)

    def test_policy_block_bounces_without_suppressing(self):
        self.sink.script("blocked@example.com", "550 5.7.1 Message rejected as spam by Content Filtering.")
        [m] = send(self.tenant_a, "blocked@example.com")
        run_once()
        self.assertEqual(self.status(m), MessageStatus.BOUNCED)
        self.assertFalse(Suppression.objects.exists())
        self.assertEqual(m.delivery_attempts.get().category, "spam_content")

    def test_mailbox_full_defers(self):
        self.sink.script_data("full@example.com", "552 5.2.2 Mailbox full")
        [m] = send(self.tenant_a, "full@example.com")
        run_once()
        self.assertEqual(self.status(m), MessageStatus.DEFERRED)
        self.assertEqual(m.delivery_attempts.get().category, "mailbox_full")

    def test_rate_limited_defers(self):
        self.sink.script("rl@example.com", "421 4.7.0 Our system has detected an unusual rate of unsolicited mail "
                         "originating from your IP address. Try again in 600 seconds")  # fmt: skip
        [m] = send(self.tenant_a, "rl@example.com")
        run_once()
        self.assertEqual(self.status(m), MessageStatus.DEFERRED)
        attempt = m.delivery_attempts.get()
        self.assertEqual((attempt.category, attempt.action), ("rate_limited", "defer+slow"))
        self.assertGreaterEqual((m.next_attempt_at - timezone.now()).total_seconds(), 590)

    @override_settings(DELIVERY_RETRY_JITTER=0)
    def test_backoff_grows_from_5_minutes_to_2_hours_then_expires_after_4_days(self):
        from datetime import timedelta

        self.sink.script("slow@example.com", "451 4.3.0 Temporary local problem")
        [m] = send(self.tenant_a, "slow@example.com")
        delays = []
        for _ in range(7):
            make_due()
            before = timezone.now()
            run_once()
            m.refresh_from_db()
            self.assertEqual(m.status, MessageStatus.DEFERRED)
            delays.append(round((m.next_attempt_at - before).total_seconds() / 60))
        self.assertEqual(delays, [5, 10, 20, 40, 80, 120, 120])
        # The try after the 4-day horizon that still fails ends the message as expired.
        Message.objects.filter(pk=m.pk).update(first_attempt_at=timezone.now() - timedelta(days=4, minutes=1))
        make_due()
        run_once()
        self.assertEqual(self.status(m), MessageStatus.EXPIRED)
        self.assertTrue(MessageEvent.objects.filter(message=m, kind=EventKind.EXPIRED).exists())
        self.assertEqual(self.sink.messages, [])

    def test_mixed_batch_each_outcome_recorded(self):
        self.sink.script("bad@example.com", "550 5.1.1 User unknown")
        messages = send(self.tenant_a, ["a@example.com", "bad@example.com", "c@example.com"])
        run_once()
        states = {m.rcpt_to: self.status(m) for m in messages}
        self.assertEqual(
            states, {"a@example.com": "delivered", "bad@example.com": "bounced", "c@example.com": "delivered"}
        )
        self.assertEqual(len(self.sink.messages), 2)

    def test_suppressed_after_intake_is_not_sent(self):
        [m] = send(self.tenant_a, "late@example.com")
        Suppression.objects.create(tenant=self.tenant_a, address="late@example.com")
        run_once()
        self.assertEqual(self.status(m), MessageStatus.SUPPRESSED)
        self.assertEqual(self.sink.messages, [])

    def test_connection_refused_defers_with_error(self):
        Route.objects.update(port=1)  # nothing listens there
        [m] = send(self.tenant_a, "x@example.com")
        run_once()
        self.assertEqual(self.status(m), MessageStatus.DEFERRED)
        self.assertEqual(m.attempts, 1)

    def test_admin_rule_takes_precedence(self):
        BounceRule.objects.create(tenant=self.tenant_a, code="550", enhanced="5.7.1", text="custom block",
                                  category="policy", action="defer")  # fmt: skip
        self.sink.script("x@example.com", "550 5.7.1 custom block")
        [m] = send(self.tenant_a, "x@example.com")
        run_once()
        self.assertEqual(self.status(m), MessageStatus.DEFERRED)

    def test_poison_message_is_deferred_and_batch_goes_on(self):
        from domains.models import DkimKey

        other = make_sending_domain(self.tenant_a, "broken.test")
        DkimKey.objects.filter(domain=other).update(private_key=DkimKey._meta.get_field("private_key").get_prep_value(
            "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"))  # fmt: skip
        [good] = send(self.tenant_a, "a@example.com")
        [bad] = send(self.tenant_a, "b@example.com", sender="x@broken.test")
        run_once()
        self.assertEqual(self.status(good), MessageStatus.DELIVERED)
        self.assertEqual(self.status(bad), MessageStatus.DEFERRED)
        self.assertIn("Processing error", bad.status_detail)
        self.assertTrue(MessageEvent.objects.filter(message=bad, kind=EventKind.ERROR).exists())
        self.assertIsNone(bad.lease_owner)

    def test_ip_of_another_node_is_released(self):
        from ippools.testing import make_ip, make_node

        other_node = make_node("elsewhere")
        ip = make_ip("127.0.0.9", other_node)
        [m] = send(self.tenant_a, "x@example.com")
        Message.objects.filter(pk=m.pk).update(source_ip=ip, lease_owner="q:forced", lease_expires=timezone.now()
                                               + timezone.timedelta(seconds=60))  # fmt: skip
        from queues.delivery.worker import deliver_batch

        deliver_batch("q:forced", [m.pk])
        self.assertEqual(self.status(m), MessageStatus.QUEUED)
        self.assertEqual(m.attempts, 0)
        self.assertEqual(self.sink.messages, [])


class LoadTest(TenantTestCase):
    """`load()` reads each content of a batch once, however many recipients share it (a body can be 25 MB)."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.node, cls.ips, cls.pool = make_sending_ips(("127.0.0.2",))

    def load(self, messages):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from queues.delivery import processor

        Message.objects.update(source_ip=self.ips[0])
        # Messages, their contents, their sending domains, their source IPs (with nodes): however large the batch.
        with self.assertNumQueries(4), CaptureQueriesContext(connection) as queries:
            loaded = processor.load([m.pk for m in messages])
        content_reads = [q["sql"] for q in queries if '"raw"' in q["sql"]]
        self.assertEqual(len(content_reads), 1, content_reads)
        with self.assertNumQueries(0):
            for message in loaded:
                bytes(message.content.raw), message.sending_domain.name, message.source_ip.node.name
        return loaded

    def test_one_content_instance_per_batch(self):
        rows = send(self.tenant_a, [f"u{i}@example.com" for i in range(30)])
        loaded = self.load(rows)
        self.assertEqual(len(loaded), 30)
        self.assertTrue(all(m.content is loaded[0].content for m in loaded))
        self.assertEqual(loaded[0].content.pk, rows[0].content_id)

    def test_two_contents_two_instances(self):
        first = send(self.tenant_a, ["a@example.com", "b@example.com"], subject="First")
        second = send(self.tenant_a, ["c@example.com", "d@example.com", "e@example.com"], subject="Second")
        loaded = self.load(first + second)
        contents = {id(m.content): m.content for m in loaded}
        self.assertEqual(len(contents), 2)
        for message in loaded:
            self.assertEqual(message.content.pk, message.content_id)
            expected = "First" if message.rcpt_to in ("a@example.com", "b@example.com") else "Second"
            self.assertEqual(message.content.subject, expected)
