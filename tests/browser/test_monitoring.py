"""In a real browser: an admin opens the monitoring dashboard, changes the time range (the page swaps in place, the
charts redraw with the new range's points), drills down to an IP, and creates an alert rule with its live 7-day
preview; an operator opens the platform dashboard and the alert history.

Screenshots (DELIVERYHUB_SCREENSHOTS=1) go to docs/screenshots/monitoring-*.png and alerts-*.png.
"""

import random
from datetime import timedelta

from django.utils import timezone
from django_otp.oath import totp

from deliveryhub import audit
from deliveryhub import services as core
from deliveryhub.choices import Role
from deliveryhub.models import EncryptedTOTPDevice
from deliveryhub.testing.cases import PASSWORD, make_user
from ippools.models import ReputationSample
from ippools.testing import make_ip, make_node, make_pool
from queues.testing import make_sending_domain
from reports import alerts, rollups
from reports.alert_defaults import DEFAULT_RULES, rule_fields
from reports.models import Alert, AlertRule, HourRollup, MinuteRollup, ReplyMinute

from .base import BrowserTestCase, sync_playwright

if sync_playwright is not None:
    from playwright.sync_api import expect

PROVIDERS = ("google", "microsoft", "yahoo", "other")


def seed(tenant, domain, pool, ips):
    """A week of hourly roll-ups and two days of minutes, with a bounce spike 30 hours ago."""
    rng = random.Random(7)
    now = timezone.now()
    hours, minutes = [], []
    for ago in range(7 * 24):
        bucket = rollups.hour_of(now - timedelta(hours=ago))
        for provider in PROVIDERS:
            ip = ips[rng.randrange(len(ips))]
            attempts = rng.randint(300, 600) * (3 if provider == "google" else 1)
            bounced = attempts // (4 if ago in (30, 31) else 60)
            deferred = attempts // rng.randint(10, 30)
            delivered = attempts - bounced - deferred
            hours.append(HourRollup(bucket=bucket, tenant_id=tenant.pk, domain_id=domain.pk, pool_id=pool.pk,
                                    source_ip=ip.address, provider=provider, attempts=attempts, delivered=delivered,
                                    bounced=bounced, deferred=deferred, accepted=delivered,
                                    complained=delivered // rng.randint(800, 3000)))  # fmt: skip
    for ago in range(48 * 60):
        bucket = rollups.minute_of(now - timedelta(minutes=ago))
        attempts = rng.randint(20, 60)
        bounced, deferred = attempts // 40, attempts // rng.randint(8, 20)
        minutes.append(MinuteRollup(bucket=bucket, tenant_id=tenant.pk, domain_id=domain.pk, pool_id=pool.pk,
                                    source_ip=ips[ago % len(ips)].address, provider=PROVIDERS[ago % 4],
                                    attempts=attempts, delivered=attempts - bounced - deferred, bounced=bounced,
                                    deferred=deferred, accepted=attempts,
                                    complained=1 if ago % 97 == 0 else 0))  # fmt: skip
    HourRollup.objects.bulk_create(hours)
    MinuteRollup.objects.bulk_create(minutes)
    replies = [
        (421, "4.7.0", "deferred", "rate_limited", "421 4.7.0 Try again later, closing connection."),
        (550, "5.1.1", "bounced", "invalid_recipient", "550 5.1.1 The email account that you tried to reach does "
                                                       "not exist."),
        (451, "4.7.650", "deferred", "reputation", "451 4.7.650 The mail server has been temporarily rate limited "
                                                   "due to IP reputation."),
    ]  # fmt: skip
    for ago, (code, enhanced, status, category, text) in enumerate(replies):
        ReplyMinute.objects.create(bucket=rollups.minute_of(now - timedelta(minutes=5 + ago)), tenant_id=tenant.pk,
                                   provider=PROVIDERS[ago], status=status, code=code, enhanced_code=enhanced,
                                   category=category, count=40 - ago * 9, text=text)  # fmt: skip
    for ip in ips:
        ReputationSample.objects.bulk_create([
            ReputationSample(ip=ip, time=now - timedelta(hours=h),
                             score=max(40, min(100, 92 - (h % 40) + rng.randint(-4, 4))))
            for h in range(0, 7 * 24, 3)
        ])  # fmt: skip


class MonitoringBrowserTest(BrowserTestCase):
    def setUp(self):
        with audit.audit_context(principal=None):
            self.tenant = core.create_tenant("acme", "Acme Mail")
            self.domain = make_sending_domain(self.tenant, "mail.acme.test", dkim=False)
            node = make_node("mta-eu-1")
            self.ips = [make_ip(f"192.0.2.{i}", node) for i in (10, 11, 12)]
            self.pool = make_pool("acme-transactional", tenant=self.tenant, members=[(ip, 100) for ip in self.ips])
            self.user = make_user("alice@acme.test", self.tenant, Role.ADMIN)
            self.device = EncryptedTOTPDevice.objects.create(user=self.user, name="phone", confirmed=True)
        seed(self.tenant, self.domain, self.pool, self.ips)
        # Live-server tests empty the tables after each test: the shipped rules are put back as the migration does.
        for rule in DEFAULT_RULES:
            fields = rule_fields(rule)
            AlertRule.objects.get_or_create(tenant=None, default_key=fields.pop("default_key"), defaults=fields)

    def sign_in(self, page, user, device, path):
        page.goto(self.live_server_url + path)
        page.fill("input[name=username]", user.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        device = EncryptedTOTPDevice.objects.get(pk=device.pk)
        page.fill("input[name=token]", f"{totp(device.bin_key, step=device.step, t0=device.t0):06d}")
        page.click("form button[type=submit] >> text=Verify")
        expect(page.locator("#user-menu")).to_have_count(1)

    def test_dashboard_range_change_redraws_the_charts_and_a_rule_is_created(self):
        page = self.open_page(viewport={"width": 1400, "height": 900})
        self.sign_in(page, self.user, self.device, "/monitoring/?range=1h")
        page.goto(self.live_server_url + "/monitoring/?range=1h")
        chart = page.locator("#chart-sends")
        expect(chart).to_have_attribute("data-points", "61")
        page.evaluate("window.notReloaded = true")
        self.screenshot(page, "monitoring-dashboard.png")

        page.click('#range-picker a[data-range="7d"]')
        expect(page.locator("#monitoring-page")).to_have_attribute("data-range", "7d")
        expect(chart).not_to_have_attribute("data-points", "61")
        points = int(chart.get_attribute("data-points"))
        self.assertGreaterEqual(points, 168)
        self.assertTrue(page.evaluate("window.notReloaded === true"))  # swapped in place, not reloaded
        self.assertIn("range=7d", page.url)
        self.assertEqual(page.evaluate("Chart.getChart(document.getElementById('chart-sends')).data.labels.length"),
                         points)  # fmt: skip
        self.screenshot(page, "monitoring-dashboard-7d.png")

        page.click(f"#breakdown-source_ip a >> text={self.ips[0].address}")
        expect(page.locator("#monitoring-title")).to_contain_text(self.ips[0].address)
        expect(page.locator("#chart-reputation")).to_have_attribute("data-points", "56")
        self.screenshot(page, "monitoring-ip.png")

        page.goto(self.live_server_url + "/monitoring/alert-rules/new/")
        page.fill("#id_name", "Acme bounces per provider")
        page.select_option("#id_metric", "bounce_rate")
        page.evaluate("(s => s.tomselect && s.tomselect.sync())(document.querySelector('#id_metric'))")
        page.fill("#id_threshold", "0.1")
        page.fill("#id_window_minutes", "60")
        page.fill("#id_min_volume", "200")
        page.select_option("#id_group_by", "provider")
        page.select_option("#id_severity", "critical")
        expect(page.locator("#preview-firings")).to_contain_text("Would have fired")
        self.screenshot(page, "alerts-rule-edit.png")
        page.click("#object-form button[type=submit]")
        expect(page.locator("#rule-condition")).to_contain_text("bounce rate above 10 % over 1 h (at least 200)")
        rule = AlertRule.objects.get(name="Acme bounces per provider")
        self.assertEqual(rule.tenant, self.tenant)
        self.assertGreaterEqual(alerts.preview(rule)["firings"], 1)
        self.screenshot(page, "alerts-rule.png")

    def test_operator_platform_dashboard_and_alert_history(self):
        root = make_user("root@ops.test", is_superuser=True)
        device = EncryptedTOTPDevice.objects.create(user=root, name="phone", confirmed=True)
        rule = AlertRule.objects.get(tenant__isnull=True, default_key="bounce-rate-ip")
        now = timezone.now()
        Alert.objects.create(rule=rule, key=f"ip={self.ips[1].address}", key_label=self.ips[1].address,
                             severity=rule.severity, started_at=now - timedelta(hours=30), value=0.21, volume=2400,
                             detail="504 of 2,400", state="resolved",
                             resolved_at=now - timedelta(hours=28))  # fmt: skip
        Alert.objects.create(rule=AlertRule.objects.get(tenant__isnull=True, default_key="queue-age"),
                             key=f"tenant={self.tenant.pk}", key_label="tenant Acme Mail", severity="critical",
                             value=2400, detail="oldest waited 40 min")  # fmt: skip
        page = self.open_page(viewport={"width": 1400, "height": 900})
        self.sign_in(page, root, device, "/platform/monitoring/?range=24h")
        page.goto(self.live_server_url + "/platform/monitoring/?range=24h")
        expect(page.locator("#chart-complaints")).to_have_attribute("data-points", "25")
        expect(page.locator("#top-tenants-volume")).to_contain_text("Acme Mail")
        self.screenshot(page, "monitoring-platform.png")
        page.goto(self.live_server_url + "/monitoring/alerts/")
        expect(page.locator("#alert-table")).to_contain_text("Oldest queued message")
        self.screenshot(page, "alerts-list.png")
        page.goto(self.live_server_url + "/monitoring/alert-rules/")
        self.screenshot(page, "alerts-rules.png")
