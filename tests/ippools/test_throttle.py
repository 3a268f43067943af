"""Throttling per (source IP, provider): adaptive slow-down and suspension (Redis, with the database as the durable
copy), throttle rules (connections, messages per connection, per-minute/hour rates) and their API."""

from datetime import timedelta

from django.test import override_settings
from django.utils import timezone

from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import APIViewTestCases, TenantTestCase
from ippools import services
from ippools.choices import IPEventKind
from ippools.models import IPEvent, ThrottleRule, ThrottleState
from ippools.testing import flush_test_redis, make_ip, make_node, make_pool

THROTTLE = {
    "THROTTLE_SUSPEND_SECONDS": 60,
    "THROTTLE_SUSPEND_MAX_SECONDS": 1800,
    "THROTTLE_RESTORE_AFTER": 10,
    "THROTTLE_MAX_LEVEL": 6,
}


@override_settings(**THROTTLE)
class AdaptiveThrottleTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.node = make_node("node-1")
        cls.ip1 = make_ip("192.0.2.1", cls.node)
        cls.ip2 = make_ip("192.0.2.2", cls.node)
        cls.pool = make_pool("shared", all_tenants=True, members=[(cls.ip1, 100), (cls.ip2, 100)])

    def setUp(self):
        flush_test_redis()

    def limits(self, ip, provider="google", now=None):
        return services.pair_limits(ip, provider, tenant_id=self.tenant_a.pk, connections=40, now=now)

    def test_rate_limit_halves_and_suspends_with_doubling_backoff(self):
        now = timezone.now()
        state = services.rate_limited(self.ip1, "google", reply="421 4.7.0 unusual rate", now=now)
        self.assertEqual((state.level, state.backoff), (1, 60))
        self.assertAlmostEqual(state.until, now.timestamp() + 60, delta=1)
        limits = self.limits(self.ip1, now=now)
        self.assertEqual(limits.connections, 20)
        self.assertIsNotNone(limits.suspended_until)
        # More replies of the same incident (batches still in flight) change nothing.
        again = services.rate_limited(self.ip1, "google", now=now + timedelta(seconds=5))
        self.assertEqual((again.level, again.until), (1, state.until))
        # After the suspension, a new rate limit: half again, suspended twice as long.
        later = now + timedelta(seconds=61)
        self.assertIsNone(self.limits(self.ip1, now=later).suspended_until)
        state = services.rate_limited(self.ip1, "google", now=later)
        self.assertEqual((state.level, state.backoff), (2, 120))
        self.assertEqual(self.limits(self.ip1, now=later).connections, 10)
        # A "try again in N seconds" hint longer than the backoff is honoured.
        state = services.rate_limited(self.ip1, "google", hint=900, now=later + timedelta(seconds=121))
        self.assertEqual(state.level, 3)
        self.assertAlmostEqual(state.until, later.timestamp() + 121 + 900, delta=1)
        # Other providers from the same IP, and the same provider from another IP, are untouched.
        self.assertEqual(self.limits(self.ip1, "microsoft", now=later).connections, 40)
        self.assertEqual(self.limits(self.ip2, now=later).connections, 40)
        # Transitions are IP events with the pair in their data; not audit entries.
        events = IPEvent.objects.filter(ip=self.ip1, kind=IPEventKind.THROTTLE_SLOWED)
        self.assertEqual(events.count(), 3)
        self.assertEqual(events.first().data["provider"], "google")
        self.assertIn("Rate limited by Google", events.last().message)
        self.assertFalse(AuditEntry.objects.filter(action__startswith="throttle").exists())
        self.assertFalse(AuditEntry.objects.filter(object_type="ippools.ipaddress", action__contains="throttle"))

    def test_backoff_is_capped_and_level_too(self):
        now = timezone.now()
        for _ in range(10):
            state = services.rate_limited(self.ip1, "yahoo", now=now)
            now += timedelta(seconds=state.backoff + 1)
        self.assertEqual(state.level, 6)
        self.assertEqual(state.backoff, 1800)
        self.assertEqual(self.limits(self.ip1, "yahoo", now=now).connections, 1)  # 40 >> 6, at least 1

    def test_successes_restore_step_by_step(self):
        now = timezone.now()
        services.rate_limited(self.ip1, "google", now=now)
        services.rate_limited(self.ip1, "google", now=now + timedelta(seconds=61))
        after = now + timedelta(seconds=200)
        # Deliveries during a suspension (batches in flight) do not count.
        services.record_successes(self.ip1, "google", 50, now=now + timedelta(seconds=70))
        self.assertEqual(services.pair_state(self.ip1.pk, "google").level, 2)
        services.record_successes(self.ip1, "google", 9, now=after)
        self.assertEqual(services.pair_state(self.ip1.pk, "google").level, 2)
        state = services.record_successes(self.ip1, "google", 1, now=after)
        self.assertEqual((state.level, state.backoff), (1, 60))
        self.assertEqual(self.limits(self.ip1, now=after).connections, 20)
        state = services.record_successes(self.ip1, "google", 10, now=after)
        self.assertEqual(state.level, 0)
        self.assertEqual(self.limits(self.ip1, now=after).connections, 40)
        kinds = list(IPEvent.objects.filter(ip=self.ip1).order_by("id").values_list("kind", flat=True))
        self.assertEqual(kinds[-2:], [IPEventKind.THROTTLE_EASED, IPEventKind.THROTTLE_RESTORED])
        self.assertEqual(ThrottleState.objects.get(ip=self.ip1, provider="google").level, 0)
        # The next incident starts from the first backoff again.
        state = services.rate_limited(self.ip1, "google", now=after)
        self.assertEqual((state.level, state.backoff), (1, 60))

    def test_redis_loss_keeps_the_suspension(self):
        now = timezone.now()
        state = services.rate_limited(self.ip1, "google", reply="421 4.7.0 slow down", now=now)
        record = ThrottleState.objects.get(ip=self.ip1, provider="google")
        self.assertEqual((record.level, record.backoff_seconds, record.reason), (1, 60, "421 4.7.0 slow down"))
        flush_test_redis()
        limits = self.limits(self.ip1, now=now + timedelta(seconds=10))
        self.assertEqual(limits.level, 1)
        self.assertEqual(int(limits.suspended_until.timestamp()), state.until)

    def test_selection_skips_suspended_pairs(self):
        services.rate_limited(self.ip1, "google")
        for _ in range(10):
            chosen = services.select_source_ip(tenant=self.tenant_a, pool=self.pool, provider="google", count=1)
            self.assertEqual(chosen.ip, self.ip2)
        # The same IP still sends to other providers.
        chosen = {
            services.select_source_ip(tenant=self.tenant_a, pool=self.pool, provider="microsoft").ip for _ in range(40)
        }
        self.assertEqual(chosen, {self.ip1, self.ip2})
        state = services.rate_limited(self.ip2, "google")
        with self.assertRaises(services.NoCapacity) as caught:
            services.select_source_ip(tenant=self.tenant_a, pool=self.pool, provider="google")
        self.assertIn("Rate limited by Google until", caught.exception.reason)
        self.assertIsNotNone(caught.exception.until)
        self.assertLessEqual(int(caught.exception.until.timestamp()), state.until)


