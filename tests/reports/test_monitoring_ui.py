"""Monitoring pages: the tenant dashboard shows only its tenant's numbers; another tenant's domain, campaign or IP is a
404; platform pages are for operators; every chart's numbers come as a table and CSV; the main dashboard's card
exists and loads; alert rules and channels through the panel, audited, tenant-scoped."""

import csv
import io
from datetime import timedelta

from django.test import override_settings
from django.utils import timezone

from deliveryhub.choices import Role
from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase, login_verified, make_user
from ippools.testing import make_ip, make_node, make_pool
from queues.testing import make_sending_domain
from reports import rollups
from reports.models import AlertChannel, AlertRule, HourRollup, MinuteRollup


def minute(ago=5):
    return rollups.minute_of(timezone.now() - timedelta(minutes=ago))


class MonitoringUITest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain_a = make_sending_domain(cls.tenant_a, "mail-a.test", dkim=False)
        cls.domain_b = make_sending_domain(cls.tenant_b, "mail-b.test", dkim=False)
        node = make_node("node-1")
        cls.ip_a = make_ip("192.0.2.10", node)
        cls.ip_b = make_ip("192.0.2.20", node)
        cls.pool_a = make_pool("pool-a", tenant=cls.tenant_a, members=[(cls.ip_a, 100)])
        cls.pool_b = make_pool("pool-b", tenant=cls.tenant_b, members=[(cls.ip_b, 100)])
        cls.root = make_user("root@platform.test", is_superuser=True)
        for tenant, domain, pool, ip, n in ((cls.tenant_a, cls.domain_a, cls.pool_a, cls.ip_a, 111),
                                            (cls.tenant_b, cls.domain_b, cls.pool_b, cls.ip_b, 999)):  # fmt: skip
            for model, bucket in ((MinuteRollup, minute()), (HourRollup, rollups.hour_of(timezone.now()))):
                model.objects.create(bucket=bucket, tenant_id=tenant.pk, domain_id=domain.pk, pool_id=pool.pk,
                                     source_ip=ip.address, provider="google", attempts=n, delivered=n - 11,
                                     bounced=11, complained=1)  # fmt: skip

    def test_tenant_dashboard_shows_its_own_numbers_only(self):
        login_verified(self.client, self.alice)
        response = self.client.get("/monitoring/?range=1h")
        self.assertEqual(response.status_code, 200)
        body = response.content.decode()
        self.assertIn('id="stat-attempts">111<', body)
        self.assertNotIn("999", body)
        self.assertIn("series-data", body)
        self.assertIn("chart-complaints", body)
        # the viewer reads it too, and the live fragment polls
        self.client.force_login(self.bob)
        fragment = self.client.get("/monitoring/?range=1h&fragment=1")
        self.assertEqual(fragment.status_code, 200)
        self.assertIn('id="stat-attempts">111<', fragment.content.decode())

    def test_drilldowns_are_tenant_scoped(self):
        self.client.force_login(self.charlie)
        login_verified(self.client, self.charlie)
        self.assertEqual(self.client.get(f"/monitoring/domains/{self.domain_a.pk}/").status_code, 404)
        self.assertEqual(self.client.get(f"/monitoring/ips/{self.ip_a.address}/").status_code, 404)
        self.assertEqual(self.client.get("/monitoring/providers/hotmail/").status_code, 404)
        own = self.client.get(f"/monitoring/domains/{self.domain_b.pk}/?range=1h")
        self.assertEqual(own.status_code, 200)
        self.assertIn('id="stat-attempts">999<', own.content.decode())
        ip = self.client.get(f"/monitoring/ips/{self.ip_b.address}/?range=24h")
        self.assertEqual(ip.status_code, 200)
        self.assertIn("chart-reputation", ip.content.decode())
        provider = self.client.get("/monitoring/providers/google/?range=1h")
        self.assertIn('id="stat-attempts">999<', provider.content.decode())

    def test_chart_numbers_as_csv(self):
        login_verified(self.client, self.alice)
        response = self.client.get("/monitoring/?range=1h&export=csv")
        self.assertEqual(response.status_code, 200)
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        self.assertEqual(rows[0][:4], ["bucket_start_utc", "label", "accepted", "attempts"])
        self.assertEqual(sum(int(row[3]) for row in rows[1:]), 111)
        by_ip = self.client.get("/monitoring/?range=1h&export=csv&by=source_ip")
        rows = list(csv.reader(io.StringIO(b"".join(by_ip.streaming_content).decode())))
        self.assertEqual([row[0] for row in rows[1:]], [self.ip_a.address])
        self.assertEqual(self.client.get("/monitoring/?export=csv&by=tenant").status_code, 404)

    def test_platform_pages_are_for_operators(self):
        login_verified(self.client, self.alice)
        self.assertEqual(self.client.get("/platform/monitoring/").status_code, 403)
        self.assertEqual(self.client.get(f"/platform/monitoring/ips/{self.ip_a.address}/").status_code, 403)
        login_verified(self.client, self.root)
        response = self.client.get("/platform/monitoring/?range=1h")
        self.assertEqual(response.status_code, 200)
        body = response.content.decode()
        self.assertIn('id="stat-attempts">1,110<', body)
        self.assertIn("node-health", body)
        self.assertIn("top-tenants-complaints", body)
        for url in (f"/platform/monitoring/ips/{self.ip_a.address}/", "/platform/monitoring/providers/google/",
                    f"/platform/monitoring/pools/{self.pool_b.pk}/",
                    f"/platform/monitoring/tenants/{self.tenant_b.pk}/"):
            self.assertEqual(self.client.get(url).status_code, 200, url)

    def test_main_dashboard_card_exists_and_loads(self):
        login_verified(self.client, self.alice)
        page = self.client.get("/")
        self.assertEqual(page.status_code, 200)
        self.assertIn("monitoring-card", page.content.decode())
        card = self.client.get("/monitoring/?range=24h&card=1")
        self.assertIn("monitoring-card-stats", card.content.decode())

    def test_time_zone_of_the_tenant_labels_the_chart(self):
        self.tenant_a.time_zone = "Asia/Tokyo"
        self.tenant_a.save()
        login_verified(self.client, self.alice)
        body = self.client.get("/monitoring/?range=1h").content.decode()
        self.assertIn("times in Asia/Tokyo", body)


