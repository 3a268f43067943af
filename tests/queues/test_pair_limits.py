"""Limits of a (source IP, provider) pair as the receiver sees them (issue 12 §5): connection slots held across
workers in Redis (leases that expire with a dead worker), message rates taken at send time (token buckets), the
suspensions providers ask for (Yahoo's TS04: hours), and a source IP that cannot be bound. The receiver is sampled
(`FaultSMTP.peak_connections`, `max_in_window`)."""

import asyncio
import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase
from deliveryhub.testing.faultsmtp import FaultSMTP
from deliveryhub.testing.smtp import SMTPSink
from ippools import services as ip_services
from ippools.choices import IPEventKind, IPState
from ippools.models import IPEvent, ThrottleRule, ThrottleState
from ippools.testing import make_ip
from queues.choices import MessageStatus
from queues.delivery import health, limits, state
from queues.delivery.classifier import classify_result
from queues.delivery.limits import PairGate, Rate
from queues.delivery.mx import Destination
from queues.delivery.senders.smtp import ConnectionPool, OutboundMessage
from queues.models import DeliveryAttempt, Message, Route
from queues.testing import make_sending_domain, make_sending_ips

from .helpers import flush_redis, run_once, send

TSS04 = (
    "421 4.7.0 [TSS04] Messages from 127.0.0.2 temporarily deferred due to unexpected volume or user complaints - "
    "4.16.55.1; see https://postmaster.yahooinc.com/error-codes"
)


def _messages(prefix, count):
    return [OutboundMessage(id=f"{prefix}{i}", mail_from="b@rp.test", rcpt_to=f"{prefix}{i}@x.test",
                            data=b"Subject: x\r\n\r\nx\r\n") for i in range(count)]  # fmt: skip


async def _batch(port, messages, gate, *, source_ip="127.0.0.2", concurrency=10):
    """One batch on a pool of its own: a worker process of its own as far as Redis is concerned."""
    pool = ConnectionPool()
    try:
        return await pool.deliver(
            messages, destination=Destination.for_relay("127.0.0.1", port), source_ip=source_ip,
            ehlo_hostname="mta.test", concurrency=concurrency, gate=gate,
        )  # fmt: skip
    finally:
        await pool.close()


@pytest.fixture
def redis_clean(settings):
    settings.SMTP_CONNECT_TIMEOUT = 3
    settings.SMTP_COMMAND_TIMEOUT = 3
    settings.SMTP_DATA_TIMEOUT = 3
    flush_redis()
    yield
    flush_redis()


def test_connection_slots_hold_across_workers(redis_clean):
    """Two workers, ten lanes each, a rule of 3 connections: the receiver never sees more than 3 at once."""
    gate = PairGate("ip1", "other", max_connections=3)
    with FaultSMTP(reply_delay=0.02) as sink:

        async def two_workers():
            return await asyncio.gather(_batch(sink.port, _messages("a", 30), gate),
                                        _batch(sink.port, _messages("b", 30), gate))  # fmt: skip

        first, second = asyncio.run(two_workers())
        assert len(sink.wait_for_messages(60)) == 60
    assert all(result.accepted for result in {**first, **second}.values())
    assert sink.peak_connections == 3
    assert limits.connection().zcard(gate.connections_key) == 0  # every slot given back


def test_the_slots_of_a_dead_worker_come_back_when_their_leases_expire(redis_clean):
    gate = PairGate("ip1", "other", max_connections=2)
    assert gate.acquire("dead-1") and gate.acquire("dead-2")  # a worker killed while holding two connections
    assert not gate.acquire("live")
    limits.connection().zadd(gate.connections_key, {"dead-1": time.time() - 1, "dead-2": time.time() - 1})
    assert gate.acquire("live")  # expired: nobody had to release them


