"""Who sees and uses which pools and IPs: dedicated vs shared vs granted; platform writes only."""

from deliveryhub import services as core_services
from deliveryhub.choices import Role
from deliveryhub.testing.cases import TenantTestCase, make_user
from ippools import services
from ippools.models import DeliveryNode, IPAddress, IPPool
from ippools.testing import flush_test_redis, make_ip, make_node, make_pool


class PoolTenancyTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.root = make_user("root@ops.test", is_superuser=True)
        cls.op_key_obj, cls.op_key = core_services.create_api_key(tenant=None, name="ops", role=Role.ADMIN)
        cls.node = make_node("n1")
        cls.other_node = make_node("n2")
        cls.ip_a = make_ip("192.0.2.10", cls.node)
        cls.ip_b = make_ip("192.0.2.20", cls.other_node)
        cls.ip_shared = make_ip("2001:db8::25", cls.node)
        cls.ip_granted = make_ip("192.0.2.30", cls.node)
        cls.ip_retired = make_ip("192.0.2.40", cls.node, state="retired")
        cls.pool_a = make_pool("dedicated-a", tenant=cls.tenant_a, members=[(cls.ip_a, 100)])
        cls.pool_b = make_pool("dedicated-b", tenant=cls.tenant_b, members=[(cls.ip_b, 100)])
        cls.shared = make_pool("shared", all_tenants=True, members=[(cls.ip_shared, 100), (cls.ip_retired, 1)])
        cls.granted = make_pool("granted-b", members=[(cls.ip_granted, 100)])
        services.grant_pool(cls.granted, cls.tenant_b)

    def setUp(self):
        flush_test_redis()

    def test_usable_by(self):
        self.assertEqual(set(IPPool.objects.usable_by(self.tenant_a)), {self.pool_a, self.shared})
        self.assertEqual(set(IPPool.objects.usable_by(self.tenant_b)), {self.pool_b, self.shared, self.granted})
        self.assertEqual(set(IPAddress.objects.usable_by(self.tenant_a)), {self.ip_a, self.ip_shared})
        self.assertEqual(
            set(IPAddress.objects.usable_by(self.tenant_b).values_list("address", "ehlo_hostname")),
            {(ip.address, ip.ehlo_hostname) for ip in (self.ip_b, self.ip_shared, self.ip_granted)},
        )

    def test_tenant_cannot_see_other_dedicated_pool_404(self):
        response = self.api(self.alice_key).get(f"/api/v1/ip-pools/{self.pool_b.pk}/")
        self.assertEqual(response.status_code, 404)
        response = self.api(self.alice_key).get(f"/api/v1/ip-addresses/{self.ip_b.pk}/")
        self.assertEqual(response.status_code, 404)
        response = self.api(self.alice_key).get(f"/api/v1/ip-pools/{self.granted.pk}/")
        self.assertEqual(response.status_code, 404)
        self.assertEqual(self.api(self.charlie_key).get(f"/api/v1/ip-pools/{self.granted.pk}/").status_code, 200)

    def test_tenant_lists_only_usable(self):
        names = {row["name"] for row in self.api(self.bob_key).get("/api/v1/ip-pools/").json()["results"]}
        self.assertEqual(names, {"dedicated-a", "shared"})
        addresses = {row["address"] for row in self.api(self.bob_key).get("/api/v1/ip-addresses/").json()["results"]}
        self.assertEqual(addresses, {"192.0.2.10", "2001:db8::25", "192.0.2.40"})
        nodes = {row["name"] for row in self.api(self.alice_key).get("/api/v1/nodes/").json()["results"]}
        self.assertEqual(nodes, {"n1"})
        self.assertEqual(self.api(self.alice_key).get(f"/api/v1/nodes/{self.other_node.pk}/").status_code, 404)

    def test_tenant_cannot_use_other_dedicated_pool(self):
        with self.assertRaises(IPPool.DoesNotExist):
            services.select_source_ip(tenant=self.tenant_a, pool=self.pool_b, provider="google")
        with self.assertRaises(IPPool.DoesNotExist):
            services.select_source_ip(tenant=self.tenant_a, pool=self.granted, provider="google")
        selection = services.select_source_ip(tenant=self.tenant_b, pool=self.granted, provider="google")
        self.assertEqual(selection.ip, self.ip_granted)

    def test_tenant_default_pool_must_be_usable(self):
        response = self.api(self.alice_key).post(
            "/api/v1/default-pools/", {"purpose": "marketing", "pool": self.pool_b.pk}, format="json"
        )
        self.assertEqual(response.status_code, 400, response.content)
        response = self.api(self.alice_key).post(
            "/api/v1/default-pools/", {"purpose": "marketing", "pool": self.pool_a.pk}, format="json"
        )
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(services.default_pool_for(self.tenant_a, "marketing"), self.pool_a)
        self.assertEqual(services.default_pool_for(self.tenant_a, "transactional"), self.pool_a)  # dedicated first
        self.assertEqual(services.default_pool_for(self.tenant_b, "marketing"), None)

    def test_foreign_pool_in_a_writable_field_reads_as_nonexistent(self):
        """The viewset base narrows every writable related field: tenant B's dedicated pool is refused with
        the very answer a pool id that never existed gets, so the API does not confirm it exists."""
        url = "/api/v1/default-pools/"
        foreign = self.api(self.alice_key).post(url, {"purpose": "marketing", "pool": self.pool_b.pk}, format="json")
        missing = self.api(self.alice_key).post(url, {"purpose": "marketing", "pool": 987654}, format="json")
        self.assertEqual(foreign.status_code, 400, foreign.content)
        self.assertEqual(
            foreign.json()["error"]["fields"]["pool"][0].replace(str(self.pool_b.pk), "N"),
            missing.json()["error"]["fields"]["pool"][0].replace("987654", "N"),
        )

    def test_writes_are_platform_only(self):
        data = {"name": "new-pool", "purpose": "marketing"}
        self.assertEqual(self.api(self.alice_key).post("/api/v1/ip-pools/", data, format="json").status_code, 403)
        response = self.api(self.alice_key).patch(f"/api/v1/ip-pools/{self.pool_a.pk}/", {"region": "x"}, format="json")
        self.assertEqual(response.status_code, 403)
        response = self.api(self.alice_key).post(
            "/api/v1/ip-addresses/", {"address": "192.0.2.99", "node": self.node.pk}, format="json"
        )
        self.assertEqual(response.status_code, 403)
        self.assertEqual(self.api(self.op_key).post("/api/v1/ip-pools/", data, format="json").status_code, 201)
        response = self.api(self.op_key).post(
            "/api/v1/ip-addresses/", {"address": "2001:DB8::99", "node": self.node.pk}, format="json"
        )
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["address"], "2001:db8::99")
        response = self.api(self.op_key).post(
            "/api/v1/ip-addresses/", {"address": "2001:db8::99", "node": self.node.pk}, format="json"
        )
        self.assertEqual(response.status_code, 400)
        response = self.api(self.op_key).post(
            "/api/v1/ip-addresses/", {"address": "999.1.1.1", "node": self.node.pk}, format="json"
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("address", response.json()["error"]["fields"])

    def test_superuser_session_sees_everything(self):
        from rest_framework.test import APIClient

        from deliveryhub.testing.cases import login_verified

        client = APIClient()
        login_verified(client, self.root)
        names = {row["name"] for row in client.get("/api/v1/ip-pools/").json()["results"]}
        self.assertEqual(names, {"dedicated-a", "dedicated-b", "shared", "granted-b"})
        response = client.post("/api/v1/nodes/", {"name": "n3", "region": "eu"}, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        self.assertTrue(DeliveryNode.objects.filter(name="n3").exists())
        self.assertTrue(self.last_audit(action="create", object_type="ippools.deliverynode"))
