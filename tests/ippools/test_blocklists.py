"""DNSBL checks against a real DNS server on loopback: listed, clear, error codes, timeout, SERVFAIL, IPv6,
caching for the TTL, pause on listing and resume on delisting, the API action, domain lists, PTR."""

from datetime import UTC, datetime, timedelta

from django.test import override_settings

from deliveryhub import services as core_services
from deliveryhub.choices import Role
from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase
from deliveryhub.testing.dns import DNSServer
from ippools import dnsbl, services
from ippools.choices import IPEventKind, ListingStatus, PTRStatus
from ippools.models import BlocklistCheck, BlocklistZone, IPEvent, IPPoolMember
from ippools.testing import flush_test_redis, make_ip, make_node, make_pool

NOW = datetime(2030, 3, 10, 12, tzinfo=UTC)
ZEN = "zen.spamhaus.org"
BARRACUDA = "b.barracudacentral.org"
V6 = "2001:db8::1"
V6_QUERY = ".".join(reversed("20010db8000000000000000000000001"))  # nibbles, reversed


class DNSBLTest(TenantTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns = DNSServer().start()
        cls.settings_override = override_settings(
            DNS_RESOLVERS=[cls.dns.address],
            DNS_TIMEOUT=0.5,
            BLOCKLIST_ZONES=[ZEN, BARRACUDA],
            BLOCKLIST_DOMAIN_ZONES=["dbl.spamhaus.org"],
            BLOCKLIST_QUERY_ATTEMPTS=2,
            SPAMHAUS_DQS_KEY="",
        )
        cls.settings_override.enable()

    @classmethod
    def tearDownClass(cls):
        cls.settings_override.disable()
        cls.dns.stop()
        super().tearDownClass()

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.op_key_obj, cls.op_key = core_services.create_api_key(tenant=None, name="ops", role=Role.ADMIN)
        cls.node = make_node("n1", now=NOW)
        cls.ip = make_ip("192.0.2.10", cls.node)
        cls.ip6 = make_ip(V6, cls.node)
        cls.pausing = make_pool("pausing", all_tenants=True, members=[(cls.ip, 1), (cls.ip6, 1)])
        cls.keeping = make_pool("keeping", tenant=cls.tenant_a, pause_on_listing=False, members=[(cls.ip, 1)])

    def setUp(self):
        flush_test_redis()
        self.dns.clear_faults()
        self.dns.queries.clear()
        self.serve(ZEN, "")
        self.serve(BARRACUDA, "")

    def serve(self, zone, records):
        self.dns.set_zone(zone, f"@ 300 IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n{records}")

    def latest(self, ip, zone):
        return BlocklistCheck.objects.filter(ip=ip, zone=zone).order_by("-checked_at", "-id").first()

    def test_query_names(self):
        self.assertEqual(dnsbl.ip_query_name("192.0.2.10", ZEN), "10.2.0.192.zen.spamhaus.org")
        self.assertEqual(dnsbl.ip_query_name(V6, ZEN), f"{V6_QUERY}.{ZEN}")
        self.assertEqual(len(V6_QUERY.split(".")), 32)
        with override_settings(SPAMHAUS_DQS_KEY="k3y"):
            self.assertEqual(dnsbl.Zone(ZEN).query_zone, "k3y.zen.dq.spamhaus.net")
            self.assertEqual(dnsbl.Zone(BARRACUDA).query_zone, BARRACUDA)

    def test_clear_then_listed_pauses_then_delisted_resumes(self):
        checks = services.check_blocklists(self.ip, now=NOW)
        self.assertEqual({c.zone: c.status for c in checks}, {ZEN: "clear", BARRACUDA: "clear"})
        self.assertIn(("10.2.0.192.zen.spamhaus.org", "A", "udp"), self.dns.queries)

        self.serve(ZEN, "10.2.0.192 900 IN A 127.0.0.2\n10.2.0.192 900 IN A 127.0.0.4")
        services.check_blocklists(self.ip, now=NOW + timedelta(minutes=1))  # still cached: no new query
        self.assertEqual(self.latest(self.ip, ZEN).status, ListingStatus.CLEAR)
        later = NOW + timedelta(hours=2)
        services.check_blocklists(self.ip, now=later)
        check = self.latest(self.ip, ZEN)
        self.assertEqual(check.status, ListingStatus.LISTED)
        self.assertEqual(check.codes, ["127.0.0.2", "127.0.0.4"])
        self.assertIn("SBL", check.meaning)
        self.assertIn("XBL", check.meaning)
        self.assertEqual(check.expires_at, later + timedelta(seconds=900))  # kept for the answer's TTL
        self.ip.refresh_from_db()
        self.assertTrue(self.ip.listed)
        self.assertEqual(self.ip.listed_zones, ZEN)
        self.assertLess(self.ip.reputation, 100)
        self.assertIn("listed on", self.ip.reputation_explanation)
        pausing = IPPoolMember.objects.get(pool=self.pausing, ip=self.ip)
        self.assertTrue(pausing.paused and pausing.paused_by_listing)
        self.assertFalse(IPPoolMember.objects.get(pool=self.keeping, ip=self.ip).paused)  # per-pool choice
        self.assertTrue(IPEvent.objects.filter(ip=self.ip, kind=IPEventKind.LISTED).exists())
        self.assertTrue(AuditEntry.objects.filter(action="ip.listed", object_id=str(self.ip.pk)).exists())
        picks = {
            services.select_source_ip(tenant=self.tenant_b, pool=self.pausing, provider="google", now=NOW).ip
            for _ in range(20)
        }
        self.assertEqual(picks, {self.ip6})  # the listed IP is out of this pool's rotation

        self.serve(ZEN, "")
        services.check_blocklists(self.ip, now=later + timedelta(hours=2))
        self.ip.refresh_from_db()
        self.assertFalse(self.ip.listed)
        self.assertFalse(IPPoolMember.objects.get(pool=self.pausing, ip=self.ip).paused)
        self.assertTrue(IPEvent.objects.filter(ip=self.ip, kind=IPEventKind.DELISTED).exists())
        self.assertTrue(AuditEntry.objects.filter(action="ip.delisted", object_id=str(self.ip.pk)).exists())
        history = list(
            BlocklistCheck.objects.filter(ip=self.ip, zone=ZEN).order_by("checked_at").values_list("status", flat=True)
        )
        self.assertEqual(history, ["clear", "listed", "clear"])

    def test_error_codes_are_errors_never_listings(self):
        self.serve(ZEN, "10.2.0.192 IN A 127.255.255.254")
        self.serve(BARRACUDA, "10.2.0.192 IN A 10.0.0.1")
        checks = {c.zone: c for c in services.check_blocklists(self.ip, now=NOW)}
        self.assertEqual(checks[ZEN].status, ListingStatus.ERROR)
        self.assertIn("public/open resolver", checks[ZEN].meaning)
        self.assertEqual(checks[BARRACUDA].status, ListingStatus.ERROR)
        self.ip.refresh_from_db()
        self.assertFalse(self.ip.listed)
        self.assertFalse(IPPoolMember.objects.filter(ip=self.ip, paused=True).exists())

    def test_admin_zone_with_own_codes_and_unknown_code(self):
        BlocklistZone.objects.create(zone="bl.example.test", codes={"127.0.0.5": "listed for testing"})
        self.serve("bl.example.test", "10.2.0.192 IN A 127.0.0.5\n20.2.0.192 IN A 127.0.0.77")
        checks = {c.zone: c for c in services.check_blocklists(self.ip, now=NOW)}
        self.assertEqual(checks["bl.example.test"].status, ListingStatus.LISTED)
        self.assertEqual(checks["bl.example.test"].meaning, "listed for testing")
        self.assertEqual(
            dnsbl.interpret(dnsbl.Zone("bl.example.test"), ("127.0.0.77",)),
            (ListingStatus.LISTED, "listed (code 127.0.0.77)"),
        )

    def test_timeout_and_servfail_are_unknown_and_retried(self):
        self.dns.timeout(ZEN)
        self.dns.servfail(BARRACUDA)
        checks = {c.zone: c for c in services.check_blocklists(self.ip, now=NOW)}
        self.assertEqual(checks[ZEN].status, ListingStatus.UNKNOWN)
        self.assertIn("timed out", checks[ZEN].meaning)
        self.assertEqual(checks[BARRACUDA].status, ListingStatus.UNKNOWN)
        self.assertEqual(checks[ZEN].expires_at, NOW + timedelta(seconds=120))  # retried soon
        tries = [q for q in self.dns.queries if q.qname.endswith(BARRACUDA)]
        self.assertGreaterEqual(len(tries), 2)
        # A listing stays a listing through an unknown answer.
        self.dns.clear_faults()
        self.serve(ZEN, "10.2.0.192 IN A 127.0.0.3")
        services.check_blocklists(self.ip, now=NOW + timedelta(minutes=5))
        self.dns.servfail(ZEN)
        services.check_blocklists(self.ip, now=NOW + timedelta(hours=3))
        self.assertEqual(self.latest(self.ip, ZEN).status, ListingStatus.UNKNOWN)
        self.ip.refresh_from_db()
        self.assertTrue(self.ip.listed)

    def test_ipv6_listing(self):
        self.serve(ZEN, f"{V6_QUERY} IN A 127.0.0.3")
        checks = {c.zone: c for c in services.check_blocklists(self.ip6, now=NOW)}
        self.assertEqual(checks[ZEN].status, ListingStatus.LISTED)
        self.assertEqual(checks[ZEN].query_name, f"{V6_QUERY}.{ZEN}")
        self.assertIn((f"{V6_QUERY}.{ZEN}", "A", "udp"), self.dns.queries)

    def test_api_check_action_and_results(self):
        self.serve(ZEN, "10.2.0.192 IN A 127.0.0.2")
        url = f"/api/v1/ip-addresses/{self.ip.pk}/check-blocklists/"
        self.assertEqual(self.api(self.alice_key).post(url).status_code, 403)
        response = self.api(self.op_key).post(url)
        self.assertEqual(response.status_code, 200, response.content)
        self.assertTrue(response.json()["ip"]["listed"])
        self.assertEqual({c["zone"]: c["status"] for c in response.json()["checks"]}[ZEN], "listed")
        # Tenant A uses this IP (its dedicated pool): it may read the results; tenant B's key may too (shared pool).
        results = self.api(self.bob_key).get(f"/api/v1/ip-addresses/{self.ip.pk}/blocklist-checks/").json()
        self.assertEqual({r["zone"] for r in results["results"]}, {ZEN, BARRACUDA})
        self.assertEqual(self.api(self.bob_key).get(f"/api/v1/blocklist-checks/?ip={self.ip.pk}").status_code, 200)

    def test_domain_blocklist(self):
        self.serve("dbl.spamhaus.org", "spammy.test IN A 127.0.1.2\nwrong.test IN A 127.0.1.255")
        [check] = services.check_domain_blocklists("spammy.test", now=NOW)
        self.assertEqual((check.status, check.meaning), (ListingStatus.LISTED, "DBL: spam domain"))
        [check] = services.check_domain_blocklists("wrong.test", now=NOW)
        self.assertEqual(check.status, ListingStatus.ERROR)
        [check] = services.check_domain_blocklists("clean.test", now=NOW)
        self.assertEqual(check.status, ListingStatus.CLEAR)

    def test_ptr_fcrdns(self):
        self.dns.set_ptr("192.0.2.10", "mta1.example.test")
        self.dns.set_zone("example.test", "mta1 IN A 192.0.2.10\nmta2 IN A 192.0.2.99")
        self.assertEqual(services.check_ptr(self.ip), PTRStatus.OK)
        self.dns.set_ptr("192.0.2.10", "mta2.example.test")
        self.assertEqual(services.check_ptr(self.ip), PTRStatus.MISMATCH)
        self.serve("8.b.d.0.1.0.0.2.ip6.arpa", "")
        self.assertEqual(services.check_ptr(self.ip6), PTRStatus.MISSING)
        self.dns.servfail("8.b.d.0.1.0.0.2.ip6.arpa")
        self.assertEqual(services.check_ptr(self.ip6), PTRStatus.UNKNOWN)
