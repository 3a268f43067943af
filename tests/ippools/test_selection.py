"""Source-IP selection: weighted rotation, warm-up caps (Redis gate, database authority), exclusions, NoCapacity."""

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from deliveryhub import services as core_services
from deliveryhub.testing.cases import TenantTestCase
from ippools import counters, services
from ippools.choices import IPState, Provider
from ippools.models import IPAddress, IPDailyUsage
from ippools.providers import provider_for
from ippools.testing import flush_test_redis, make_ip, make_node, make_plan, make_pool

NOW = datetime(2030, 3, 10, 15, 30, tzinfo=UTC)


class SelectionTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.node = make_node("n1", region="eu", now=NOW)
        cls.plan = make_plan(days=[{"total": 15, "google": 10, "microsoft": 12}, {"total": 30, "google": 20}])

    def setUp(self):
        flush_test_redis()

    def select(self, pool, provider="google", count=1, now=NOW, **kwargs):
        return services.select_source_ip(
            tenant=self.tenant_a, pool=pool, provider=provider, count=count, now=now, **kwargs
        )

    def test_distribution_follows_weights(self):
        ips = [make_ip(f"192.0.2.{n}", self.node) for n in (1, 2, 3)]
        pool = make_pool("weighted", all_tenants=True, members=list(zip(ips, (10, 30, 60), strict=True)))
        rng = random.Random(1234)
        picks = Counter(self.select(pool, rng=rng).ip.address for _ in range(2000))
        for ip, share in zip(ips, (0.10, 0.30, 0.60), strict=True):
            self.assertAlmostEqual(picks[ip.address] / 2000, share, delta=0.03, msg=picks)

    def test_a_run_cache_reads_pool_members_and_rules_once_but_reserves_every_time(self):
        """The scheduler passes one dict per run: the database is read once for many batches, while capacity is still
        taken per batch (the cap binds on the fourth call) and a cached "no usable IP" keeps being raised."""
        ip = make_ip("192.0.2.11", self.node, plan=self.plan)
        pool = make_pool("cached", all_tenants=True, members=[(ip, 1)])
        cache = {}
        with CaptureQueriesContext(connection) as queries:
            got = [self.select(pool, count=3, cache=cache).reserved for _ in range(4)]
        self.assertEqual(got, [3, 3, 3, 1])
        reads = Counter(q["sql"].split(".")[0] for q in queries.captured_queries)  # SELECT "<table>"
        tables = ('SELECT "ippools_ippool"', 'SELECT "ippools_ippoolmember"', 'SELECT "ippools_throttlerule"')
        self.assertEqual([reads[table] for table in tables], [1, 1, 1])
        with self.assertRaises(services.NoCapacity):
            self.select(pool, cache=cache)
        empty = make_pool("empty", all_tenants=True, members=[])
        for _ in range(2):
            with self.assertRaisesMessage(services.NoCapacity, "has no IP addresses"):
                self.select(empty, cache=cache)

    def test_caps_never_exceeded_and_no_capacity_says_when(self):
        ip = make_ip("192.0.2.10", self.node, plan=self.plan)
        pool = make_pool("warming", all_tenants=True, members=[(ip, 1)])
        got = [self.select(pool, count=3).reserved for _ in range(4)]
        self.assertEqual(got, [3, 3, 3, 1])  # the last batch gets what is left of google's 10
        with self.assertRaises(services.NoCapacity) as caught:
            self.select(pool, count=1)
        self.assertEqual(caught.exception.until, datetime(2030, 3, 11, tzinfo=ZoneInfo("UTC")))
        self.assertIn("warm-up cap", caught.exception.reason)
        # The total cap (15) binds other providers: microsoft's own cap is 12, but only 5 are left in all.
        self.assertEqual(self.select(pool, provider="microsoft", count=12).reserved, 5)
        with self.assertRaises(services.NoCapacity):
            self.select(pool, provider="yahoo")
        self.assertEqual(
            services.usage_today(ip, NOW), {"google": 10, "microsoft": 5, "yahoo": 0, "other": 0, "total": 15}
        )
        # Tomorrow is a new day (still day 1 of the plan until the warm-up steps): capacity again.
        services.heartbeat("n1", now=NOW + timedelta(days=1))
        self.assertEqual(self.select(pool, count=3, now=NOW + timedelta(days=1)).reserved, 3)

    def test_full_ip_falls_through_to_the_next(self):
        warming = make_ip("192.0.2.11", self.node, plan=self.plan)
        warm = make_ip("192.0.2.12", self.node)
        pool = make_pool("mixed", all_tenants=True, members=[(warming, 1000), (warm, 1)])
        chosen = Counter()
        for _ in range(40):
            selection = self.select(pool, count=1)
            chosen[selection.ip.address] += selection.reserved
        self.assertEqual(chosen[warming.address], 10)
        self.assertEqual(chosen[warm.address], 30)

    def test_paused_blocked_retired_and_dead_node_never_chosen(self):
        dead_node = make_node("dead", now=NOW - timedelta(hours=1))
        good = make_ip("192.0.2.20", self.node)
        paused = make_ip("192.0.2.21", self.node, state=IPState.PAUSED)
        blocked = make_ip("192.0.2.22", self.node, state=IPState.BLOCKED)
        retired = make_ip("192.0.2.23", self.node, state=IPState.RETIRED)
        on_dead = make_ip("192.0.2.24", dead_node)
        member_paused = make_ip("192.0.2.25", self.node)
        pool = make_pool(
            "exclusions",
            all_tenants=True,
            members=[(ip, 100) for ip in (good, paused, blocked, retired, on_dead, member_paused)],
        )
        pool.members.filter(ip=member_paused).update(paused=True, pause_reason="test")
        picks = {self.select(pool).ip.address for _ in range(200)}
        self.assertEqual(picks, {good.address})
        services.pause_ip(good, reason="maintenance")
        with self.assertRaises(services.NoCapacity) as caught:
            self.select(pool)
        self.assertIsNone(caught.exception.until)

    def test_no_live_node_or_wrong_region(self):
        ip = make_ip("192.0.2.30", self.node)
        pool = make_pool("regional", all_tenants=True, members=[(ip, 1)])
        self.assertEqual(self.select(pool, region="eu").ip, ip)
        with self.assertRaisesMessage(services.NoCapacity, "region us"):
            self.select(pool, region="us")
        with self.assertRaisesMessage(services.NoCapacity, "Node other owns no usable IP"):
            self.select(pool, node="other")
        with override_settings(NODE_HEARTBEAT_TIMEOUT=60), self.assertRaisesMessage(services.NoCapacity, "live"):
            self.select(pool, now=NOW + timedelta(minutes=5))

    def test_hourly_cap_frees_next_hour(self):
        plan = make_plan("hourly", days=[{"total": 100, "hourly": 4}])
        ip = make_ip("192.0.2.40", self.node, plan=plan)
        pool = make_pool("hourly", all_tenants=True, members=[(ip, 1)])
        self.assertEqual(self.select(pool, count=10).reserved, 4)
        with self.assertRaises(services.NoCapacity) as caught:
            self.select(pool)
        self.assertEqual(caught.exception.until, datetime(2030, 3, 10, 16, tzinfo=ZoneInfo("UTC")))
        services.heartbeat("n1", now=NOW + timedelta(hours=1))
        self.assertEqual(self.select(pool, count=10, now=NOW + timedelta(hours=1)).reserved, 4)

    def test_day_boundary_in_dedicated_tenants_time_zone(self):
        tenant = core_services.create_tenant("tokyo", "Tokyo", time_zone="Asia/Tokyo")
        ip = make_ip("192.0.2.50", self.node, plan=self.plan)
        pool = make_pool("tokyo-only", tenant=tenant, members=[(ip, 1)])
        services.select_source_ip(tenant=tenant, pool=pool, provider="google", count=10, now=NOW)
        with self.assertRaises(services.NoCapacity) as caught:
            services.select_source_ip(tenant=tenant, pool=pool, provider="google", now=NOW)
        ip = IPAddress.objects.get(pk=ip.pk)
        self.assertEqual(ip.local_date(NOW).isoformat(), "2030-03-11")  # 00:30 in Tokyo
        self.assertEqual(caught.exception.until, datetime(2030, 3, 12, tzinfo=ZoneInfo("Asia/Tokyo")))

    def test_redis_restart_does_not_reset_caps(self):
        ip = make_ip("192.0.2.60", self.node, plan=self.plan)
        pool = make_pool("durable", all_tenants=True, members=[(ip, 1)])
        self.assertEqual(self.select(pool, count=7).reserved, 7)
        self.assertEqual(services.flush_usage(), 1)
        self.assertEqual(IPDailyUsage.objects.get(ip=ip, provider="google").reserved, 7)
        flush_test_redis()  # Redis lost every counter
        self.assertEqual(self.select(pool, count=7).reserved, 3)
        # Outcomes recorded by the engine count too, even when a reservation was never flushed.
        flush_test_redis()
        services.record_outcomes(ip, "microsoft", delivered=4, bounced=1, now=NOW)
        # microsoft: 5 sent (outcomes) of 12; total: 7 (flushed google) + 5 of 15 → 3 left in all.
        self.assertEqual(self.select(pool, provider="microsoft", count=10).reserved, 3)
        with self.assertRaises(services.NoCapacity):
            self.select(pool, provider="other")

    def test_flush_never_lowers_the_database(self):
        ip = make_ip("192.0.2.70", self.node)
        pool = make_pool("flush", all_tenants=True, members=[(ip, 1)])
        IPDailyUsage.objects.create(ip=ip, date=NOW.date(), provider="google", reserved=50)
        self.select(pool, count=5)  # seeded from 50 → 55
        services.flush_usage()
        self.assertEqual(IPDailyUsage.objects.get(ip=ip, provider="google").reserved, 55)
        counters.get_redis().set(counters.daily_key(ip.pk, NOW.date(), "google"), 3)
        counters.get_redis().sadd(counters.dirty_set(NOW.date()), counters.daily_key(ip.pk, NOW.date(), "google"))
        services.flush_usage()
        self.assertEqual(IPDailyUsage.objects.get(ip=ip, provider="google").reserved, 55)


class ProviderTest(TenantTestCase):
    def test_provider_for(self):
        self.assertEqual(provider_for("gmail.com"), Provider.GOOGLE)
        self.assertEqual(provider_for("GoogleMail.com."), Provider.GOOGLE)
        self.assertEqual(provider_for("example.com", ["aspmx.l.google.com."]), Provider.GOOGLE)
        self.assertEqual(provider_for("hotmail.co.uk"), Provider.MICROSOFT)
        self.assertEqual(provider_for("corp.test", ["corp-test.mail.protection.outlook.com"]), Provider.MICROSOFT)
        self.assertEqual(provider_for("msn.com"), Provider.MICROSOFT)
        self.assertEqual(provider_for("aol.com"), Provider.YAHOO)
        self.assertEqual(provider_for("ymail.com"), Provider.YAHOO)
        self.assertEqual(provider_for("example.org", ["mta5.am0.yahoodns.net"]), Provider.YAHOO)
        self.assertEqual(provider_for("example.org", ["mx.example.org"]), Provider.OTHER)
        self.assertEqual(provider_for("notgoogle.com", ["mx.evilgoogle.com"]), Provider.OTHER)
