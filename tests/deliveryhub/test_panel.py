"""The panel's frame: the API root, the product's error pages in development too, the navigation per role, the
`for_request()` choke point, tenants managed in the browser, the audit log's diffs and filters, export names."""

from datetime import timedelta

import pytest
from django.test import Client, RequestFactory
from django.utils import timezone

from deliveryhub import audit, services
from deliveryhub.api.exceptions import server_error
from deliveryhub.choices import JobStatus, Role
from deliveryhub.models import ApiKey, AuditEntry, Job, Membership, Tenant
from deliveryhub.permissions import Principal
from deliveryhub.testing.cases import TenantTestCase, login_verified, make_user

from .test_settings import run_setting


class ApiRootTest(TenantTestCase):
    def test_api_root_lists_every_collection_for_a_key_and_a_session(self):
        response = self.api(self.bob_key).get("/api/v1/")
        self.assertEqual(response.status_code, 200, response.content)
        body = response.json()
        for name in ("messages", "domains", "ip-pools", "api-keys", "audit-log", "routes"):
            self.assertTrue(body[name].endswith(f"/api/v1/{name}/"), body)
        client = Client()
        client.force_login(self.bob)
        self.assertEqual(client.get("/api/v1/", HTTP_ACCEPT="application/json").status_code, 200)
        response = self.api().get("/api/v1/")
        self.assertIn(response.status_code, (401, 403))
        self.assertEqual(response.json()["error"]["code"], "not_authenticated")


