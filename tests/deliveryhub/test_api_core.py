"""Tenancy matrix and behaviour of the core API: memberships, API keys, audit log, tenants, errors."""

from datetime import timedelta

from django.db import connection
from django.utils import timezone

from deliveryhub import services
from deliveryhub.choices import ApiKeyScope, Role
from deliveryhub.models import ApiKey, AuditEntry, Membership
from deliveryhub.permissions import Principal
from deliveryhub.testing.cases import APIViewTestCases, TenantTestCase, make_user


class MembershipAPITest(APIViewTestCases.Full):
    url = "/api/v1/memberships/"
    model = Membership
    create_data = {"email": "dora@a.test", "role": "marketer", "password": "another long passphrase 7"}
    update_data = {"role": "compliance"}

    def make_object(self, tenant):
        user = make_user(f"m{Membership.objects.count()}@x.test")
        return services.add_member(tenant, user, Role.MARKETER)


class ApiKeyAPITest(APIViewTestCases.List, APIViewTestCases.Retrieve, APIViewTestCases.Create, APIViewTestCases.Delete):
    url = "/api/v1/api-keys/"
    model = ApiKey
    create_data = {"name": "ci", "role": "marketer"}

    def make_object(self, tenant):
        return services.create_api_key(tenant=tenant, name="k", role=Role.VIEWER)[0]

    def test_raw_key_shown_once_and_never_stored(self):
        response = self.api(self.alice_key).post(self.url, {"name": "deploy", "role": "admin"}, format="json")
        raw = response.json()["key"]
        self.assertTrue(raw.startswith("dh_live_"))
        again = self.api(self.alice_key).get(f"{self.url}{response.json()['id']}/").json()
        self.assertIsNone(again["key"])
        with connection.cursor() as cursor:
            for table in connection.introspection.table_names():
                cursor.execute(f'SELECT * FROM "{table}"')
                for row in cursor.fetchall():
                    self.assertNotIn(raw, " ".join(str(v) for v in row), table)
        self.assertEqual(self.api(raw).get("/api/v1/api-keys/").status_code, 200)

    def test_revoked_and_expired_keys_get_401(self):
        key, raw = services.create_api_key(tenant=self.tenant_a, name="tmp", role=Role.ADMIN)
        self.assertEqual(self.api(raw).get(self.url).status_code, 200)
        services.revoke_api_key(key)
        self.assertEqual(self.api(raw).get(self.url).status_code, 401)
        old, raw_old = services.create_api_key(
            tenant=self.tenant_a, name="old", role=Role.ADMIN, expires=timezone.now() - timedelta(seconds=1)
        )
        response = self.api(raw_old).get(self.url)
        self.assertEqual(response.status_code, 401)
        self.assertEqual(response.json()["error"]["code"], "authentication_failed")
        self.assertEqual(self.api("dh_live_nonsensenonsensenonsense").get(self.url).status_code, 401)

    def test_allowed_networks(self):
        _, raw = services.create_api_key(
            tenant=self.tenant_a, name="net", role=Role.ADMIN, allowed_networks=["10.9.0.0/16"]
        )
        self.assertEqual(self.api(raw).get(self.url).status_code, 401)  # test client comes from 127.0.0.1
        _, raw = services.create_api_key(
            tenant=self.tenant_a, name="net2", role=Role.ADMIN, allowed_networks=["127.0.0.0/8"]
        )
        self.assertEqual(self.api(raw).get(self.url).status_code, 200)

    def test_send_scope_cannot_read_keys_or_write_config(self):
        _, raw = services.create_api_key(tenant=self.tenant_a, name="app", role=Role.ADMIN, scope=ApiKeyScope.SEND)
        self.assertEqual(self.api(raw).get(self.url).status_code, 403)
        self.assertEqual(self.api(raw).post(self.url, {"name": "x"}, format="json").status_code, 403)

    def test_read_only_key(self):
        _, raw = services.create_api_key(tenant=self.tenant_a, name="ro", role=Role.ADMIN, scope=ApiKeyScope.READ)
        self.assertTrue(raw.startswith("dh_ro_"))
        self.assertEqual(self.api(raw).get(self.url).status_code, 200)
        self.assertEqual(self.api(raw).post(self.url, {"name": "x"}, format="json").status_code, 403)

    def test_field_errors_are_json(self):
        bad = {"role": "wizard", "allowed_networks": ["nope"]}
        response = self.api(self.alice_key).post(self.url, bad, format="json")
        self.assertEqual(response.status_code, 400)
        error = response.json()["error"]
        self.assertEqual(error["code"], "invalid")
        self.assertEqual(set(error["fields"]), {"name", "role", "allowed_networks"})
        self.assertEqual(ApiKey.objects.filter(tenant=self.tenant_a).count(), 2)


