"""The IP pools pages as an operator uses them: create, edit and delete nodes, IPs, pools, plans and zones with the
API's validation and audit; warm-ups previewed, started, stopped and taking effect at once for waiting mail."""

from django.test import Client
from django.utils import timezone

from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase, login_verified, make_user
from ippools import services
from ippools.choices import IPEventKind, IPState
from ippools.models import BlocklistZone, DeliveryNode, IPAddress, IPPool, IPPoolGrant, WarmupPlan
from ippools.testing import flush_test_redis, make_ip, make_node, make_plan, make_pool
from queues.constants import CAPACITY_WAIT_PREFIX
from queues.delivery import scheduler
from queues.models import Message
from queues.testing import make_sending_domain
from tests.queues.helpers import scheduled_batches, send


class OperatorPagesTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.root = make_user("root@ops.test", is_superuser=True)

    def setUp(self):
        flush_test_redis()
        self.client = Client()
        login_verified(self.client, self.root)

    def test_create_node_ip_and_pool_audited_with_the_models_validation(self):
        response = self.client.post("/ip-pools/nodes/new/", {"name": "mta-eu-1", "region": "eu", "status": "active"})
        node = DeliveryNode.objects.get(name="mta-eu-1")
        self.assertRedirects(response, f"/ip-pools/nodes/{node.pk}/", fetch_redirect_response=False)
        self.assertContains(self.client.get(response["Location"]), "No worker is listening")
        form = self.client.get("/ip-pools/addresses/new/", {"node": node.pk}).context["form"]  # the node's "Add one"
        self.assertEqual(str(form["node"].value()), str(node.pk))
        bad = self.client.post("/ip-pools/addresses/new/", {"address": "300.1.2.3", "node": node.pk, "state": "active"})
        self.assertEqual(bad.status_code, 400)
        self.assertContains(bad, "IPv4 or IPv6", status_code=400)
        self.assertFalse(IPAddress.objects.exists())
        response = self.client.post(
            "/ip-pools/addresses/new/", {"address": " 2001:DB8::0:25 ", "node": node.pk, "state": "active"}
        )
        ip = IPAddress.objects.get()
        self.assertEqual(ip.address, "2001:db8::25")  # normalised as the API does
        self.assertRedirects(response, f"/ip-pools/addresses/{ip.pk}/", fetch_redirect_response=False)
        data = {"name": "eu-transactional", "purpose": "transactional", "tenant": "", "all_tenants": "",
                "pause_on_listing": "on"}  # fmt: skip
        pool = IPPool.objects.get(pk=self.client.post("/ip-pools/new/", data)["Location"].strip("/").split("/")[-1])
        self.client.post(f"/ip-pools/{pool.pk}/members/add/", {"ip": ip.pk, "weight": 40})
        member = pool.members.get()
        self.client.post(f"/ip-pools/{pool.pk}/members/{member.pk}/weight/", {"weight": 70})
        self.assertEqual(pool.members.get().weight, 70)
        self.client.post(f"/ip-pools/{pool.pk}/grants/add/", {"tenant": self.tenant_b.pk})
        grant = IPPoolGrant.objects.get(pool=pool)
        self.assertContains(self.client.get(f"/ip-pools/{pool.pk}/"), "Tenant B (granted)")
        self.client.post(f"/ip-pools/{pool.pk}/grants/{grant.pk}/revoke/")
        self.assertFalse(IPPoolGrant.objects.exists())
        # a dedicated pool open to all tenants is refused by the model, as in the API
        bad = self.client.post("/ip-pools/new/", {**data, "name": "x", "tenant": self.tenant_a.pk, "all_tenants": "on"})
        self.assertContains(bad, "cannot be open to all tenants", status_code=400)
        # every change is in the audit log, by the operator
        for object_type in ("ippools.deliverynode", "ippools.ipaddress", "ippools.ippool", "ippools.ippoolmember"):
            entry = AuditEntry.objects.filter(object_type=object_type, action="create").get()
            self.assertEqual(entry.actor_name, "root@ops.test")
        self.assertTrue(AuditEntry.objects.filter(object_type="ippools.ippoolmember", action="update").exists())
        # a node that still owns IPs stays, with the reason
        self.client.post(f"/ip-pools/nodes/{node.pk}/delete/")
        self.assertTrue(DeliveryNode.objects.filter(pk=node.pk).exists())
        self.client.post(f"/ip-pools/addresses/{ip.pk}/delete/")
        self.client.post(f"/ip-pools/nodes/{node.pk}/delete/")
        self.assertFalse(DeliveryNode.objects.exists())

    def test_tenant_members_read_and_cannot_write_platform_objects(self):
        node = make_node("n1")
        for user in (self.alice, self.bob):
            client = Client()
            login_verified(client, user)
            with self.subTest(user=user.email):
                self.assertEqual(client.get("/ip-pools/nodes/new/").status_code, 403)
                self.assertEqual(client.post("/ip-pools/nodes/new/", {"name": "x", "status": "active"}).status_code,
                                 403)  # fmt: skip
                self.assertEqual(client.post(f"/ip-pools/nodes/{node.pk}/delete/").status_code, 404)  # not visible
                self.assertNotContains(client.get("/ip-pools/nodes/"), "n1")
        self.assertEqual(DeliveryNode.objects.count(), 1)

    def test_operator_without_second_factor_is_sent_to_it_before_the_form(self):
        client = Client()
        client.force_login(self.root)
        response = client.get("/ip-pools/nodes/new/")
        self.assertEqual(response.status_code, 302)
        self.assertIn("/account/2fa/", response["Location"])

    def test_warmup_plan_day_table(self):
        response = self.client.get("/ip-pools/warmup-plans/new/")
        self.assertContains(response, 'id="day-table"')
        data = {"name": "gentle", "description": "", "max_bounce_rate": 0.05, "max_deferral_rate": 0.2,
                "max_complaint_rate": 0.001, "step_back_days": 1, "day-TOTAL_FORMS": 3, "day-INITIAL_FORMS": 0,
                "day-0-total": 50, "day-0-google": 10, "day-1-total": 100, "day-1-hourly": 5,
                "day-2-total": ""}  # fmt: skip
        self.client.post("/ip-pools/warmup-plans/new/", data)
        plan = WarmupPlan.objects.get(name="gentle")
        self.assertEqual(plan.days, [{"total": 50, "google": 10}, {"total": 100, "hourly": 5}])
        bad = self.client.post(f"/ip-pools/warmup-plans/{plan.pk}/edit/", {**data, "day-0-total": -1})
        self.assertEqual(bad.status_code, 400)
        empty = self.client.post(f"/ip-pools/warmup-plans/{plan.pk}/edit/", {**data, "day-0-total": "",
                                                                            "day-0-google": "", "day-1-total": "",
                                                                            "day-1-hourly": ""})  # fmt: skip
        self.assertContains(empty, "at least one day", status_code=400)
        response = self.client.post(f"/ip-pools/warmup-plans/{plan.pk}/edit/", {**data, "day-1-DELETE": "on"})
        self.assertEqual(response.status_code, 302)
        plan.refresh_from_db()
        self.assertEqual(plan.days, [{"total": 50, "google": 10}])
        builtin = WarmupPlan.objects.filter(is_builtin=True).first()
        self.client.post(f"/ip-pools/warmup-plans/{builtin.pk}/delete/")
        self.assertTrue(WarmupPlan.objects.filter(pk=builtin.pk).exists())

    def test_blocklist_zone_pages(self):
        response = self.client.post("/ip-pools/blocklists/zones/new/",
                                    {"zone": "bl.example.test", "kind": "ip", "codes": '{"127.0.0.2": "spam"}',
                                     "enabled": "on"})  # fmt: skip
        self.assertRedirects(response, "/ip-pools/blocklists/zones/", fetch_redirect_response=False)
        self.assertEqual(BlocklistZone.objects.get().codes, {"127.0.0.2": "spam"})
        bad = self.client.post("/ip-pools/blocklists/zones/new/", {"zone": "x.test", "kind": "ip", "codes": "[1]"})
        self.assertEqual(bad.status_code, 400)
        self.assertContains(self.client.get("/ip-pools/blocklists/zones/"), "bl.example.test")

    def test_lists_sort_count_and_download_as_csv(self):
        node = make_node("n1")
        make_ip("192.0.2.20", node)
        make_ip("192.0.2.10", node, plan=make_plan(days=[{"total": 100}] * 3))
        make_ip("192.0.2.30", node, state=IPState.PAUSED)
        page = self.client.get("/ip-pools/addresses/", {"sort": "-address"})
        rows = [row.record.address for row in page.context["table"].paginated_rows]
        self.assertEqual(rows, ["192.0.2.30", "192.0.2.20", "192.0.2.10"])
        self.assertContains(page, "3 in all")
        self.assertContains(page, 'data-count="warming">Warming up 1</a>')
        self.assertContains(page, 'data-count="paused">Paused 1</a>')
        response = self.client.get("/ip-pools/addresses/", {"state": "paused", "export": "csv"})
        self.assertEqual(
            response["Content-Disposition"], f'attachment; filename="ip-addresses-{timezone.now().date()}.csv"'
        )
        lines = b"".join(response.streaming_content).decode().splitlines()
        self.assertEqual(lines[0].split(",")[:4], ["Address", "Node", "EHLO", "State"])
        self.assertEqual([line.split(",")[0] for line in lines[1:]], ["192.0.2.30"])
        self.assertNotIn("Edit", lines[0])  # the buttons column stays out of the file