@pytest.mark.parametrize(
    ("env", "debug"),
    [({}, False), ({"DELIVERYHUB_DEBUG_PAGES": "true"}, True),
     ({"DEBUG": "false", "DELIVERYHUB_DEBUG_PAGES": "true", "DELIVERYHUB_SECRET_KEY": "k",
       "DELIVERYHUB_DATA_KEY": "k", "DELIVERYHUB_PSEUDONYM_KEY": "k"}, False)],
)  # fmt: skip
def test_django_debug_pages_are_an_explicit_development_opt_in(tmp_path, env, debug):
    """`make run` (no DEBUG in the environment) is development mode, but shows the product's error pages."""
    result = run_setting("DEBUG", env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(debug)
    assert run_setting("DEMO_MODE", {}, tmp_path).stdout.strip() == "True"  # development still seeds the demo


class ErrorPagesTest(TenantTestCase):
    def test_product_pages_for_404_403_and_500(self):
        client = Client()
        client.force_login(self.bob)
        page = client.get("/no/such/page/")
        self.assertContains(page, "There is nothing here", status_code=404)
        self.assertContains(page, "favicon.svg", status_code=404)
        page = client.get("/settings/api-keys/")
        self.assertContains(page, "Not allowed", status_code=403)
        self.assertContains(page, "Your role cannot view access", status_code=403)
        response = server_error(RequestFactory().get("/"))
        self.assertEqual(response.status_code, 500)
        self.assertIn(b"Something went wrong", response.content)
        self.assertNotIn(b"Traceback", response.content)
        self.assertEqual(client.get("/api/v1/no-such/").json()["error"]["code"], "not_found")
        self.assertEqual(client.get("/favicon.ico").status_code, 301)


class NavigationTest(TenantTestCase):
    """Each role sees the navigation items it may open, and nothing that answers 403."""

    NAV = {"Domains": "/domains/", "IP pools": "/ip-pools/", "Queues": "/messages/", "Audit log": "/audit/"}

    def nav_of(self, user):
        client = Client()
        login_verified(client, user)
        page = client.get("/").content.decode()
        nav = page.split('id="main-nav"')[1].split("</nav>")[0]
        return client, {label for label, url in self.NAV.items() if f'href="{url}"' in nav}, nav

    def test_each_role_sees_what_it_may_open(self):
        marketer = make_user("mara@a.test", self.tenant_a, Role.MARKETER)
        compliance = make_user("cora@a.test", self.tenant_a, Role.COMPLIANCE)
        root = make_user("root@ops.test", is_superuser=True)
        expected = {
            self.alice: {"Domains", "IP pools", "Queues", "Audit log"},
            marketer: {"Domains", "IP pools", "Queues"},
            compliance: {"Domains", "IP pools", "Queues", "Audit log"},
            self.bob: {"Domains", "IP pools", "Queues"},
        }
        for user, labels in expected.items():
            with self.subTest(user=user.email):
                client, shown, nav = self.nav_of(user)
                self.assertEqual(shown, labels)
                self.assertNotIn('id="platform-menu"', nav)
                for label in shown:
                    self.assertEqual(client.get(self.NAV[label]).status_code, 200, label)
                for label in set(self.NAV) - shown:
                    self.assertEqual(client.get(self.NAV[label]).status_code, 403, label)
        _, _, nav = self.nav_of(root)
        self.assertIn('id="platform-menu"', nav)
        self.assertIn('href="/platform/tenants/"', nav)
        self.assertIn('href="/api/docs/"', nav)


class ForRequestTest(TenantTestCase):
    def test_current_tenant_and_role(self):
        request = RequestFactory().get("/")
        request.principal, request.tenant = Principal.of(self.alice), self.tenant_a
        self.assertEqual(set(ApiKey.objects.for_request(request)), {self.alice_key_obj, self.bob_key_obj})
        request.tenant = self.tenant_b  # a tenant alice is not in: restrict() already says no
        self.assertFalse(ApiKey.objects.for_request(request).exists())
        request.principal, request.tenant = Principal.of(self.bob), self.tenant_a  # a viewer may not see keys
        self.assertFalse(ApiKey.objects.for_request(request).exists())
        request.tenant = None
        self.assertFalse(Membership.objects.for_request(request).exists())
        root = make_user("root@ops.test", is_superuser=True)
        request.principal, request.tenant = Principal.of(root), self.tenant_b
        self.assertEqual(set(ApiKey.objects.for_request(request)), {self.charlie_key_obj})  # one tenant at a time
        self.assertEqual(ApiKey.objects.for_request(request, every_tenant=True).count(), 3)


class TenantPagesTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.root = make_user("root@ops.test", is_superuser=True)

    def test_operator_creates_a_tenant_and_adds_its_owner(self):
        client = Client()
        login_verified(client, self.root)
        bad = client.post("/platform/tenants/new/", {"slug": "globex", "name": "Globex", "time_zone": "Mars/Base"})
        self.assertEqual(bad.status_code, 400)
        self.assertFalse(Tenant.objects.filter(slug="globex").exists())
        response = client.post("/platform/tenants/new/", {"slug": "globex", "name": "Globex",
                                                          "time_zone": "Europe/Paris", "is_active": "on"})  # fmt: skip
        tenant = Tenant.objects.get(slug="globex")
        self.assertRedirects(response, f"/platform/tenants/{tenant.pk}/", fetch_redirect_response=False)
        client.post(f"/platform/tenants/{tenant.pk}/", {"email": "owner@globex.test", "role": "owner", "password": ""})
        self.assertEqual(Membership.objects.get(tenant=tenant).role, Role.OWNER)
        page = client.get("/platform/tenants/")
        self.assertContains(page, "Globex")
        self.assertContains(page, "owner@globex.test")
        client.post(f"/platform/tenants/{tenant.pk}/edit/", {"slug": "changed", "name": "Globex Corp",
                                                             "time_zone": "UTC"})  # fmt: skip
        tenant.refresh_from_db()
        self.assertEqual((tenant.slug, tenant.name, tenant.is_active), ("globex", "Globex Corp", False))
        self.assertTrue(AuditEntry.objects.filter(object_type="deliveryhub.tenant", action="update").exists())
        # the API applies the same rule
        response = self.api(services.create_api_key(tenant=None, name="ops")[1]).post(
            "/api/v1/tenants/", {"slug": "x", "name": "X", "time_zone": "Nowhere"}, format="json"
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("time_zone", response.json()["error"]["fields"])

    def test_members_of_tenants_cannot_manage_tenants(self):
        client = Client()
        login_verified(client, self.alice)
        self.assertEqual(client.get("/platform/tenants/new/").status_code, 403)
        response = client.post(f"/platform/tenants/{self.tenant_a.pk}/", {"email": "x@a.test", "role": "owner"})
        self.assertEqual(response.status_code, 403)
        self.assertEqual(client.get(f"/platform/tenants/{self.tenant_b.pk}/").status_code, 404)


class AuditLogPageTest(TenantTestCase):
    def test_changes_per_field_and_filters_as_dropdowns(self):
        with audit.audit_context(principal=Principal.of(self.alice)):
            key, _ = services.create_api_key(tenant=self.tenant_a, name="deploy", role=Role.VIEWER)
            key.name = "deploy bot"
            key.save()
        with audit.audit_context(principal=None):
            audit.record("dkim.rotate", tenant=self.tenant_a, object_type="domains.sendingdomain", object_repr="a.test")
        client = Client()
        login_verified(client, self.alice)
        page = client.get("/audit/")
        html = page.content.decode()
        row = html.split('data-field="name"')[1].split("</tr>")[0]
        self.assertIn('<del class="text-danger">deploy</del>', row)
        self.assertIn("deploy bot</ins>", row)
        self.assertNotIn('data-field="prefix"', html.split("deploy bot</ins>")[0].rsplit("<tr", 3)[0][-200:])
        form = page.context["filterset"].form
        self.assertIn(("alice@a.test", "alice@a.test"), list(form.fields["actor"].choices))
        self.assertIn(("apikey.", "apikey.* (every apikey verb)"), list(form.fields["action"].choices))
        self.assertEqual(form["after"].field.widget.input_type, "datetime-local")
        page = client.get("/audit/", {"object_type": ["domains.sendingdomain", "deliveryhub.apikey"]})
        types = {entry.object_type for entry in page.context["page"]}
        self.assertEqual(types, {"domains.sendingdomain", "deliveryhub.apikey"})
        page = client.get("/audit/", {"object_type": "domains.sendingdomain"})
        self.assertEqual({entry.object_type for entry in page.context["page"]}, {"domains.sendingdomain"})
        self.assertContains(page, 'name="object_type" value="domains.sendingdomain"')  # carried to the export form


class ExportNameTest(TenantTestCase):
    def test_a_download_is_named_after_what_it_holds(self):
        job = Job.objects.create(tenant=self.tenant_a, name="Audit log export", runner="x", status=JobStatus.COMPLETED,
                                 result_file="exports/1b2c.csv")  # fmt: skip
        Job.objects.filter(pk=job.pk).update(completed=timezone.now() - timedelta(days=1))
        job.refresh_from_db()
        self.assertEqual(job.download_name(), f"audit-log-{job.completed.date().isoformat()}.csv")
