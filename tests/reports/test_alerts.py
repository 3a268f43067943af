"""Alerts with real components: a bounce-rate rule fires once when the aiosmtpd sink starts answering 550, notifies a
loopback HTTP receiver (Standard Webhooks signature verified with the reference library) and a capture SMTP server,
reminds, resolves when the bounces stop; a blocklist listing served by the loopback DNS server fires the event rule
and pauses the IP; queue rules; tenant webhooks to private addresses are refused at connect time; evaluation of
every shipped rule runs."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.test import override_settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase
from deliveryhub.testing.dns import DNSServer
from deliveryhub.testing.smtp import SMTPSink
from ippools import services as ip_services
from ippools.choices import IPState
from ippools.models import IPAddress
from ippools.testing import flush_test_redis, make_ip, make_node, make_pool
from queues.delivery import mx, state
from queues.models import Message
from queues.testing import make_sending_domain, make_sending_ips
from reports import alerts, rollups
from reports.alert_views import channels_secret
from reports.models import Alert, AlertChannel, AlertNotification, AlertRule

from ..queues.helpers import flush_redis, send
from .monitoring_helpers import deliver, route_everything_to

ZEN = "zen.spamhaus.org"


class Receiver:
    """A loopback HTTP server recording every POST (headers and body) and answering `status`."""

    def __init__(self, status=200):
        self.requests, self.status = [], status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((dict(self.headers), body))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_port}/hooks/alerts"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def later(minutes=1):
    return timezone.now() + timedelta(minutes=minutes)


@override_settings(DEMO_MODE=False, RQ_IS_ASYNC=False, OUTBOUND_ALLOW_PRIVATE_TARGETS=True)
class BounceRateAlertTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain = make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.node, cls.ips, cls.pool = make_sending_ips(("127.0.0.2",))

    def setUp(self):
        flush_redis()
        mx.clear_cache()
        self.addCleanup(state.close)
        self.sink = SMTPSink().start()
        self.addCleanup(self.sink.stop)
        self.capture = SMTPSink().start()  # the alert relay: a capture SMTP server
        self.addCleanup(self.capture.stop)
        self.receiver = Receiver()
        self.addCleanup(self.receiver.stop)
        route_everything_to(self.tenant_a, self.sink)
        self.secret = channels_secret()
        self.hook = AlertChannel.objects.create(tenant=self.tenant_a, name="hook", kind="webhook",
                                                target=self.receiver.url, secret=self.secret)  # fmt: skip
        self.mail = AlertChannel.objects.create(tenant=self.tenant_a, name="ops", kind="email", target="ops@a.test")
        self.rule = AlertRule.objects.create(tenant=self.tenant_a, name="Bounce rate per pool above 20 %",
                                             metric="bounce_rate", threshold=0.2, window_minutes=15, min_volume=5,
                                             group_by="pool", severity="critical", reminder_minutes=5)  # fmt: skip
        self.rule.channels.set([self.hook, self.mail])

    def evaluate(self, now):
        relay = override_settings(ALERT_SMTP_URL=f"smtp://127.0.0.1:{self.capture.port}")
        with relay, self.captureOnCommitCallbacks(execute=True):  # the notifications run at the commit, inside
            return alerts.evaluate(AlertRule.objects.get(pk=self.rule.pk), now)

    def run_mail(self, addresses):
        send(self.tenant_a, addresses)
        deliver(self)
        rollups.roll_up(now=later())

    def test_fires_once_notifies_reminds_and_resolves(self):
        self.run_mail([f"ok{i}@example.com" for i in range(10)])
        self.assertEqual(self.evaluate(later()), ([], [], []))  # all delivered: nothing fires

        for i in range(10):
            self.sink.script(f"gone{i}@example.com", "550 5.1.1 No such user")
        self.run_mail([f"gone{i}@example.com" for i in range(10)])
        opened, _, _ = self.evaluate(later())
        self.assertEqual(len(opened), 1)
        alert = Alert.objects.get()
        self.assertEqual((alert.state, alert.key, alert.volume), ("firing", f"pool={self.pool.pk}", 20))
        self.assertAlmostEqual(alert.value, 0.5)
        self.assertIn(self.pool.name, alert.key_label)

        # The webhook: signed as Standard Webhooks say, verified by the reference implementation.
        [(headers, body)] = self.receiver.requests
        headers = {k.lower(): v for k, v in headers.items()}
        Webhook(self.secret).verify(body, headers)  # raises on a bad signature
        payload = json.loads(body)
        self.assertEqual((payload["type"], payload["data"]["severity"]), ("alert.firing", "critical"))
        self.assertEqual(payload["data"]["volume"], 20)
        # The email: through the configured relay (the capture server).
        [email] = self.capture.wait_for_messages(1)
        self.assertEqual(email.rcpt_tos, ["ops@a.test"])
        self.assertIn("FIRING: Bounce rate per pool above 20 %", email.parse()["Subject"])
        self.assertIn("Value: 50 % (10 of 20)", email.parse().get_content())
        self.assertEqual(AlertNotification.objects.filter(ok=True).count(), 2)

        # Still bouncing a minute later: the same alert, no second notification (deduplicated)…
        self.assertEqual(self.evaluate(later(2)), ([], [], []))
        self.assertEqual(len(self.receiver.requests), 1)
        # …until the reminder is due.
        _, reminded, _ = self.evaluate(later(7))
        self.assertEqual(len(reminded), 1)
        self.assertEqual(json.loads(self.receiver.requests[-1][1])["type"], "alert.reminder")
        self.assertEqual(Alert.objects.count(), 1)

        # The bounces stop: once they are out of the window, it resolves, and says so once.
        _, _, resolved = self.evaluate(later(20))
        self.assertEqual(len(resolved), 1)
        alert.refresh_from_db()
        self.assertEqual(alert.state, "resolved")
        self.assertEqual(json.loads(self.receiver.requests[-1][1])["type"], "alert.resolved")
        self.assertEqual(len(self.capture.wait_for_messages(3)), 3)
        self.assertEqual(self.evaluate(later(21)), ([], [], []))

    def test_volume_floor_keeps_small_numbers_quiet(self):
        self.sink.script("gone@example.com", "550 5.1.1 No such user")
        self.run_mail(["gone@example.com", "ok@example.com"])  # 50 % of 2 attempts
        self.assertEqual(self.evaluate(later()), ([], [], []))

    def test_acknowledged_alerts_get_no_reminders(self):
        for i in range(6):
            self.sink.script(f"gone{i}@example.com", "550 5.1.1 No such user")
        self.run_mail([f"gone{i}@example.com" for i in range(6)])
        [alert], _, _ = self.evaluate(later())
        alerts.acknowledge(alert, acting_user=self.alice)
        self.assertTrue(AuditEntry.objects.filter(action="alert.acknowledge").exists())
        self.assertEqual(self.evaluate(later(7))[1], [])

    @override_settings(OUTBOUND_ALLOW_PRIVATE_TARGETS=False)
    def test_tenant_webhook_to_loopback_is_not_sent(self):
        for i in range(6):
            self.sink.script(f"gone{i}@example.com", "550 5.1.1 No such user")
        self.run_mail([f"gone{i}@example.com" for i in range(6)])
        self.evaluate(later())
        self.assertEqual(self.receiver.requests, [])
        failed = AlertNotification.objects.get(channel=self.hook)
        self.assertFalse(failed.ok)
        self.assertIn("loopback", failed.detail)
        self.assertIn("loopback", AlertChannel.objects.get(pk=self.hook.pk).last_error)

    def test_a_failing_receiver_is_logged_and_the_email_still_goes(self):
        self.receiver.status = 500
        for i in range(6):
            self.sink.script(f"gone{i}@example.com", "550 5.1.1 No such user")
        self.run_mail([f"gone{i}@example.com" for i in range(6)])
        self.evaluate(later())
        self.assertEqual(AlertNotification.objects.get(channel=self.hook).detail, "The webhook answered HTTP 500.")
        self.assertTrue(AlertNotification.objects.get(channel=self.mail).ok)

    def test_email_through_deliveryhub_itself(self):
        with override_settings(ALERT_SMTP_URL="", ALERT_EMAIL_TENANT=self.tenant_a.slug,
                               ALERT_EMAIL_FROM="alerts@mail-a.test"):  # fmt: skip
            from reports import channels

            result = channels.send_email(["ops@a.test"], "subject", "text")
        self.assertIn("queued as 1 message", result)
        self.assertTrue(Message.objects.filter(rcpt_to="ops@a.test", tag="alert").exists())


@override_settings(RQ_IS_ASYNC=False, OUTBOUND_ALLOW_PRIVATE_TARGETS=True)
class ListingAlertTest(TenantTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns = DNSServer().start()
        cls.overrides = override_settings(DNS_RESOLVERS=[cls.dns.address], DNS_TIMEOUT=0.5, BLOCKLIST_ZONES=[ZEN],
                                          BLOCKLIST_DOMAIN_ZONES=[], BLOCKLIST_QUERY_ATTEMPTS=1,
                                          SPAMHAUS_DQS_KEY="")  # fmt: skip
        cls.overrides.enable()

    @classmethod
    def tearDownClass(cls):
        cls.overrides.disable()
        cls.dns.stop()
        super().tearDownClass()

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.ip = make_ip("192.0.2.10", make_node("n1"))
        cls.pool = make_pool("pool-a", tenant=cls.tenant_a, pause_on_listing=False, members=[(cls.ip, 1)])

    def setUp(self):
        flush_test_redis()
        self.receiver = Receiver()
        self.addCleanup(self.receiver.stop)
        self.serve("")

    def serve(self, records):
        self.dns.set_zone(ZEN, f"@ 300 IN SOA ns.{ZEN}. hostmaster.{ZEN}. 1 3600 600 86400 60\n{records}")

    def check(self, hours):
        with self.captureOnCommitCallbacks(execute=True):
            ip_services.check_blocklists(IPAddress.objects.get(pk=self.ip.pk), force=True,
                                         now=timezone.now() + timedelta(hours=hours))  # fmt: skip

    def test_listing_fires_the_event_rule_pauses_the_ip_and_delisting_resolves(self):
        rule = AlertRule.objects.get(tenant__isnull=True, default_key="ip-listed")
        rule.action = "pause_ip"
        rule.save()
        channel = AlertChannel.objects.create(name="noc", kind="slack", target=self.receiver.url)
        rule.channels.set([channel])
        tenant_rule = AlertRule.objects.create(tenant=self.tenant_a, name="Our IP listed", metric="ip_listed",
                                               threshold=0, window_minutes=1440)  # fmt: skip
        other_tenant_rule = AlertRule.objects.create(tenant=self.tenant_b, name="Their IP listed",
                                                     metric="ip_listed", threshold=0)  # fmt: skip

        self.check(0)
        self.assertFalse(Alert.objects.exists())
        self.serve("10.2.0.192 900 IN A 127.0.0.2")
        self.check(2)
        alert = Alert.objects.get(rule=rule)
        self.assertEqual((alert.state, alert.key), ("firing", "ip=192.0.2.10"))
        self.assertEqual(alert.action_taken, "paused IP 192.0.2.10")
        self.assertEqual(IPAddress.objects.get(pk=self.ip.pk).state, IPState.PAUSED)
        self.assertTrue(AuditEntry.objects.filter(action="alert.action").exists())
        self.assertTrue(Alert.objects.filter(rule=tenant_rule, state="firing").exists())  # the tenant using the IP
        self.assertFalse(Alert.objects.filter(rule=other_tenant_rule).exists())  # not the other one
        [(_, body)] = self.receiver.requests
        self.assertIn("Source IP listed on a blocklist", json.loads(body)["text"])
        # The evaluation job finds it still listed: nothing new.
        with self.captureOnCommitCallbacks(execute=True):
            alerts.evaluate(rule)
        self.assertEqual(Alert.objects.filter(rule=rule).count(), 1)
        self.assertEqual(len(self.receiver.requests), 1)

        self.serve("")
        self.check(6)
        alert.refresh_from_db()
        self.assertEqual(alert.state, "resolved")
        self.assertEqual(len(self.receiver.requests), 2)

    def test_warmup_step_back_and_failing_domain_become_alerts(self):
        from domains.choices import DomainStatus
        from domains.signals import domain_status_changed
        from ippools.choices import IPEventKind
        from ippools.signals import warmup_stepped

        domain = make_sending_domain(self.tenant_a, "mail-a.test", dkim=False)
        with self.captureOnCommitCallbacks(execute=True):
            warmup_stepped.send(IPAddress, ip=self.ip, kind=IPEventKind.WARMUP_STEP_BACK, day=2)
            warmup_stepped.send(IPAddress, ip=self.ip, kind=IPEventKind.WARMUP_ADVANCE, day=3)  # not an alert
            domain_status_changed.send(sender=type(domain), domain=domain, before=DomainStatus.VERIFIED,
                                       after=DomainStatus.FAILING)  # fmt: skip
        keys = set(Alert.objects.filter(state="firing").values_list("rule__default_key", "key"))
        self.assertEqual(keys, {("warmup-stepped-back", "ip=192.0.2.10"), ("domain-failing", f"domain={domain.pk}")})
        with self.captureOnCommitCallbacks(execute=True):
            domain_status_changed.send(sender=type(domain), domain=domain, before=DomainStatus.FAILING,
                                       after=DomainStatus.VERIFIED)  # fmt: skip
        self.assertEqual(set(Alert.objects.filter(state="firing").values_list("rule__default_key", flat=True)),
                         {"warmup-stepped-back"})  # fmt: skip


@override_settings(RQ_IS_ASYNC=False)
class QueueAndPlatformRulesTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain = make_sending_domain(cls.tenant_a, "mail-a.test", dkim=False)
        make_sending_ips(("127.0.0.2",))

    def test_queue_age_held_and_heartbeat(self):
        send(self.tenant_a, ["a@example.com", "b@example.com"])
        Message.objects.update(created=timezone.now() - timedelta(hours=1))
        Message.objects.filter(rcpt_to="b@example.com").update(status="held")
        age = AlertRule.objects.get(tenant__isnull=True, default_key="queue-age")
        held = AlertRule.objects.create(tenant=self.tenant_a, name="held", metric="held_count", threshold=0)
        with self.captureOnCommitCallbacks(execute=True):
            [opened], _, _ = alerts.evaluate(age)
            [held_alert], _, _ = alerts.evaluate(held)
        self.assertEqual(opened.key, f"tenant={self.tenant_a.pk}")
        self.assertGreater(opened.value, 3500)
        self.assertEqual(held_alert.value, 1)
        heartbeat = AlertRule.objects.get(tenant__isnull=True, default_key="node-heartbeat")
        with self.captureOnCommitCallbacks(execute=True):
            self.assertEqual(alerts.evaluate(heartbeat), ([], [], []))
            [lost], _, _ = alerts.evaluate(heartbeat, timezone.now() + timedelta(minutes=5))
        self.assertTrue(lost.key.startswith("node="))

    def test_every_shipped_rule_evaluates(self):
        with self.captureOnCommitCallbacks(execute=True):
            counts = alerts.evaluate_all()
        self.assertEqual(counts["errors"], 0)
        self.assertEqual(counts["rules"], AlertRule.objects.filter(enabled=True).count())
        self.assertGreaterEqual(counts["rules"], 15)

    def test_webhook_disabled_and_backlog(self):
        from queues.models import EventStream, Webhook

        EventStream.objects.update_or_create(pk=1, defaults={"last_position": 25000})
        Webhook.objects.create(tenant=self.tenant_a, url="https://hooks.a.test/x", secret=channels_secret(),
                               cursor=1000)  # fmt: skip
        gone = Webhook.objects.create(tenant=self.tenant_a, url="https://gone.a.test/x", secret=channels_secret(),
                                      enabled=False, disabled_reason="HTTP 410 Gone")  # fmt: skip
        backlog = AlertRule.objects.get(tenant__isnull=True, default_key="webhook-backlog")
        disabled = AlertRule.objects.get(tenant__isnull=True, default_key="webhook-disabled")
        with self.captureOnCommitCallbacks(execute=True):
            [behind], _, _ = alerts.evaluate(backlog)
            [off], _, _ = alerts.evaluate(disabled)
        self.assertEqual((behind.key, behind.value), (f"tenant={self.tenant_a.pk}", 24000))
        self.assertEqual((off.key, off.detail), (f"webhook={gone.pk}", "HTTP 410 Gone"))
        Webhook.objects.filter(pk=gone.pk).update(enabled=True, disabled_reason="")
        with self.captureOnCommitCallbacks(execute=True):
            self.assertEqual(len(alerts.evaluate(disabled)[2]), 1)  # re-enabled: resolved
