"""Throttling in the engine, against scripted aiosmtpd sinks: rate-limit replies (421 4.7.0, 450 4.7.28) slow and
suspend the (source IP, provider) pair while other providers' mail from the same IP goes on, success restores it;
throttle rules bound connections and messages per connection; the scheduler judges the provider by MX."""

import time

from django.test import override_settings
from django.utils import timezone

from deliveryhub.testing.cases import TenantTestCase
from deliveryhub.testing.dns import DNSServer
from deliveryhub.testing.smtp import SMTPSink
from ippools import services as ip_services
from ippools.choices import IPEventKind
from ippools.models import IPEvent, ThrottleRule, ThrottleState
from queues.choices import MessageStatus
from queues.delivery import destination, mx, scheduler, state
from queues.delivery.destination import destination_for, tenant_routes
from queues.models import DeliveryAttempt, Message, Route
from queues.testing import make_sending_domain, make_sending_ips

from .helpers import flush_redis, make_due, run_once, send

GMAIL_RATE = (
    "421 4.7.0 Our system has detected an unusual rate of unsolicited mail originating from your IP address. To "
    "protect our users from spam, mail sent from your IP address has been temporarily rate limited."
)
SUSPEND = 2  # seconds: THROTTLE_SUSPEND_SECONDS in these tests


@override_settings(DEMO_MODE=False, THROTTLE_SUSPEND_SECONDS=SUSPEND, THROTTLE_RESTORE_AFTER=3)
class AdaptiveThrottlingTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain = make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.node, cls.ips, cls.pool = make_sending_ips(("127.0.0.2",))
        cls.ip = cls.ips[0]

    def setUp(self):
        flush_redis()
        self.sink = SMTPSink().start()
        self.addCleanup(self.sink.stop)
        self.addCleanup(state.close)
        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=self.sink.port)

    def received(self, domain):
        return sorted(r for m in self.sink.messages for r in m.rcpt_tos if r.endswith("@" + domain))

    @override_settings(DELIVERY_BATCH_CONCURRENCY=1)
    def test_421_slows_and_suspends_the_pair_other_providers_continue_success_restores(self):
        self.sink.script("rl@gmail.com", [GMAIL_RATE, "250 2.1.5 OK"])
        [limited, *waiting] = send(self.tenant_a, ["rl@gmail.com", "a@gmail.com", "b@gmail.com"])
        send(self.tenant_a, ["x@example.com", "y@example.com"])
        run_once()

        limited.refresh_from_db()
        self.assertEqual(limited.status, MessageStatus.DEFERRED)
        attempt = limited.delivery_attempts.get()
        self.assertEqual((attempt.code, attempt.category, attempt.action), (421, "rate_limited", "defer+slow"))
        # The batch stopped at the rate limit: the rest was given back untried, until the suspension ends.
        pair = ThrottleState.objects.get(ip=self.ip, provider="google")
        self.assertEqual(pair.level, 1)
        self.assertGreater(pair.suspended_until, timezone.now())
        for message in waiting:
            message.refresh_from_db()
            self.assertEqual((message.status, message.attempts), (MessageStatus.QUEUED, 0))
            self.assertIn("Rate limited by Google", message.status_detail)
            self.assertEqual(message.next_attempt_at, pair.suspended_until)
        self.assertEqual(self.received("gmail.com"), [])
        # Mail from the same IP to another provider went out.
        self.assertEqual(self.received("example.com"), ["x@example.com", "y@example.com"])
        self.assertEqual({m.peer[0] for m in self.sink.messages}, {"127.0.0.2"})
        event = IPEvent.objects.get(ip=self.ip, kind=IPEventKind.THROTTLE_SLOWED)
        self.assertEqual(event.data["provider"], "google")
        self.assertIn("421 4.7.0", event.data["reply"])

        # While suspended, the scheduler holds Google mail and keeps sending the rest.
        send(self.tenant_a, ["z@gmail.com", "w@example.com"])
        make_due()
        run_once()
        self.assertEqual(self.received("gmail.com"), [])
        self.assertIn("w@example.com", self.received("example.com"))
        held = Message.objects.get(rcpt_to="z@gmail.com")
        self.assertIn("Rate limited by Google until", held.status_detail)
        self.assertEqual(held.status, MessageStatus.QUEUED)

        # After the suspension: sent at the slower pace, and enough deliveries restore full speed.
        time.sleep(SUSPEND + 0.1)
        make_due()
        run_once()
        self.assertEqual(
            self.received("gmail.com"), ["a@gmail.com", "b@gmail.com", "rl@gmail.com", "z@gmail.com"]
        )
        self.assertEqual(Message.objects.exclude(status=MessageStatus.DELIVERED).count(), 0)
        self.assertEqual(ThrottleState.objects.get(ip=self.ip, provider="google").level, 0)
        self.assertTrue(IPEvent.objects.filter(ip=self.ip, kind=IPEventKind.THROTTLE_RESTORED).exists())
        self.assertEqual(Message.objects.filter(rcpt_domain="example.com", status="delivered").count(), 3)

    def test_450_4_7_28_rate_limit_slows_google_only(self):
        self.sink.script("dk@gmail.com", "450 4.7.28 Please retry later.")
        send(self.tenant_a, ["dk@gmail.com", "ok@example.com"])
        run_once()
        attempt = DeliveryAttempt.objects.get(message__rcpt_to="dk@gmail.com")
        self.assertEqual((attempt.code, attempt.enhanced_code, attempt.action), (450, "4.7.28", "defer+slow"))
        self.assertEqual(ip_services.pair_state(self.ip.pk, "google").level, 1)
        self.assertEqual(ip_services.pair_state(self.ip.pk, "other").level, 0)
        self.assertEqual(self.received("example.com"), ["ok@example.com"])
        self.assertFalse(ThrottleState.objects.filter(provider="other").exists())

    def test_slowed_pair_sends_with_half_the_connections(self):
        ip_services.rate_limited(self.ip, "other", now=timezone.now() - timezone.timedelta(seconds=SUSPEND + 1))
        with override_settings(DELIVERY_BATCH_CONCURRENCY=4):
            limits = ip_services.pair_limits(self.ip, "other", connections=4)
            self.assertEqual(limits.connections, 2)
            send(self.tenant_a, [f"u{i}@example.com" for i in range(8)])
            run_once()
        self.assertEqual(len(self.sink.messages), 8)
        self.assertEqual(len({m.peer for m in self.sink.messages}), 2)  # two connections, not four

    def test_throttle_rule_bounds_connections_and_messages_per_connection(self):
        ThrottleRule.objects.create(pool=self.pool, max_connections=2, max_messages_per_connection=3)
        send(self.tenant_a, [f"u{i}@example.com" for i in range(12)])
        run_once()
        self.assertEqual(len(self.sink.messages), 12)
        self.assertEqual(len({m.peer for m in self.sink.messages}), 4)  # 12 messages, 3 per connection
        self.assertEqual(state.get_pool().connections_opened, 4)

    def test_throttle_rule_rate_holds_the_rest_for_the_next_minute(self):
        ThrottleRule.objects.create(pool=self.pool, max_per_minute=3)
        send(self.tenant_a, [f"u{i}@example.com" for i in range(5)])
        run_once()
        run_once()  # the next tick finds the pair at its rate for this minute
        self.assertEqual(len(self.sink.messages), 3)
        waiting = Message.objects.exclude(status=MessageStatus.DELIVERED)
        self.assertEqual(waiting.count(), 2)
        self.assertTrue(all("throttle rules' rate" in m.status_detail for m in waiting))
        self.assertTrue(all(m.next_attempt_at > timezone.now() for m in waiting))


