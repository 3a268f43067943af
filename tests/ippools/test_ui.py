"""UI pages: lists and details render with badges and progress bars; tenants see only what they may use;
changes are POST-only, superuser-only and need a verified second factor."""

from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase, login_verified, make_user
from ippools import services
from ippools.choices import IPState
from ippools.models import IPAddress
from ippools.testing import flush_test_redis, make_ip, make_node, make_plan, make_pool


class IPPoolsUITest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.root = make_user("root@ops.test", is_superuser=True)
        cls.node = make_node("n1")
        cls.plan = make_plan(days=[{"total": 100, "google": 40}] * 4)
        cls.ip_a = make_ip("192.0.2.10", cls.node, plan=cls.plan)
        cls.ip_b = make_ip("192.0.2.20", cls.node)
        cls.pool_a = make_pool("dedicated-a", tenant=cls.tenant_a, members=[(cls.ip_a, 70)])
        cls.pool_b = make_pool("dedicated-b", tenant=cls.tenant_b, members=[(cls.ip_b, 100)])
        cls.shared = make_pool("shared", all_tenants=True)

    def setUp(self):
        flush_test_redis()

    def test_tenant_pages(self):
        services.select_source_ip(tenant=self.tenant_a, pool=self.pool_a, provider="google", count=10)
        self.client.force_login(self.bob)
        page = self.client.get("/ip-pools/")
        self.assertContains(page, "dedicated-a")
        self.assertContains(page, "shared")
        self.assertNotContains(page, "dedicated-b")
        page = self.client.get(f"/ip-pools/{self.pool_a.pk}/")
        self.assertContains(page, "192.0.2.10")
        self.assertContains(page, "Day 1 of 4")
        self.assertNotContains(page, "Add an IP address")
        self.assertEqual(self.client.get(f"/ip-pools/{self.pool_b.pk}/").status_code, 404)
        page = self.client.get("/ip-pools/addresses/")
        self.assertContains(page, "192.0.2.10")
        self.assertContains(page, "Warming up")
        self.assertContains(page, "total: 10 / 100 today")
        self.assertNotContains(page, "192.0.2.20")
        self.assertEqual(self.client.get(f"/ip-pools/addresses/{self.ip_b.pk}/").status_code, 404)
        page = self.client.get(f"/ip-pools/addresses/{self.ip_a.pk}/")
        self.assertContains(page, "google: 10 / 40 today")
        self.assertNotContains(page, "Check blocklists now")
        self.assertEqual(self.client.get("/ip-pools/blocklists/").status_code, 200)

    def test_changes_are_for_verified_superusers(self):
        self.client.force_login(self.alice)
        login_verified(self.client, self.alice)
        url = f"/ip-pools/addresses/{self.ip_a.pk}/pause/"
        self.assertEqual(self.client.post(url).status_code, 403)
        self.assertEqual(self.client.post(f"/ip-pools/addresses/{self.ip_b.pk}/pause/").status_code, 404)
        self.client.logout()
        self.client.force_login(self.root)
        response = self.client.post(url)  # not OTP-verified: sent to verify
        self.assertEqual(response.status_code, 302)
        self.assertEqual(IPAddress.objects.get(pk=self.ip_a.pk).state, IPState.WARMING)
        login_verified(self.client, self.root)
        self.assertEqual(self.client.get(url).status_code, 405)
        self.assertRedirects(
            self.client.post(url, {"reason": "test"}),
            f"/ip-pools/addresses/{self.ip_a.pk}/",
            fetch_redirect_response=False,
        )
        self.assertEqual(IPAddress.objects.get(pk=self.ip_a.pk).state, IPState.PAUSED)
        self.assertTrue(AuditEntry.objects.filter(action="ip.pause", object_id=str(self.ip_a.pk)).exists())
        self.client.post(f"/ip-pools/addresses/{self.ip_a.pk}/resume/")
        self.assertEqual(IPAddress.objects.get(pk=self.ip_a.pk).state, IPState.WARMING)
        response = self.client.post(f"/ip-pools/{self.shared.pk}/members/add/", {"ip": self.ip_b.pk, "weight": 5})
        self.assertEqual(response.status_code, 302)
        self.assertTrue(self.shared.members.filter(ip=self.ip_b, weight=5).exists())
        self.client.post(f"/ip-pools/{self.shared.pk}/grants/add/", {"tenant": self.tenant_b.pk})
        page = self.client.get(f"/ip-pools/{self.shared.pk}/")
        self.assertContains(page, "Add an IP address")
        self.assertContains(page, "Tenant B (granted)")
        page = self.client.get("/ip-pools/")
        self.assertContains(page, "dedicated-b")