@override_settings(**THROTTLE)
class ThrottleRuleEnforcementTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.node = make_node("node-1")
        cls.ip1 = make_ip("192.0.2.1", cls.node)
        cls.ip2 = make_ip("192.0.2.2", cls.node)
        cls.pool = make_pool("shared", all_tenants=True, members=[(cls.ip1, 100)])
        cls.other_pool = make_pool("other", all_tenants=True, members=[(cls.ip2, 100)])

    def setUp(self):
        flush_test_redis()

    def select(self, count, provider="google", tenant=None):
        return services.select_source_ip(tenant=tenant or self.tenant_a, pool=self.pool, provider=provider, count=count)

    def test_per_minute_rate_is_a_gate(self):
        ThrottleRule.objects.create(pool=self.pool, provider="google", max_per_minute=5)
        self.assertEqual(self.select(3).reserved, 3)
        self.assertEqual(self.select(3).reserved, 2)
        with self.assertRaises(services.NoCapacity) as caught:
            self.select(1)
        self.assertIn("throttle rules' rate for Google", caught.exception.reason)
        self.assertLessEqual(caught.exception.until - timezone.now(), timedelta(seconds=60))
        self.assertEqual(self.select(50, provider="microsoft").reserved, 50)  # another provider: not limited

    def test_rates_are_halved_while_slowed_and_tightest_rule_wins(self):
        ThrottleRule.objects.create(ip=self.ip1, max_per_minute=100, max_per_hour=8)
        ThrottleRule.objects.create(provider="google", max_per_minute=40)  # every IP
        services.rate_limited(self.ip1, "google", now=timezone.now() - timedelta(seconds=61))
        self.assertEqual(self.select(100).reserved, 4)  # hourly 8 halved
        with self.assertRaises(services.NoCapacity):
            self.select(1)

    def test_tenant_rule_limits_only_that_tenants_mail(self):
        ThrottleRule.objects.create(tenant=self.tenant_a, pool=self.pool, max_per_minute=2)
        self.assertEqual(self.select(10).reserved, 2)
        self.assertEqual(self.select(10, tenant=self.tenant_b).reserved, 10)

    def test_a_rate_gate_that_denies_gives_back_the_warmup_reservation(self):
        ThrottleRule.objects.create(pool=self.pool, max_per_minute=1)
        self.select(1)
        before = services.usage_today(self.ip1)["google"]
        with self.assertRaises(services.NoCapacity):
            self.select(5)
        self.assertEqual(services.usage_today(self.ip1)["google"], before)

    def test_connection_limits(self):
        ThrottleRule.objects.create(pool=self.pool, provider="google", max_connections=6, max_messages_per_connection=3)
        ThrottleRule.objects.create(ip=self.ip1, max_connections=9, enabled=False)
        limits = services.pair_limits(self.ip1, "google", tenant_id=self.tenant_a.pk, connections=50)
        self.assertEqual((limits.connections, limits.messages_per_connection), (6, 3))
        services.rate_limited(self.ip1, "google", now=timezone.now() - timedelta(seconds=61))
        self.assertEqual(services.pair_limits(self.ip1, "google", connections=50).connections, 3)
        other = services.pair_limits(self.ip2, "google", connections=50)
        self.assertEqual((other.connections, other.messages_per_connection), (50, None))

    def test_rule_validation(self):
        from django.core.exceptions import ValidationError

        dedicated = make_pool("b-only", tenant=self.tenant_b, members=[(self.ip2, 100)])
        for rule in (
            ThrottleRule(pool=self.pool),  # no limit
            ThrottleRule(ip=self.ip1, pool=self.pool, max_per_minute=1),  # both
            ThrottleRule(tenant=self.tenant_a, max_per_minute=1),  # a tenant rule names an IP or pool
            ThrottleRule(tenant=self.tenant_a, pool=dedicated, max_per_minute=1),  # not usable by tenant A
        ):
            with self.assertRaises(ValidationError):
                rule.clean()
        ThrottleRule(tenant=self.tenant_b, pool=dedicated, max_per_minute=1).clean()