@override_settings(DEMO_MODE=False)
class ProviderByMXTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.node, cls.ips, cls.pool = make_sending_ips(("127.0.0.2",))

    def setUp(self):
        flush_redis()
        mx.clear_cache()
        destination.clear_cache()
        self.dns = DNSServer().start()
        self.addCleanup(self.dns.stop)
        self.addCleanup(mx.clear_cache)
        self.dns.set_zone("workspace.test", "@ 300 IN MX 1 aspmx.l.google.com.\n@ 300 IN MX 5 alt1.aspmx.l.google.com.")
        self.dns.set_zone("google.com", "aspmx.l 300 IN A 192.0.2.25\nalt1.aspmx.l 300 IN A 192.0.2.26")
        self.dns.set_zone("plain.test", "@ 300 IN MX 10 mx.plain.test.\nmx 300 IN A 192.0.2.30")
        self.dns.set_zone("broken.test", "@ 300 IN MX 10 mx.broken.test.")
        self.dns.servfail("broken.test")

    def test_workspace_domain_counts_against_google(self):
        send(self.tenant_a, ["a@workspace.test", "b@workspace.test", "c@plain.test", "d@gmail.com", "e@broken.test"])
        with override_settings(DNS_RESOLVERS=[self.dns.address]), self.captureOnCommitCallbacks(execute=True):
            self.assertEqual(scheduler.schedule(), 4)
            self.assertEqual(
                destination_for(self.tenant_a.pk, "workspace.test", tenant_routes(self.tenant_a.pk)).provider, "google"
            )
            self.assertEqual(
                destination_for(self.tenant_a.pk, "broken.test", tenant_routes(self.tenant_a.pk)).provider, "other"
            )  # DNS failed: by name
        usage = ip_services.usage_today(self.ips[0])
        self.assertEqual((usage["google"], usage["other"], usage["total"]), (3, 2, 5))

    def test_routed_domains_are_judged_by_name_without_dns(self):
        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=2525)
        with override_settings(DNS_RESOLVERS=[self.dns.address]):
            self.assertEqual(
                destination_for(self.tenant_a.pk, "workspace.test", tenant_routes(self.tenant_a.pk)).provider, "other"
            )
            self.assertEqual(
                destination_for(self.tenant_a.pk, "hotmail.co.uk", tenant_routes(self.tenant_a.pk)).provider,
                "microsoft",
            )
        self.assertEqual(self.dns.queries, [])