class AuditLogAPITest(TenantTestCase):
    def test_audit_log_is_tenant_scoped_and_filterable(self):
        services.create_api_key(tenant=self.tenant_b, name="b-secret-key", role=Role.VIEWER)
        response = self.api(self.alice_key).get("/api/v1/audit-log/", {"action": "apikey.create", "page_size": 500})
        self.assertEqual(response.status_code, 200)
        rows = response.json()["results"]
        self.assertTrue(rows)
        self.assertTrue(all(row["tenant"] == "tenant-a" for row in rows))
        self.assertNotIn("b-secret-key", response.content.decode())
        prefix = self.api(self.alice_key).get("/api/v1/audit-log/", {"action": "apikey"}).json()["count"]
        self.assertEqual(prefix, len(rows))

    def test_viewer_cannot_read_audit_log(self):
        self.assertEqual(self.api(self.bob_key).get("/api/v1/audit-log/").status_code, 403)

    def test_audit_log_cannot_be_written(self):
        entry = AuditEntry.objects.filter(tenant=self.tenant_a).first()
        url = f"/api/v1/audit-log/{entry.seq}/"
        self.assertEqual(self.api(self.alice_key).delete(url).status_code, 405)
        self.assertEqual(self.api(self.alice_key).patch(url, {"action": "x"}, format="json").status_code, 405)

    def test_request_id_header_matches_entry(self):
        response = self.api(self.alice_key).post("/api/v1/api-keys/", {"name": "r", "role": "viewer"}, format="json")
        request_id = response["X-Request-ID"]
        entry = AuditEntry.objects.filter(action="apikey.create").order_by("-seq").first()
        self.assertEqual(entry.request_id, request_id)
        self.assertEqual(entry.client_ip, "127.0.0.1")
        self.assertEqual(entry.actor_name, f"API key alice ({self.alice_key_obj.prefix})")


class TenantAPITest(TenantTestCase):
    def test_tenants_read_own_write_platform_only(self):
        rows = self.api(self.alice_key).get("/api/v1/tenants/").json()["results"]
        self.assertEqual([row["slug"] for row in rows], ["tenant-a"])
        self.assertEqual(self.api(self.alice_key).get(f"/api/v1/tenants/{self.tenant_b.pk}/").status_code, 404)
        response = self.api(self.alice_key).post("/api/v1/tenants/", {"slug": "x", "name": "X"}, format="json")
        self.assertEqual(response.status_code, 403)
        _, op = services.create_api_key(tenant=None, name="ops")
        self.assertTrue(op.startswith("dh_op_"))
        response = self.api(op).post("/api/v1/tenants/", {"slug": "tenant-c", "name": "C"}, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(len(self.api(op).get("/api/v1/tenants/").json()["results"]), 3)


class MembershipOwnerRulesAPITest(TenantTestCase):
    def test_admin_key_cannot_grant_owner_or_remove_last_owner(self):
        membership = Membership.objects.get(user=self.bob, tenant=self.tenant_a)
        url = f"/api/v1/memberships/{membership.pk}/"
        response = self.api(self.alice_key).patch(url, {"role": "owner"}, format="json")
        self.assertEqual(response.status_code, 400, response.content)
        self.assertIn("role", response.json()["error"]["fields"])
        membership.refresh_from_db()
        self.assertEqual(membership.role, Role.VIEWER)

        _, owner_key = services.create_api_key(tenant=self.tenant_a, name="owner", role=Role.OWNER)
        self.assertEqual(self.api(owner_key).patch(url, {"role": "owner"}, format="json").status_code, 200)
        alice = Membership.objects.get(user=self.alice, tenant=self.tenant_a)
        self.assertEqual(self.api(owner_key).patch(f"/api/v1/memberships/{alice.pk}/", {"role": "owner"},
                                                   format="json").status_code, 200)
        # two owners: one may go, the last one may not
        self.assertEqual(self.api(owner_key).delete(url).status_code, 204)
        response = self.api(owner_key).delete(f"/api/v1/memberships/{alice.pk}/")
        self.assertEqual(response.status_code, 400, response.content)
        self.assertTrue(Membership.objects.filter(pk=alice.pk, role=Role.OWNER).exists())


class KeyMintingLimitsTest(TenantTestCase):
    """A key limited in time or networks only creates keys within those limits."""

    def test_limited_key_creates_only_keys_within_its_limits(self):
        soon = timezone.now() + timedelta(days=1)
        _, raw = services.create_api_key(
            tenant=self.tenant_a, name="ci", role=Role.ADMIN, expires=soon, allowed_networks=["127.0.0.0/8"]
        )
        url = "/api/v1/api-keys/"
        response = self.api(raw).post(url, {"name": "forever", "role": "admin"}, format="json")
        self.assertEqual(response.status_code, 400, response.content)
        self.assertEqual(set(response.json()["error"]["fields"]), {"expires", "allowed_networks"})
        later = (soon + timedelta(days=1)).isoformat()
        response = self.api(raw).post(
            url, {"name": "wide", "role": "admin", "expires": later, "allowed_networks": ["0.0.0.0/0"]}, format="json"
        )
        self.assertEqual(set(response.json()["error"]["fields"]), {"expires", "allowed_networks"})
        self.assertFalse(ApiKey.objects.filter(name__in=["forever", "wide"]).exists())
        ok = {"name": "narrow", "role": "viewer", "expires": (soon - timedelta(hours=1)).isoformat(),
              "allowed_networks": ["127.0.0.0/24"]}
        self.assertEqual(self.api(raw).post(url, ok, format="json").status_code, 201)

    def test_unlimited_key_and_sessions_are_not_capped(self):
        response = self.api(self.alice_key).post("/api/v1/api-keys/", {"name": "free", "role": "viewer"}, format="json")
        self.assertEqual(response.status_code, 201, response.content)


class PrincipalOfKeyTest(TenantTestCase):
    def test_restrict_accepts_an_api_key_model(self):
        """restrict() takes a user, a key or a Principal: a key model is not mistaken for an anonymous user."""
        principal = Principal.of(self.alice_key_obj)
        self.assertTrue(principal.is_key and principal.is_authenticated)
        self.assertEqual(principal.roles, {self.tenant_a.pk: Role.ADMIN})
        keys = ApiKey.objects.restrict(self.alice_key_obj, "view")
        self.assertIn(self.alice_key_obj, keys)
        self.assertNotIn(self.charlie_key_obj, keys)
