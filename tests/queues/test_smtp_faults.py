"""The engine against misbehaving receivers (`deliveryhub.testing.faultsmtp.FaultSMTP`): a reply out of step is a
protocol error that defers the message and drops the connection, never a delivery (issue 12 §1).

Every test reconciles what the database recorded with what the receiver really accepted: no message may be recorded
delivered that the receiver did not take."""

import pytest
from django.test import override_settings

from deliveryhub.testing.cases import TenantTestCase
from deliveryhub.testing.faultsmtp import FaultSMTP
from deliveryhub.testing.smtp import SMTPSink
from queues.choices import MessageStatus
from queues.delivery import state
from queues.models import DeliveryAttempt, Message, Route
from queues.testing import make_sending_domain, make_sending_ips

from .helpers import flush_redis, run_once, send

pytestmark = pytest.mark.django_db


@override_settings(DEMO_MODE=False, DELIVERY_BATCH_SIZE=50, SMTP_CONNECT_TIMEOUT=3, SMTP_COMMAND_TIMEOUT=3,
                   SMTP_DATA_TIMEOUT=3)  # fmt: skip
class OutOfStepTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain = make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.node, cls.ips, cls.pool = make_sending_ips(("127.0.0.2",))

    def setUp(self):
        flush_redis()
        self.addCleanup(state.close)

    def sink(self, **options):
        sink = FaultSMTP(**options).start()
        self.addCleanup(sink.stop)
        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=sink.port)
        return sink

    def reconcile(self, sink, rows):
        """(delivered in the database, received by the sink, delivered but never received)."""
        delivered = set(Message.objects.filter(pk__in=[m.pk for m in rows], status=MessageStatus.DELIVERED)
                        .values_list("rcpt_to", flat=True))  # fmt: skip
        received = {rcpt for message in sink.messages for rcpt in message.rcpt_tos}
        return delivered, received, delivered - received

    def assert_deferred_as_protocol_errors(self, rows):
        for message in Message.objects.filter(pk__in=[m.pk for m in rows]):
            self.assertEqual(message.status, MessageStatus.DEFERRED, message.status_detail)
        for attempt in DeliveryAttempt.objects.filter(message__in=rows):
            self.assertEqual(attempt.status, "deferred")
            self.assertIn("out of step", attempt.text)

    def test_a_well_behaved_fault_sink_delivers_over_tls(self):
        """The control: the same sink unscripted takes every message over STARTTLS, pooled on one connection."""
        sink = self.sink(tls=True, pipelining=True)
        rows = send(self.tenant_a, [f"ok{i}@example.com" for i in range(5)])
        with override_settings(DELIVERY_BATCH_CONCURRENCY=1):
            run_once()
        delivered, received, lost = self.reconcile(sink, rows)
        self.assertEqual((len(delivered), lost), (5, set()))
        self.assertEqual(delivered, received)
        self.assertTrue(all(message.tls for message in sink.messages))
        self.assertEqual(sink.connections, 2)  # a verifying try (self-signed: refused), then one for all five

    def test_replies_pipelined_past_starttls_are_never_read_inside_tls(self):
        """`220 Ready` and `250 SIZE 10` in one write: the plaintext after the 220 would be read as the first reply
        inside TLS, and the session would run one reply behind (5 of 5 recorded delivered, none received)."""
        sink = self.sink(tls=True)
        sink.script("STARTTLS", "220 Ready\r\n250 SIZE 10")
        rows = send(self.tenant_a, [f"u{i}@example.com" for i in range(5)])
        run_once()
        delivered, received, lost = self.reconcile(sink, rows)
        self.assertEqual(lost, set())
        self.assertEqual((delivered, received), (set(), set()))
        self.assert_deferred_as_protocol_errors(rows)
        self.assertNotIn("MAIL", " ".join(sink.commands))  # dropped before any transaction

    def test_an_extra_reply_after_rcpt_is_a_protocol_error(self):
        """A 2xx where 354 was expected is not a final answer: the message defers, the connection is dropped (not
        pooled), and the next message goes on a fresh connection."""
        sink = self.sink()
        sink.script("RCPT", ["250 2.1.5 OK\r\n250 2.1.5 OK", "250 2.1.5 OK"])
        rows = send(self.tenant_a, ["first@example.com", "second@example.com"])
        with override_settings(DELIVERY_BATCH_CONCURRENCY=1):
            run_once()
        delivered, received, lost = self.reconcile(sink, rows)
        self.assertEqual(lost, set())
        statuses = dict(Message.objects.filter(pk__in=[m.pk for m in rows]).values_list("rcpt_to", "status"))
        self.assertEqual(statuses, {"first@example.com": "deferred", "second@example.com": "delivered"})
        self.assertEqual(received, {"second@example.com"})
        self.assertEqual(sink.connections, 2)  # the out-of-step connection never went back to the pool

    def test_an_extra_reply_after_rcpt_with_pipelining(self):
        sink = self.sink(pipelining=True)
        sink.script("RCPT", "250 2.1.5 OK\r\n250 2.1.5 OK")
        rows = send(self.tenant_a, [f"p{i}@example.com" for i in range(4)])
        run_once()
        delivered, received, lost = self.reconcile(sink, rows)
        self.assertEqual((lost, delivered), (set(), set()))
        self.assert_deferred_as_protocol_errors(rows)

    def test_an_early_reply_to_the_data_is_a_protocol_error(self):
        """`354` and a `250` in one write: the 250 came before the data was sent, so it cannot be the answer to it."""
        sink = self.sink()
        sink.script("DATA", "354 go ahead\r\n250 2.0.0 OK")
        rows = send(self.tenant_a, ["early@example.com"])
        run_once()
        delivered, received, lost = self.reconcile(sink, rows)
        self.assertEqual(lost, set())
        self.assertEqual(delivered, set())
        self.assert_deferred_as_protocol_errors(rows)

    def test_a_reply_code_that_does_not_answer_the_command(self):
        """354 to MAIL, 221 to RCPT: out of step, deferred, never bounced or delivered."""
        sink = self.sink()
        sink.script("MAIL", ["354 what", "250 2.1.0 OK"])
        sink.script("RCPT", "221 2.0.0 bye")  # (the first message never gets to RCPT)
        rows = send(self.tenant_a, ["a@example.com", "b@example.com"])
        with override_settings(DELIVERY_BATCH_CONCURRENCY=1):
            run_once()
        self.assertEqual(self.reconcile(sink, rows)[2], set())
        self.assert_deferred_as_protocol_errors(rows)


    def test_the_words_of_a_peer_that_is_not_smtp_are_never_echoed(self):
        """A route to an HTTP (or database) port: the attempt says the peer does not speak SMTP, and nothing of what
        it said (issue 19)."""
        self.sink(greeting="HTTP/1.0 200 OK\r\nServer: secret-internal-thing")
        rows = send(self.tenant_a, ["x@example.com"])
        run_once()
        [attempt] = DeliveryAttempt.objects.filter(message__in=rows)
        self.assertEqual(attempt.status, "deferred")
        self.assertIn("not SMTP", attempt.text)
        self.assertNotIn("HTTP", attempt.text)
        self.assertNotIn("secret", attempt.text)
        message = Message.objects.get(pk=rows[0].pk)
        self.assertNotIn("HTTP", message.status_detail)


