"""Acceptance points of the IP pools issue not covered elsewhere: node heartbeats and liveness, field-level 400s
for IP addresses, the periodic blocklist sweep as a system job against a real loopback DNS server, reputation and
event history in the API, the blocklist page's history, and the superuser-only throttle rule page."""

from datetime import UTC, datetime, timedelta

from django.test import Client, override_settings

from deliveryhub import jobs
from deliveryhub import services as core_services
from deliveryhub.choices import Role
from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase, login_verified, make_user
from deliveryhub.testing.dns import DNSServer
from ippools import services
from ippools.choices import IPEventKind, IPState, NodeStatus
from ippools.models import BlocklistCheck, DeliveryNode, IPAddress, IPEvent, IPPoolMember, ThrottleRule
from ippools.testing import flush_test_redis, make_ip, make_node, make_pool

NOW = datetime(2030, 3, 10, 12, tzinfo=UTC)
ZEN = "zen.spamhaus.org"


class NodeHeartbeatTest(TenantTestCase):
    def setUp(self):
        flush_test_redis()

    def test_heartbeat_registers_and_keeps_a_node_live(self):
        services.heartbeat("worker-node", now=NOW)  # a worker of an unknown node registers it
        node = DeliveryNode.objects.get(name="worker-node")
        self.assertEqual(node.last_heartbeat, NOW)
        self.assertTrue(node.is_live(NOW + timedelta(seconds=60)))
        with override_settings(NODE_HEARTBEAT_TIMEOUT=120):
            self.assertFalse(node.is_live(NOW + timedelta(seconds=121)))
            self.assertEqual(list(DeliveryNode.objects.live(NOW + timedelta(seconds=121))), [])
        services.heartbeat("worker-node", now=NOW + timedelta(minutes=10))
        node.refresh_from_db()
        self.assertTrue(node.is_live(NOW + timedelta(minutes=10)))
        node.status = NodeStatus.DRAINING
        node.save()
        self.assertFalse(node.is_live(NOW + timedelta(minutes=10)))  # draining: no new batches
        entries = AuditEntry.objects.count()
        services.heartbeat("worker-node", now=NOW + timedelta(minutes=11))
        self.assertEqual(AuditEntry.objects.count(), entries)  # heartbeats are not configuration changes

    def test_api_shows_liveness_and_heartbeat_is_read_only(self):
        _, op_key = core_services.create_api_key(tenant=None, name="ops", role=Role.ADMIN)
        node = make_node("n1")
        response = self.api(op_key).get(f"/api/v1/nodes/{node.pk}/")
        self.assertTrue(response.json()["is_live"])
        response = self.api(op_key).patch(
            f"/api/v1/nodes/{node.pk}/", {"last_heartbeat": "2000-01-01T00:00:00Z", "region": "eu"}, format="json"
        )
        self.assertEqual(response.status_code, 200, response.content)
        node.refresh_from_db()
        self.assertEqual(node.region, "eu")
        self.assertGreater(node.last_heartbeat.year, 2000)


class IPAddressValidationTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.op_key_obj, cls.op_key = core_services.create_api_key(tenant=None, name="ops", role=Role.ADMIN)
        cls.node = make_node("n1")
        cls.ip = make_ip("2001:db8::99", cls.node)
        cls.ip4 = make_ip("192.0.2.10", cls.node)

    def post(self, data):
        return self.api(self.op_key).post("/api/v1/ip-addresses/", {"node": self.node.pk, **data}, format="json")

    def test_field_level_400s(self):
        for address in ("2001:0DB8:0:0::99", "192.0.2.10"):  # the same addresses, written differently
            with self.subTest(address=address):
                response = self.post({"address": address})
                self.assertEqual(response.status_code, 400, response.content)
                self.assertIn("address", response.json()["error"]["fields"])
        for address in ("192.0.2.300", "not-an-ip", "2001:db8:::1", ""):
            with self.subTest(address=address):
                response = self.post({"address": address})
                self.assertEqual(response.status_code, 400, response.content)
                self.assertIn("address", response.json()["error"]["fields"])
        response = self.post({"address": "192.0.2.11", "state": "warming"})
        self.assertEqual(response.status_code, 400, response.content)
        self.assertIn("warmup_plan", response.json()["error"]["fields"])
        response = self.api(self.op_key).patch(
            f"/api/v1/ip-addresses/{self.ip4.pk}/", {"address": "2001:db8::99"}, format="json"
        )
        self.assertEqual(response.status_code, 400, response.content)
        self.assertIn("address", response.json()["error"]["fields"])
        self.assertEqual(self.post({"address": "198.51.100.1"}).status_code, 201)

    def test_event_and_reputation_history_in_the_api(self):
        services.pause_ip(self.ip4, reason="maintenance")
        services.update_reputation(self.ip4)
        events = self.api(self.op_key).get(f"/api/v1/ip-addresses/{self.ip4.pk}/events/").json()["results"]
        self.assertEqual(events[0]["kind"], IPEventKind.PAUSED)
        history = self.api(self.op_key).get(f"/api/v1/ip-addresses/{self.ip4.pk}/reputation-history/").json()
        self.assertEqual(history["results"][0]["score"], 100)
        self.assertIn("explanation", history["results"][0])