@override_settings(OUTBOUND_ALLOW_PRIVATE_TARGETS=False)
class AlertPanelTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.root = make_user("root@platform.test", is_superuser=True)
        cls.marketer = make_user("m@a.test", cls.tenant_a, Role.MARKETER)

    def rule_form(self, **changes):
        data = {"name": "Bounces", "metric": "bounce_rate", "comparison": "gt", "threshold": "0.05",
                "window_minutes": "15", "min_volume": "200", "group_by": "provider", "severity": "warning",
                "reminder_minutes": "0", "enabled": "on"}  # fmt: skip
        data.update(changes)
        return data

    def test_admin_creates_a_rule_audited_and_viewer_cannot(self):
        login_verified(self.client, self.alice)
        response = self.client.post("/monitoring/alert-rules/new/", self.rule_form())
        self.assertEqual(response.status_code, 302, response.content[:2000])
        rule = AlertRule.objects.get(name="Bounces")
        self.assertEqual(rule.tenant, self.tenant_a)
        self.assertTrue(AuditEntry.objects.filter(action="create", object_id=str(rule.pk)).exists())
        self.client.force_login(self.bob)
        self.assertEqual(self.client.post("/monitoring/alert-rules/new/", self.rule_form(name="x")).status_code, 403)
        self.assertEqual(self.client.get(f"/monitoring/alert-rules/{rule.pk}/").status_code, 200)
        login_verified(self.client, self.charlie)
        self.assertEqual(self.client.get(f"/monitoring/alert-rules/{rule.pk}/").status_code, 404)
        self.assertEqual(self.client.post(f"/monitoring/alert-rules/{rule.pk}/edit/", self.rule_form()).status_code,
                         404)  # fmt: skip
        listing = self.client.get("/monitoring/alert-rules/").content.decode()
        self.assertNotIn("Bounces", listing)

    def test_bad_rules_are_400_and_change_nothing(self):
        login_verified(self.client, self.alice)
        for changes in ({"threshold": "5"}, {"metric": "node_heartbeat_age", "group_by": ""},
                        {"action": "pause_ip", "group_by": "source_ip"}, {"group_by": "tenant"}):  # fmt: skip
            response = self.client.post("/monitoring/alert-rules/new/", self.rule_form(**changes))
            self.assertEqual(response.status_code, 400, changes)
        self.assertFalse(AlertRule.objects.filter(tenant=self.tenant_a).exists())

    def test_recommended_rules_for_a_tenant(self):
        login_verified(self.client, self.alice)
        self.client.post("/monitoring/alert-rules/defaults/")
        rules = AlertRule.objects.filter(tenant=self.tenant_a)
        self.assertGreaterEqual(rules.count(), 14)
        self.assertFalse(rules.filter(metric__in=["node_heartbeat_age", "scheduler_lag"]).exists())
        self.client.post("/monitoring/alert-rules/defaults/")
        self.assertEqual(AlertRule.objects.filter(tenant=self.tenant_a).count(), rules.count())

    def test_shipped_platform_defaults(self):
        defaults = AlertRule.objects.filter(tenant__isnull=True).exclude(default_key="")
        self.assertGreaterEqual(defaults.count(), 15)
        rates = defaults.filter(metric__endswith="_rate")
        self.assertTrue(rates.exists())
        self.assertFalse(rates.filter(min_volume=0).exists())  # every rate has a volume floor
        login_verified(self.client, self.alice)
        self.assertNotIn("Complaint rate per provider", self.client.get("/monitoring/alert-rules/").content.decode())
        login_verified(self.client, self.root)
        self.assertIn("Complaint rate per provider", self.client.get("/monitoring/alert-rules/").content.decode())

    def test_tenant_webhook_to_a_private_address_is_refused(self):
        login_verified(self.client, self.alice)
        for target in ("http://127.0.0.1:8080/hook", "http://169.254.169.254/latest", "http://10.0.0.5/x"):
            form = {"name": "h", "kind": "webhook", "target": target, "enabled": "on"}
            response = self.client.post("/monitoring/alert-channels/new/", form)
            self.assertEqual(response.status_code, 400, target)
        self.assertFalse(AlertChannel.objects.exists())
        form = {"name": "ops", "kind": "email", "target": "ops@a.test", "enabled": "on"}
        response = self.client.post("/monitoring/alert-channels/new/", form)
        self.assertEqual(response.status_code, 302)
        self.assertTrue(AuditEntry.objects.filter(action="create", object_type__endswith="alertchannel").exists())

    def test_preview_counts_firings_from_hour_rollups(self):
        now = timezone.now()
        for hours_ago, bounced in ((30, 50), (29, 50), (10, 0), (5, 40)):
            HourRollup.objects.create(bucket=rollups.hour_of(now - timedelta(hours=hours_ago)),
                                      tenant_id=self.tenant_a.pk, provider="google", attempts=400,
                                      bounced=bounced)  # fmt: skip
        login_verified(self.client, self.alice)
        response = self.client.get("/monitoring/alert-rules/preview/", self.rule_form())
        self.assertIn('<strong>2</strong> times', response.content.decode())
        # a marketer sees the rules but cannot preview someone else's tenant (there is none to pick)
        self.client.force_login(self.marketer)
        self.assertEqual(self.client.get("/monitoring/alert-rules/").status_code, 200)