class ThrottleRuleAPITest(APIViewTestCases.Full):
    url = "/api/v1/throttle-rules/"
    model = ThrottleRule

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.node = make_node("node-1")
        cls.ip = make_ip("192.0.2.1", cls.node)
        cls.pool = make_pool("shared", all_tenants=True, members=[(cls.ip, 100)])
        cls.b_ip = make_ip("192.0.2.9", cls.node)
        cls.b_pool = make_pool("b-only", tenant=cls.tenant_b, members=[(cls.b_ip, 100)])

    @property
    def create_data(self):
        return {"pool": self.pool.pk, "provider": "google", "max_connections": 5, "max_per_minute": 100}

    update_data = {"max_per_hour": 1000}

    def make_object(self, tenant):
        return ThrottleRule.objects.create(tenant=tenant, pool=self.pool, max_per_minute=10)

    def test_tenant_rule_is_created_in_the_keys_tenant(self):
        data = {**self.create_data, "tenant": None}
        response = self.api(self.alice_key).post(self.url, data, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(ThrottleRule.objects.get(pk=response.json()["id"]).tenant, self.tenant_a)

    def test_another_tenants_pool_or_no_limit_is_a_400(self):
        response = self.api(self.alice_key).post(self.url, {"pool": self.b_pool.pk, "max_per_minute": 5}, format="json")
        self.assertEqual(response.status_code, 400, response.content)
        self.assertIn("pool", response.json()["error"]["fields"])
        response = self.api(self.alice_key).post(self.url, {"pool": self.pool.pk}, format="json")
        self.assertEqual(response.status_code, 400, response.content)
        self.assertFalse(ThrottleRule.objects.exists())

    def test_platform_rules_are_operators_only(self):
        from deliveryhub import services as core

        rule = ThrottleRule.objects.create(provider="microsoft", max_connections=10)
        self.assertEqual(self.api(self.alice_key).get(f"{self.url}{rule.pk}/").status_code, 404)
        _, operator_key = core.create_api_key(tenant=None, name="ops", role="admin")
        response = self.api(operator_key).post(self.url, {"provider": "yahoo", "max_per_hour": 500}, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        self.assertIsNone(ThrottleRule.objects.get(pk=response.json()["id"]).tenant)
        response = self.api(operator_key).get(self.url)
        self.assertEqual(response.json()["count"], 2)

    def test_throttle_states_are_listed_for_operators(self):
        from deliveryhub import services as core

        flush_test_redis()
        services.rate_limited(self.ip, "google", reply="421 4.7.0 unusual rate")
        _, operator_key = core.create_api_key(tenant=None, name="ops", role="admin")
        response = self.api(operator_key).get("/api/v1/throttle-states/")
        self.assertEqual(response.status_code, 200, response.content)
        [row] = response.json()["results"]
        self.assertEqual((row["address"], row["provider"], row["level"]), ("192.0.2.1", "google", 1))
