"""The engine against misbehaving receivers (`deliveryhub.testing.faultsmtp.FaultSMTP`): a reply out of step is a
protocol error that defers the message and drops the connection, never a delivery (issue 12 §1).

Every test reconciles what the database recorded with what the receiver really accepted: no message may be recorded
delivered that the receiver did not take."""

import asyncio
import time

import pytest
from django.test import override_settings
from django.utils import timezone

from deliveryhub.testing.cases import TenantTestCase
from deliveryhub.testing.faultsmtp import SILENT, FaultSMTP
from deliveryhub.testing.smtp import SMTPSink
from queues.choices import MessageStatus
from queues.delivery import health, state
from queues.delivery.classifier import classify_result
from queues.delivery.mx import Destination
from queues.delivery.senders.smtp import ConnectionPool, OutboundMessage
from queues.models import DeliveryAttempt, Message, Route
from queues.testing import make_sending_domain, make_sending_ips

from .helpers import flush_redis, make_due, run_once, send


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


# -- the circuit breaker (issue 12 §4) -------------------------------------------------------------------------------


def _deliver(port, recipients, *, concurrency=10):
    """One batch on a fresh pool (as another worker process would be), results classified."""

    async def scenario():
        pool = ConnectionPool()
        try:
            results = await pool.deliver(
                [OutboundMessage(id=r, mail_from="b@rp.test", rcpt_to=r, data=b"Subject: x\r\n\r\nx\r\n")
                 for r in recipients],
                destination=Destination.for_relay("127.0.0.1", port), source_ip="127.0.0.2",
                ehlo_hostname="mta.test", concurrency=concurrency,
            )  # fmt: skip
        finally:
            await pool.close()
        return {key: (result, classify_result(result)) for key, result in results.items()}

    return asyncio.run(scenario())


@pytest.fixture
def breaker(settings):
    settings.SMTP_CONNECT_TIMEOUT = 0.5
    settings.SMTP_COMMAND_TIMEOUT = 3
    settings.SMTP_DATA_TIMEOUT = 3
    settings.SMTP_BREAKER_SECONDS = 300
    health.clear()
    yield
    health.clear()


@pytest.mark.parametrize("greeting", [SILENT, "421 4.3.2 Service not available, closing transmission channel"])
def test_a_tarpit_or_a_421_greeting_gets_one_connection_then_none(breaker, greeting):
    """A host that never greets (or answers 421 at the greeting) gets one connection from a batch of ten lanes, not
    ten; the next batch, from any worker, does not connect at all and defers with the reason and when to retry."""
    with FaultSMTP(greeting=greeting) as sink:
        first = _deliver(sink.port, [f"u{i}@x.test" for i in range(10)])
        assert {verdict.action for _, verdict in first.values()} == {"defer"}
        assert sink.connections == 1
        second = _deliver(sink.port, [f"v{i}@x.test" for i in range(10)])
        assert sink.connections == 1
    for result, verdict in second.values():
        assert "marked down until" in result.text and "not tried" in result.text
        assert (verdict.category, verdict.action) == ("connection_error", "defer")
        assert 250 < verdict.retry_after <= 300


def test_a_half_open_host_that_answers_closes_the_breaker(breaker, settings):
    settings.SMTP_BREAKER_SECONDS = 0.2
    with FaultSMTP(greeting="421 4.3.2 busy") as sink:
        _deliver(sink.port, ["a@x.test"])
        [state_] = health.read([("127.0.0.1", sink.port)]).values()
        assert state_.failures == 1
        sink.script("GREETING", "220 fault.test ESMTP")
        time.sleep(max(0.0, state_.until - time.time()))  # the breaker's time passes: half-open
        results = _deliver(sink.port, [f"b{i}@x.test" for i in range(5)])
        assert {verdict.action for _, verdict in results.values()} == {"deliver"}
        assert len(sink.messages) == 5
    assert health.read([("127.0.0.1", sink.port)]) == {}


def test_failures_in_a_row_lengthen_the_breaker_and_one_incident_counts_once(breaker, settings):
    settings.SMTP_BREAKER_SECONDS = 10
    settings.SMTP_BREAKER_MAX_SECONDS = 25
    first = health.mark_down("mx.test", 25, "timed out")
    again = health.mark_down("mx.test", 25, "timed out")  # another lane of the same incident
    assert (first.failures, again.failures, again.until) == (1, 1, first.until)
    key = health.host_key("mx.test", 25)
    for failures, wait in ((2, 20), (3, 25)):  # doubling, bounded
        health.connection().hset(key, "until", 0)  # as if the breaker's time had passed
        before = time.time()
        state_ = health.mark_down("mx.test", 25, "timed out")
        assert state_.failures == failures
        assert before + wait - 0.001 <= state_.until <= time.time() + wait + 0.001


def test_other_hosts_of_the_destination_are_used_while_one_is_down(breaker):
    with FaultSMTP(greeting=SILENT) as tarpit, FaultSMTP() as good:
        health.mark_down("127.0.0.1", tarpit.port, "timed out")

        async def scenario():
            pool = ConnectionPool()
            destination = Destination(domain="x.test", hosts=[("127.0.0.1", tarpit.port), ("127.0.0.1", good.port)])
            try:
                return await pool.deliver(
                    [OutboundMessage(id=1, mail_from="b@rp.test", rcpt_to="a@x.test", data=b"x\r\n")],
                    destination=destination, source_ip="127.0.0.2", ehlo_hostname="mta.test",
                )  # fmt: skip
            finally:
                await pool.close()

        [result] = asyncio.run(scenario()).values()
        assert result.accepted
        assert (tarpit.connections, good.connections) == (0, 1)


@override_settings(DEMO_MODE=False, SMTP_CONNECT_TIMEOUT=0.5, SMTP_BREAKER_SECONDS=300)
class BreakerEngineTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain = make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.node, cls.ips, cls.pool = make_sending_ips(("127.0.0.2",))

    def setUp(self):
        flush_redis()
        self.addCleanup(state.close)

    def test_the_second_batch_to_a_tarpit_does_not_connect(self):
        sink = FaultSMTP(greeting=SILENT).start()
        self.addCleanup(sink.stop)
        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=sink.port)
        rows = send(self.tenant_a, [f"t{i}@example.com" for i in range(20)])
        run_once()
        self.assertEqual(sink.connections, 1)
        state.close()  # a fresh worker process: only Redis remembers
        make_due()
        run_once()
        self.assertEqual(sink.connections, 1)
        messages = Message.objects.filter(pk__in=[m.pk for m in rows])
        self.assertEqual({m.status for m in messages}, {MessageStatus.DEFERRED})
        self.assertEqual({m.attempts for m in messages}, {2})
        last = DeliveryAttempt.objects.filter(message__in=rows).order_by("-time").first()
        self.assertIn("marked down until", last.text)
        self.assertTrue(all((m.next_attempt_at - timezone.now()).total_seconds() > 250 for m in messages))