class WarmupPagesTest(TenantTestCase):
    """Starting a warm-up shows its schedule first; stopping it or changing its plan releases waiting mail now."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.root = make_user("root@ops.test", is_superuser=True)

    def setUp(self):
        flush_test_redis()
        self.client = Client()
        login_verified(self.client, self.root)
        self.node = make_node("local")
        self.ip = make_ip("127.0.0.2", self.node)
        self.pool = make_pool("shared", all_tenants=True, members=[(self.ip, 100)])
        self.plan = make_plan("tiny", days=[{"total": 2}, {"total": 4}, {"total": 8}])
        make_sending_domain(self.tenant_a, "mail-a.test")

    def test_preview_then_confirm(self):
        url = f"/ip-pools/addresses/{self.ip.pk}/start-warmup/"
        page = self.client.get(url, {"plan": self.plan.pk, "day": 2})
        self.assertContains(page, 'id="warmup-schedule"')
        schedule = page.context["schedule"]
        self.assertEqual([(day, caps["total"]) for day, _, caps in schedule], [(2, 4), (3, 8)])
        self.assertEqual(schedule[1][1] - schedule[0][1], timezone.timedelta(days=1))
        self.assertContains(page, "mail over a cap waits for the next day")
        self.assertEqual(IPAddress.objects.get(pk=self.ip.pk).state, IPState.ACTIVE)  # nothing changed yet
        self.assertContains(self.client.get(url, {"plan": self.plan.pk, "day": 9}), "days 1 to 3", status_code=400)
        self.client.post(url, {"plan": self.plan.pk, "day": 2})
        ip = IPAddress.objects.get(pk=self.ip.pk)
        self.assertEqual((ip.state, ip.warmup_plan, ip.warmup_day), (IPState.WARMING, self.plan, 2))

    def hold_for_capacity(self, count):
        """Send `count` messages through the warming IP and let the real scheduler hold what is over the cap."""
        services.start_warmup(self.ip, self.plan, day=1)  # 2 a day
        send(self.tenant_a, [f"r{n}@example.com" for n in range(count)], sender="a@mail-a.test")
        with self.captureOnCommitCallbacks(execute=False):
            scheduler.schedule()  # a batch of 2 (today's cap)
            scheduler.schedule()  # the rest: no capacity until the IP's next day
        waiting = Message.objects.filter(status_detail__startswith=CAPACITY_WAIT_PREFIX)
        self.assertEqual(waiting.count(), count - 2)
        self.assertTrue(all(m.next_attempt_at > timezone.now() + timezone.timedelta(minutes=1) for m in waiting))
        return Message.objects.filter(pk__in=[m.pk for m in waiting])

    def test_stopping_a_warmup_sends_waiting_mail_now_not_at_midnight(self):
        waiting = self.hold_for_capacity(5)
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(f"/ip-pools/addresses/{self.ip.pk}/stop-warmup/")
        self.assertRedirects(response, f"/ip-pools/addresses/{self.ip.pk}/", fetch_redirect_response=False)
        ip = IPAddress.objects.get(pk=self.ip.pk)
        self.assertEqual((ip.state, ip.warmup_plan), (IPState.ACTIVE, None))
        self.assertTrue(ip.events.filter(kind=IPEventKind.WARMUP_STOP).exists())
        self.assertEqual(AuditEntry.objects.filter(action="ip.warmup_stop").get().actor_name, "root@ops.test")
        self.assertTrue(all(m.next_attempt_at <= timezone.now() for m in waiting.all()))
        before = sum(len(ids) for ids in scheduled_batches().values())
        with self.captureOnCommitCallbacks(execute=False):
            scheduler.schedule()
        self.assertEqual(sum(len(ids) for ids in scheduled_batches().values()) - before, 3)

    def test_raising_the_cap_releases_waiting_mail(self):
        waiting = self.hold_for_capacity(4)
        data = {"name": "tiny", "description": "", "max_bounce_rate": 0.05, "max_deferral_rate": 0.2,
                "max_complaint_rate": 0.001, "step_back_days": 1, "day-TOTAL_FORMS": 1, "day-INITIAL_FORMS": 1,
                "day-0-total": 10}  # fmt: skip
        with self.captureOnCommitCallbacks(execute=True):
            self.client.post(f"/ip-pools/warmup-plans/{self.plan.pk}/edit/", data)
        self.assertTrue(all(m.next_attempt_at <= timezone.now() for m in waiting.all()))
        with self.captureOnCommitCallbacks(execute=False):
            scheduler.schedule()
        self.assertFalse(Message.objects.filter(status_detail__startswith=CAPACITY_WAIT_PREFIX,
                                                next_attempt_at__gt=timezone.now()).exists())  # fmt: skip

    def test_a_scheduled_message_is_not_released_early(self):
        later = timezone.now() + timezone.timedelta(hours=5)
        [message] = send(self.tenant_a, ["r@example.com"], sender="a@mail-a.test", send_at=later)
        Message.objects.filter(pk=message.pk).update(
            status_detail=f"{CAPACITY_WAIT_PREFIX}: test", next_attempt_at=later
        )
        with self.captureOnCommitCallbacks(execute=True):
            services.stop_warmup(services.start_warmup(self.ip, self.plan))
        self.assertEqual(Message.objects.get(pk=message.pk).next_attempt_at, later)