@override_settings(DEMO_MODE=False)
class ClassifyOnceTest(TenantTestCase):
    """The processor classifies each attempt once, with the destination's provider (issue 11)."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain = make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.node, cls.ips, cls.pool = make_sending_ips(("127.0.0.2",))

    def setUp(self):
        flush_redis()
        self.addCleanup(state.close)
        self.sink = SMTPSink().start()
        self.addCleanup(self.sink.stop)
        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=self.sink.port)

    def test_provider_specific_rules_apply_in_the_engine(self):
        """Gmail's 421 4.7.0 "Try again later, closing connection" is Gmail throttling us (rate_limited, defer+slow);
        the same words from another receiver are a plain temporary failure."""
        self.sink.script("someone@gmail.com", "421 4.7.0 Try again later, closing connection.")
        self.sink.script("someone@example.org", "421 4.7.0 Try again later, closing connection.")
        rows = send(self.tenant_a, ["someone@gmail.com"]) + send(self.tenant_a, ["someone@example.org"])
        run_once()
        got = {a.message.rcpt_to: (a.category, a.action) for a in DeliveryAttempt.objects.filter(message__in=rows)}
        self.assertEqual(got, {"someone@gmail.com": ("rate_limited", "defer+slow"),
                               "someone@example.org": ("transient", "defer")})  # fmt: skip
