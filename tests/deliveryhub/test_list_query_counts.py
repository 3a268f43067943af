"""Every list endpoint of the API costs the same queries for 50 objects as for 5 (no N+1), for an operator key and a
tenant key alike."""

from itertools import count

from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import resolve
from django.utils import timezone

from deliveryhub import audit, services
from deliveryhub.choices import Role
from deliveryhub.models import Job, Membership
from deliveryhub.testing.cases import TenantTestCase
from ippools import services as ip_services
from ippools.models import BlocklistCheck, TenantDefaultPool, ThrottleRule, ThrottleState
from ippools.testing import flush_test_redis, make_ip, make_node, make_plan, make_pool
from queues.models import Campaign, Contact, ContactImport, ContactList, Route, Subscription, Suppression
from queues.services import create_smtp_credential
from queues.testing import make_sending_domain
from queues.webhooks import stream
from queues.webhooks.services import create_webhook
from reports.models import DataRequest, PurgeRun, PurgeRunItem, RetentionPolicy
from tests.queues.helpers import send

SMALL, LARGE = 5, 50


class ListQueryCountTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.operator_key = services.create_api_key(tenant=None, name="ops")[1]
        cls.node = make_node("n0")
        cls.plan = make_plan("ramp", days=[{"total": 100, "google": 20}] * 5)
        cls.shared = make_pool("shared", all_tenants=True)
        cls.domain = make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.contact_list = ContactList.objects.create(tenant=cls.tenant_a, name="newsletter")

    def setUp(self):
        flush_test_redis()
        self.serial = count(1)

    # -- one object of each listed kind, visible to tenant A ------------------------------------------------------
    def ip(self):
        n = next(self.serial)
        ip = make_ip(f"10.{n // 250}.{n % 250}.1", self.node, plan=self.plan)  # warming: its caps and use are shown
        ip_services.assign_ip(self.shared, ip)
        return ip

    def tenant(self):
        n = next(self.serial)
        return services.create_tenant(f"t{n}", f"Tenant {n}")

    def member(self):
        """A member of tenant A (no password: hashing one is what would take this test's time)."""
        user = get_user_model().objects.create(username=f"u{next(self.serial)}@a.test")
        return Membership.objects.create(user=user, tenant=self.tenant_a, role=Role.VIEWER)

    def factories(self):
        def pool():
            n = next(self.serial)
            dedicated = make_pool(f"p{n}", tenant=self.tenant_a, members=[(self.ip(), 1)])
            ip_services.grant_pool(make_pool(f"g{n}", members=[(self.ip(), 1)]), self.tenant_a)
            return dedicated

        def contact():
            n = next(self.serial)
            made = Contact.objects.create(tenant=self.tenant_a, email=f"c{n}@x.test", domain="x.test", name=f"C {n}")
            Subscription.objects.create(contact=made, contact_list=self.contact_list)
            return made

        def campaign():
            made = Campaign.objects.create(tenant=self.tenant_a, name=f"c{next(self.serial)}", subject="Hi",
                                           from_header="a@mail-a.test", sending_domain=self.domain, ip_pool=self.shared,
                                           html="<p>Hi</p>")  # fmt: skip
            made.lists.add(self.contact_list)
            return made

        def event():
            send(self.tenant_a, [f"e{next(self.serial)}@example.com"], sender="a@mail-a.test")  # its accepted event
            stream.sequence_events()

        def purge_run():
            run = PurgeRun.objects.create(tenant=self.tenant_a, triggered_by="test")
            PurgeRunItem.objects.create(run=run, tenant=self.tenant_a, kind="messages", days=30, cutoff=timezone.now())
            return run

        return {
            "tenants": (self.tenant, self.operator_key),
            "lists": (
                lambda: ContactList.objects.create(tenant=self.tenant_a, name=f"l{next(self.serial)}"),
                self.alice_key,
            ),  # fmt: skip
            "contacts": (contact, self.alice_key),
            "contact-imports": (
                lambda: ContactImport.objects.create(
                    tenant=self.tenant_a, file_name="a.csv", path="x", contact_list=self.contact_list
                ),
                self.alice_key,
            ),  # fmt: skip
            "campaigns": (campaign, self.alice_key),
            "data-requests": (
                lambda: DataRequest.objects.create(
                    tenant=self.tenant_a, kind="access", subjects=[f"s{next(self.serial)}@x.test"]
                ),
                self.operator_key,
            ),  # fmt: skip
            "retention-policies": (
                lambda: RetentionPolicy.objects.create(tenant=self.tenant(), kind="messages", days=30),
                self.operator_key,
            ),  # fmt: skip
            "purge-runs": (
                lambda: PurgeRun.objects.create(tenant=self.tenant_a, triggered_by="test"),
                self.operator_key,
            ),
            "memberships": (self.member, self.alice_key),
            "api-keys": (
                lambda: services.create_api_key(tenant=self.tenant_a, name=f"k{next(self.serial)}"),
                self.alice_key,
            ),  # fmt: skip
            "audit-log": (
                lambda: audit.record("test.entry", tenant=self.tenant_a, object_repr=str(next(self.serial))),
                self.alice_key,
            ),  # fmt: skip
            "jobs": (
                lambda: Job.objects.create(tenant=self.tenant_a, name=f"j{next(self.serial)}", runner="x"),
                self.alice_key,
            ),  # fmt: skip
            "domains": (lambda: make_sending_domain(self.tenant_a, f"d{next(self.serial)}.test"), self.alice_key),
            "nodes": (
                lambda: make_ip(f"10.9.{next(self.serial) % 250}.1", make_node(f"node{next(self.serial)}")),
                self.operator_key,
            ),  # fmt: skip
            "ip-addresses": (self.ip, self.alice_key),
            "ip-pools": (pool, self.alice_key),
            "ip-pool-members": (lambda: ip_services.assign_ip(self.shared, self.ip()), self.alice_key),
            "ip-pool-grants": (lambda: ip_services.grant_pool(self.shared, self.tenant()), self.operator_key),
            "warmup-plans": (lambda: make_plan(f"plan{next(self.serial)}"), self.operator_key),
            "blocklist-checks": (
                lambda: BlocklistCheck.objects.create(ip=self.ip(), zone="bl.test", query_name="q", status="clear"),
                self.alice_key,
            ),  # fmt: skip
            "default-pools": (
                lambda: TenantDefaultPool.objects.create(
                    tenant=self.tenant(), purpose="transactional", pool=self.shared
                ),
                self.operator_key,
            ),  # fmt: skip
            "throttle-rules": (
                lambda: ThrottleRule.objects.create(tenant=self.tenant_a, ip=self.ip(), max_per_minute=9),
                self.alice_key,
            ),  # fmt: skip
            "throttle-states": (
                lambda: ThrottleState.objects.create(ip=self.ip(), provider="google", level=1),
                self.alice_key,
            ),  # fmt: skip
            "messages": (
                lambda: send(self.tenant_a, [f"r{next(self.serial)}@example.com"], sender="a@mail-a.test"),
                self.alice_key,
            ),  # fmt: skip
            "routes": (
                lambda: Route.objects.create(
                    tenant=self.tenant_a, pattern=f"d{next(self.serial)}.test", host="relay.test", password="secret"
                ),
                self.alice_key,
            ),  # fmt: skip
            "suppressions": (
                lambda: Suppression.objects.create(tenant=self.tenant_a, address=f"s{next(self.serial)}@x.test"),
                self.alice_key,
            ),  # fmt: skip
            "events": (event, self.alice_key),
            "webhooks": (lambda: create_webhook(self.tenant_a, url="https://93.184.215.14/hook"), self.alice_key),
            "smtp-credentials": (
                lambda: create_smtp_credential(self.tenant_a, f"login{next(self.serial)}"), self.alice_key,
            ),  # fmt: skip
        }

    def queries(self, url, key, expect):
        client = self.api(key)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, {"page_size": 100})
        self.assertEqual(response.status_code, 200, response.content)
        body = response.json()
        self.assertGreaterEqual(body["count"] if "count" in body else len(body["results"]), expect)
        # the key's last_used is written at most once a minute, whichever request that falls on: not the list's cost
        return [q["sql"] for q in queries.captured_queries if not q["sql"].startswith('UPDATE "deliveryhub_apikey"')]

    def test_every_list_endpoint_costs_the_same_for_50_objects_as_for_5(self):
        routers = resolve("/api/v1/").func.view_initkwargs["routers"]  # every router of the API, as its root lists
        endpoints = {prefix for router in routers for prefix, viewset, _ in router.registry if hasattr(viewset, "list")}
        factories = self.factories()
        self.assertEqual(endpoints, set(factories), "every list endpoint has a factory here")
        for name, (make, key) in factories.items():
            with self.subTest(endpoint=name):
                url = f"/api/v1/{name}/"
                for _ in range(SMALL):
                    make()
                small = self.queries(url, key, SMALL)
                for _ in range(LARGE - SMALL):
                    make()
                large = self.queries(url, key, LARGE)
                self.assertEqual(len(large), len(small), large[-1][:300])