class SweepTest(TenantTestCase):
    """The periodic sweep is a system job (every BLOCKLIST_SWEEP_SECONDS, default 30 minutes) run through RQ."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns = DNSServer().start()
        cls.settings_override = override_settings(
            DNS_RESOLVERS=[cls.dns.address], DNS_TIMEOUT=0.5, BLOCKLIST_ZONES=[ZEN], BLOCKLIST_DOMAIN_ZONES=[],
            BLOCKLIST_QUERY_ATTEMPTS=1, SPAMHAUS_DQS_KEY="", RQ_IS_ASYNC=False,
        )  # fmt: skip
        cls.settings_override.enable()

    @classmethod
    def tearDownClass(cls):
        cls.settings_override.disable()
        cls.dns.stop()
        super().tearDownClass()

    def setUp(self):
        flush_test_redis()
        self.dns.clear_faults()
        self.dns.set_zone(ZEN, f"@ 300 IN SOA ns.{ZEN}. h.{ZEN}. 1 3600 600 86400 60\n10.2.0.192 300 IN A 127.0.0.2")
        self.node = make_node("n1")
        self.listed = make_ip("192.0.2.10", self.node)
        self.clean = make_ip("192.0.2.11", self.node)
        self.retired = make_ip("192.0.2.12", self.node, state=IPState.RETIRED)
        self.pool = make_pool("p", all_tenants=True, members=[(self.listed, 1), (self.clean, 1)])

    def test_registered_as_a_system_job_every_30_minutes(self):
        registry = jobs.discover_system_jobs()
        sweep = registry["ippools.jobs.sweep_blocklists"]
        self.assertEqual((sweep.interval, sweep.queue), (1800, "default"))
        for name in ("step_warmups", "flush_ip_usage", "update_reputations"):
            self.assertIn(f"ippools.jobs.{name}", registry)

    def test_sweep_checks_every_non_retired_ip_and_pauses_new_listings(self):
        jobs.run_system_job("ippools.jobs.sweep_blocklists")  # what the RQ worker runs
        self.assertEqual(
            set(BlocklistCheck.objects.values_list("ip__address", "status")),
            {("192.0.2.10", "listed"), ("192.0.2.11", "clear")},
        )
        self.assertTrue(IPPoolMember.objects.get(pool=self.pool, ip=self.listed).paused)
        self.assertFalse(IPPoolMember.objects.get(pool=self.pool, ip=self.clean).paused)
        self.assertEqual(IPEvent.objects.filter(kind=IPEventKind.LISTED).count(), 1)
        entry = AuditEntry.objects.get(action="ip.listed")
        self.assertEqual(entry.actor_type, "system")
        jobs.run_system_job("ippools.jobs.sweep_blocklists")  # answers cached: no new listing, no new event
        self.assertEqual(IPEvent.objects.filter(kind=IPEventKind.LISTED).count(), 1)

    def test_blocklist_page_shows_listed_now_and_history(self):
        services.check_blocklists(self.listed, now=NOW)
        self.dns.set_zone(ZEN, f"@ 300 IN SOA ns.{ZEN}. h.{ZEN}. 1 3600 600 86400 60\n")
        services.check_blocklists(self.listed, now=NOW + timedelta(hours=2))
        root = make_user("root@ops.test", is_superuser=True)
        client = Client()
        login_verified(client, root)
        page = client.get("/ip-pools/blocklists/").content.decode()
        self.assertIn("No IP address is listed.", page)
        history = page.split('id="blocklist-table"')[1]
        self.assertIn("Not listed", history)
        self.assertIn("Listed", history)
        self.assertIn("SBL: Spamhaus SBL data", history)
        page = client.get(f"/ip-pools/addresses/{self.listed.pk}/").content.decode()
        self.assertIn("no longer listed", page)


class ThrottleRuleUITest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.root = make_user("root@ops.test", is_superuser=True)
        cls.node = make_node("n1")
        cls.ip = make_ip("192.0.2.10", cls.node)
        cls.pool = make_pool("dedicated-a", tenant=cls.tenant_a, members=[(cls.ip, 1)])
        cls.url = "/ip-pools/throttle-rules/"

    def setUp(self):
        flush_test_redis()

    def test_platform_rules_are_for_superusers_a_tenant_admin_writes_their_own(self):
        add = f"{self.url}new/"
        client = Client()
        login_verified(client, self.bob)  # a viewer reads, writes nothing
        self.assertEqual(client.get(self.url).status_code, 200)
        self.assertEqual(client.post(add, {"max_per_minute": 5, "pool": self.pool.pk}).status_code, 403)
        client = Client()
        login_verified(client, self.alice)  # an admin writes their tenant's rule, never a platform one
        response = client.post(add, {"max_per_minute": 5, "pool": self.pool.pk, "tenant": ""})
        self.assertEqual(response.status_code, 302, response.content)
        self.assertEqual(list(ThrottleRule.objects.values_list("tenant", "pool", "max_per_minute")),
                         [(self.tenant_a.pk, self.pool.pk, 5)])  # fmt: skip
        client = Client()
        client.force_login(self.root)
        self.assertEqual(client.get(add).status_code, 302)  # to the second factor before the form, not after
        self.assertEqual(client.post(add, {"max_per_minute": 5}).status_code, 302)
        self.assertEqual(ThrottleRule.objects.count(), 1)

    def test_list_create_and_delete(self):
        client = Client()
        login_verified(client, self.root)
        self.assertContains(client.get(self.url), "No throttle rules")
        add = f"{self.url}new/"
        response = client.post(add, {"pool": self.pool.pk, "provider": "google", "max_per_minute": 30,
                                     "enabled": "on", "tenant": self.tenant_a.pk})  # fmt: skip
        self.assertRedirects(response, self.url, fetch_redirect_response=False)
        rule = ThrottleRule.objects.get()
        self.assertEqual((rule.tenant, rule.pool, rule.provider, rule.max_per_minute), (self.tenant_a, self.pool,
                                                                                      "google", 30))  # fmt: skip
        self.assertTrue(AuditEntry.objects.filter(action="create", object_type="ippools.throttlerule").exists())
        page = client.get(self.url)
        self.assertContains(page, "pool dedicated-a")
        # Invalid rules are refused with the model's reasons and change nothing.
        response = client.post(add, {"provider": "google"})
        self.assertContains(response, "Set at least one limit", status_code=400)
        response = client.post(add, {"ip": self.ip.pk, "pool": self.pool.pk, "max_per_hour": 5})
        self.assertContains(response, "not both", status_code=400)
        self.assertEqual(ThrottleRule.objects.count(), 1)
        edit = {"pool": self.pool.pk, "provider": "google", "max_per_minute": 60, "tenant": self.tenant_a.pk}
        response = client.post(f"{self.url}{rule.pk}/edit/", edit)
        self.assertRedirects(response, self.url, fetch_redirect_response=False)
        self.assertEqual(ThrottleRule.objects.get().max_per_minute, 60)
        delete_url = f"{self.url}{rule.pk}/delete/"
        self.assertEqual(client.get(delete_url).status_code, 405)
        self.assertRedirects(client.post(delete_url), self.url, fetch_redirect_response=False)
        self.assertFalse(ThrottleRule.objects.exists())
        self.assertTrue(AuditEntry.objects.filter(action="delete", object_type="ippools.throttlerule").exists())


class TenantUITest(TenantTestCase):
    def test_ungranted_shared_pool_is_404_and_listed_filter(self):
        flush_test_redis()
        node = make_node("n1")
        listed, clean = make_ip("192.0.2.10", node), make_ip("192.0.2.11", node)
        IPAddress.objects.filter(pk=listed.pk).update(listed=True, listed_zones=ZEN)
        granted = make_pool("granted-b", members=[(listed, 1), (clean, 1)])
        services.grant_pool(granted, self.tenant_b)
        client = Client()
        client.force_login(self.bob)
        self.assertEqual(client.get(f"/ip-pools/{granted.pk}/").status_code, 404)
        self.assertNotContains(client.get("/ip-pools/"), "granted-b")
        login_verified(client, self.charlie)
        self.assertContains(client.get(f"/ip-pools/{granted.pk}/"), "Tenant B (granted)")
        page = client.get("/ip-pools/addresses/", {"listed": "true"})
        self.assertEqual([row.record.address for row in page.context["table"].paginated_rows], ["192.0.2.10"])
        page = client.get("/ip-pools/addresses/", {"listed": "false"})
        self.assertEqual([row.record.address for row in page.context["table"].paginated_rows], ["192.0.2.11"])
        api = self.api(self.charlie_key).get("/api/v1/ip-addresses/", {"listed": "true"}).json()
        self.assertEqual([row["address"] for row in api["results"]], ["192.0.2.10"])
