"""Warm-up steps on a controlled clock: advance, hold, step back and complete from recorded outcomes;
shipped plans; reputation from outcomes."""

from datetime import UTC, datetime, timedelta

from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase
from ippools import services
from ippools.choices import IPEventKind, IPState
from ippools.models import IPAddress, IPEvent, WarmupPlan
from ippools.testing import flush_test_redis, make_ip, make_node, make_plan

DAY1 = datetime(2030, 3, 10, 9, tzinfo=UTC)


class WarmupTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.node = make_node("n1", now=DAY1)
        cls.plan = make_plan(days=[{"total": 100 * n, "google": 50 * n} for n in range(1, 6)], step_back_days=2)

    def setUp(self):
        flush_test_redis()
        self.ip = make_ip("192.0.2.10", self.node, plan=self.plan, now=DAY1)
        IPAddress.objects.filter(pk=self.ip.pk).update(warmup_day=3)

    def step(self, when):
        event = services.step_warmup(self.ip, now=when)
        self.ip = IPAddress.objects.get(pk=self.ip.pk)
        return event

    def test_holds_within_the_same_day_and_without_traffic(self):
        self.assertIsNone(self.step(DAY1 + timedelta(hours=5)))  # same local day: nothing to do
        event = self.step(DAY1 + timedelta(days=1))
        self.assertEqual(event.kind, IPEventKind.WARMUP_HOLD)
        self.assertIn("no mail was sent", event.message)
        self.assertEqual(self.ip.warmup_day, 3)
        self.assertIsNone(self.step(DAY1 + timedelta(days=1, hours=3)))  # once per day

    def test_advances_when_under_thresholds(self):
        services.record_outcomes(self.ip, "google", delivered=980, bounced=20, deferred=100, complained=0, now=DAY1)
        event = self.step(DAY1 + timedelta(days=1))
        self.assertEqual(event.kind, IPEventKind.WARMUP_ADVANCE)
        self.assertEqual(self.ip.warmup_day, 4)
        self.assertEqual(self.ip.warmup_caps()["google"], 200)
        self.assertEqual(event.data["rates"]["bounce rate"], round(20 / 1100, 5))
        entry = AuditEntry.objects.filter(action="ip.warmup_advance", object_id=str(self.ip.pk)).first()
        self.assertIsNotNone(entry)
        self.assertIn("day 4", entry.message)

    def test_holds_when_a_threshold_was_exceeded(self):
        services.record_outcomes(self.ip, "google", delivered=930, bounced=70, now=DAY1)  # 7% > 5%, < 10%
        event = self.step(DAY1 + timedelta(days=1))
        self.assertEqual(event.kind, IPEventKind.WARMUP_HOLD)
        self.assertIn("bounce rate 7.00% over 5.00%", event.message)
        self.assertEqual(self.ip.warmup_day, 3)
        self.assertTrue(AuditEntry.objects.filter(action="ip.warmup_hold").exists())

    def test_steps_back_when_far_over(self):
        services.record_outcomes(self.ip, "microsoft", delivered=1000, complained=3, now=DAY1)  # 0.3% ≥ 2 × 0.1%
        event = self.step(DAY1 + timedelta(days=1))
        self.assertEqual(event.kind, IPEventKind.WARMUP_STEP_BACK)
        self.assertEqual(self.ip.warmup_day, 1)  # step_back_days=2
        self.assertTrue(AuditEntry.objects.filter(action="ip.warmup_step_back").exists())

    def test_only_the_last_day_counts_and_completion(self):
        IPAddress.objects.filter(pk=self.ip.pk).update(warmup_day=5)
        services.record_outcomes(self.ip, "google", delivered=10, bounced=90, now=DAY1 - timedelta(days=1))  # old
        services.record_outcomes(self.ip, "google", delivered=100, now=DAY1)
        event = self.step(DAY1 + timedelta(days=1))
        self.assertEqual(event.kind, IPEventKind.WARMUP_COMPLETE)
        self.assertEqual(self.ip.state, IPState.ACTIVE)
        self.assertIsNone(self.ip.warmup_caps())

    def test_day_turns_at_the_tenants_midnight(self):
        from deliveryhub import services as core_services
        from ippools.testing import make_pool

        tenant = core_services.create_tenant("ny", "New York", time_zone="America/New_York")
        make_pool("ny", tenant=tenant, members=[(self.ip, 1)])
        self.ip = IPAddress.objects.get(pk=self.ip.pk)
        # DAY1 09:00 UTC is 05:00 in New York (EDT): the IP's last step (2030-03-10 UTC) is that same local date.
        services.record_outcomes(self.ip, "google", delivered=100, now=DAY1)
        self.assertIsNone(self.step(datetime(2030, 3, 11, 3, tzinfo=UTC)))  # 23:00 on the 10th in NY
        event = self.step(datetime(2030, 3, 11, 5, tzinfo=UTC))  # 01:00 on the 11th in NY
        self.assertEqual(event.kind, IPEventKind.WARMUP_ADVANCE)

    def test_periodic_step_all(self):
        other = make_ip("192.0.2.11", self.node, plan=self.plan, now=DAY1)
        services.record_outcomes(other, "google", delivered=10, now=DAY1)
        events = services.step_warmups(now=DAY1 + timedelta(days=1))
        self.assertEqual(
            {(e.ip_id, e.kind) for e in events},
            {(self.ip.pk, IPEventKind.WARMUP_HOLD), (other.pk, IPEventKind.WARMUP_ADVANCE)},
        )
        self.assertEqual(services.step_warmups(now=DAY1 + timedelta(days=1, hours=1)), [])
        self.assertEqual(IPEvent.objects.filter(kind=IPEventKind.WARMUP_START).count(), 2)

    def test_api_start_warmup_and_progress(self):
        from deliveryhub import services as core_services
        from deliveryhub.choices import Role

        _, op_key = core_services.create_api_key(tenant=None, name="ops", role=Role.ADMIN)
        ip = make_ip("192.0.2.12", self.node)
        url = f"/api/v1/ip-addresses/{ip.pk}/start-warmup/"
        self.assertEqual(self.api(self.alice_key).post(url, {"plan": self.plan.pk}).status_code, 403)
        response = self.api(op_key).post(url, {"plan": self.plan.pk, "day": 2}, format="json")
        self.assertEqual(response.status_code, 200, response.content)
        warmup = response.json()["warmup"]
        self.assertEqual((warmup["day"], warmup["days"], warmup["caps"]["google"]), (2, 5, 100))
        self.assertEqual(warmup["remaining_today"]["google"], 100)
        response = self.api(op_key).post(url, {"plan": self.plan.pk, "day": 9}, format="json")
        self.assertEqual(response.status_code, 400)