def test_message_rate_is_taken_at_send_time(redis_clean):
    """A rate of 25 a second with a burst of 5, two workers sending at once: the receiver gets no more than the rate
    plus the burst in any second."""
    gate = PairGate("ip1", "other", rates=(Rate("r1m", 25.0, 5),))
    with FaultSMTP() as sink:

        async def two_workers():
            return await asyncio.gather(_batch(sink.port, _messages("a", 40), gate),
                                        _batch(sink.port, _messages("b", 40), gate))  # fmt: skip

        asyncio.run(two_workers())
        assert len(sink.wait_for_messages(80)) == 80
    assert sink.max_in_window(1.0) <= 25 + 5 + 1  # (+1: the window's two ends)


def test_rates_of_a_rule_come_from_pair_limits(redis_clean, db):
    from ippools.testing import make_node

    ip = make_ip("127.0.0.2", make_node("n1"))
    ThrottleRule.objects.create(ip=ip, max_connections=4, max_per_minute=300, max_per_hour=6000)
    pair = ip_services.pair_limits(ip, "google", connections=100)
    gate = PairGate.for_limits(ip.pk, "google", pair)
    assert gate.max_connections == 4
    assert {(rate.per_second, rate.burst) for rate in gate.rates} == {(5.0, 10), (6000 / 3600, 4)}
    assert PairGate.for_limits(ip.pk, "google", ip_services.pair_limits(ip, "yahoo", connections=100)) is not None
    ThrottleRule.objects.all().delete()
    assert PairGate.for_limits(ip.pk, "google", ip_services.pair_limits(ip, "google", connections=100)) is None


def test_a_source_ip_that_cannot_be_bound_fails_the_batch_at_once(redis_clean):
    with FaultSMTP() as sink:
        results = asyncio.run(_batch(sink.port, _messages("a", 20), None, source_ip="192.0.2.77"))
        assert sink.connections == 0
    assert len(results) == 20
    for result in results.values():
        assert result.source_unusable and "Cannot assign requested address" in result.text
        assert classify_result(result).action == "defer"
    assert health.read([("127.0.0.1", sink.port)]) == {}  # the host did nothing wrong


@override_settings(DEMO_MODE=False)
class PairLimitsEngineTest(TenantTestCase):
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

    @override_settings(DELIVERY_BATCH_CONCURRENCY=1)
    def test_yahoo_ts04_suspends_the_pair_for_hours(self):
        self.sink.script("a@yahoo.com", TSS04)
        self.sink.script("a@gmail.com", "421 4.7.0 Try again later, closing connection.")
        send(self.tenant_a, ["a@yahoo.com"])
        send(self.tenant_a, ["a@gmail.com"])
        before = timezone.now().replace(microsecond=0)  # (suspensions are kept in whole seconds)
        run_once()
        suspended = dict(ThrottleState.objects.values_list("provider", "suspended_until"))
        self.assertGreaterEqual(suspended["yahoo"], before + timedelta(hours=4))
        self.assertLess(suspended["google"], before + timedelta(minutes=5))  # the default suspension

    def test_a_source_ip_that_cannot_be_bound_is_paused_with_an_event_and_the_rows_go_back(self):
        unbindable = make_ip("192.0.2.77", self.node)
        self.pool.members.all().delete()
        ip_services.assign_ip(self.pool, unbindable, weight=100)
        rows = send(self.tenant_a, [f"u{i}@example.com" for i in range(5)])
        run_once()
        unbindable.refresh_from_db()
        self.assertEqual(unbindable.state, IPState.PAUSED)
        event = IPEvent.objects.get(ip=unbindable, kind=IPEventKind.PAUSED)
        self.assertIn("cannot be bound", event.message)
        self.assertTrue(AuditEntry.objects.filter(action="ip.pause", object_id=str(unbindable.pk)).exists())
        messages = Message.objects.filter(pk__in=[m.pk for m in rows])
        self.assertEqual({(m.status, m.attempts) for m in messages}, {(MessageStatus.QUEUED, 0)})
        self.assertFalse(DeliveryAttempt.objects.filter(message__in=rows).exists())
        self.assertIn("cannot be bound", messages[0].status_detail)
        self.assertEqual(self.sink.connections, 0)
