"""Adversarial tenancy checks of the IP pools app: nothing of another tenant's pools leaks through
serializers, filters or the browsable API's filter forms."""

from django.test import Client

from deliveryhub.testing.cases import TenantTestCase, login_verified
from ippools.testing import flush_test_redis, make_ip, make_node, make_pool


class IPPoolLeakTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.node_a = make_node("node-a")
        cls.node_b = make_node("secret-node-b")
        cls.ip_shared = make_ip("192.0.2.10", cls.node_a)
        cls.ip_b = make_ip("198.51.100.77", cls.node_b)
        cls.shared = make_pool("shared", all_tenants=True, members=[(cls.ip_shared, 100)])
        # Tenant B's dedicated pool also holds the shared IP: its name is B's business.
        cls.pool_b = make_pool("charlies-dedicated", tenant=cls.tenant_b, members=[(cls.ip_b, 100), (cls.ip_shared, 1)])

    def setUp(self):
        flush_test_redis()

    def test_ip_address_does_not_name_another_tenants_pool(self):
        detail = self.api(self.alice_key).get(f"/api/v1/ip-addresses/{self.ip_shared.pk}/")
        self.assertEqual(detail.status_code, 200)
        self.assertEqual(detail.json()["pools"], ["shared"])
        listing = self.api(self.alice_key).get("/api/v1/ip-addresses/")
        self.assertNotIn("charlies-dedicated", listing.content.decode())
        self.assertIn("charlies-dedicated", self.api(self.charlie_key).get("/api/v1/ip-addresses/").content.decode())

    def test_foreign_ids_in_filters_answer_like_missing_ones(self):
        client = self.api(self.alice_key)
        cases = [
            ("/api/v1/ip-pools/", "tenant", self.tenant_b.pk),
            ("/api/v1/ip-addresses/", "node", self.node_b.pk),
            ("/api/v1/ip-addresses/", "pool", self.pool_b.pk),
            ("/api/v1/blocklist-checks/", "ip", self.ip_b.pk),
            ("/api/v1/default-pools/", "pool", self.pool_b.pk),
        ]
        for url, name, foreign in cases:
            with self.subTest(url=url, filter=name):
                missing = client.get(url, {name: 999999})
                theirs = client.get(url, {name: foreign})
                self.assertEqual((theirs.status_code, theirs.json()), (missing.status_code, missing.json()))

    def test_browsable_api_filter_forms_name_nothing_of_other_tenants(self):
        client = Client()
        login_verified(client, self.bob)
        for url in ("/api/v1/ip-pools/", "/api/v1/ip-addresses/", "/api/v1/blocklist-checks/",
                    "/api/v1/default-pools/", "/api/v1/ip-pool-members/"):  # fmt: skip
            with self.subTest(url=url):
                response = client.get(url, {"format": "api"})
                self.assertEqual(response.status_code, 200)
                for secret in (b"Tenant B", b"secret-node-b", b"198.51.100.77", b"charlies-dedicated"):
                    self.assertFalse(secret in response.content, secret)

    def test_ui_filter_by_foreign_node_answers_like_a_missing_one(self):
        client = Client()
        login_verified(client, self.bob)
        missing = client.get("/ip-pools/addresses/", {"node": 999999})
        theirs = client.get("/ip-pools/addresses/", {"node": self.node_b.pk})
        self.assertEqual(missing.status_code, 200)
        rows = [[row.record for row in page.context["table"].paginated_rows] for page in (theirs, missing)]
        self.assertEqual(rows[0], rows[1])