class ShippedPlansTest(TenantTestCase):
    def test_default_plans_ramp(self):
        plans = {p.name: p for p in WarmupPlan.objects.filter(is_builtin=True)}
        self.assertEqual(set(plans), {"Standard (30 days)", "Gentle (45 days)"})
        for plan, length in ((plans["Standard (30 days)"], 30), (plans["Gentle (45 days)"], 45)):
            plan.full_clean()
            self.assertEqual(plan.length, length)
            google = [day["google"] for day in plan.days]
            self.assertEqual(google[0], 50)
            self.assertEqual(google, sorted(google))
            growth = [b / a for a, b in zip(google, google[1:], strict=False) if b != a]
            self.assertTrue(all(1.05 <= g <= 2.05 for g in growth), growth)
            self.assertGreaterEqual(sum(growth[:7]) / 7, 1.4)
            self.assertEqual(plan.days[0]["total"], 200)

    def test_plan_validation(self):
        from django.core.exceptions import ValidationError

        with self.assertRaises(ValidationError):
            WarmupPlan(name="bad", days=[{"gmail": 5}]).full_clean()
        with self.assertRaises(ValidationError):
            WarmupPlan(name="bad", days=[]).full_clean()
        with self.assertRaises(ValidationError):
            WarmupPlan(name="bad", days=[{"total": -1}]).full_clean()
        with self.assertRaises(ValidationError):
            WarmupPlan(name="bad", days=[{"total": 5}], max_bounce_rate=5).full_clean()


class ReputationTest(TenantTestCase):
    def test_score_from_outcomes_with_explanation(self):
        flush_test_redis()
        node = make_node("n1", now=DAY1)
        ip = make_ip("192.0.2.20", node)
        self.assertEqual(services.update_reputation(ip, now=DAY1), 100)
        self.assertIn("No mail", ip.reputation_explanation)
        services.record_outcomes(ip, "google", delivered=900, bounced=60, deferred=40, complained=2, now=DAY1)
        score = services.update_reputation(ip, now=DAY1)
        # bounce 6% → −24, deferral 4% → −4, complaint 2/900 = 0.22% → −40 (capped): 100 − 68 = 32
        self.assertEqual(score, 32)
        self.assertTrue(ip.reputation_explanation.startswith("complaint rate 0.22% (−40); bounce rate 6.00% (−24)"))
        self.assertEqual(ip.reputation_history.count(), 2)
        # Outcomes older than the window no longer count.
        self.assertEqual(services.update_reputation(ip, now=DAY1 + timedelta(days=30)), 100)
