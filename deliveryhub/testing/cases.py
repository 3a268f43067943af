"""
Base test cases: the three-person tenancy matrix and API view test mixins.

- alice: tenant A admin (with a verified TOTP device available through `login_verified`)
- bob: tenant A viewer
- charlie: tenant B admin
Each also has an API key acting with that role (`alice_key`, `bob_key`, `charlie_key`).
"""

from django.db import connection
from django.test import TestCase
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from rest_framework.test import APIClient

from deliveryhub import services
from deliveryhub.choices import Role
from deliveryhub.models import AuditEntry, EncryptedTOTPDevice

PASSWORD = "correct horse battery staple 9"


def make_user(email, tenant=None, role=Role.VIEWER, **kwargs):
    return services.create_user(email, tenant=tenant, role=role, password=PASSWORD, **kwargs)


def database_text():
    """Every value of every row of every table, as one string."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            parts += [str(value) for row in cursor.fetchall() for value in row]
    return "\n".join(parts)


def app_code(device, steps=0):
    """The code an authenticator app shows for `device` now (or `steps` periods later)."""
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=steps)
    return f"{code:0{device.digits}d}"


def login_verified(client, user):
    """Sign `user` in with a confirmed TOTP device, as if they had just entered a valid code."""
    device, _ = EncryptedTOTPDevice.objects.get_or_create(user=user, name="test", defaults={"confirmed": True})
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


class TenantTestCase(TestCase):
    """Two tenants, three people, three API keys."""

    @classmethod
    def setUpTestData(cls):
        cls.tenant_a = services.create_tenant("tenant-a", "Tenant A")
        cls.tenant_b = services.create_tenant("tenant-b", "Tenant B")
        cls.alice = make_user("alice@a.test", cls.tenant_a, Role.ADMIN)
        cls.bob = make_user("bob@a.test", cls.tenant_a, Role.VIEWER)
        cls.charlie = make_user("charlie@b.test", cls.tenant_b, Role.ADMIN)
        cls.alice_key_obj, cls.alice_key = services.create_api_key(tenant=cls.tenant_a, name="alice", role=Role.ADMIN)
        cls.bob_key_obj, cls.bob_key = services.create_api_key(tenant=cls.tenant_a, name="bob", role=Role.VIEWER)
        cls.charlie_key_obj, cls.charlie_key = services.create_api_key(
            tenant=cls.tenant_b, name="charlie", role=Role.ADMIN
        )

    def api(self, key=None):
        client = APIClient()
        if key:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client

    def last_audit(self, **filters):
        return AuditEntry.objects.filter(**filters).order_by("-seq").first()


class APIViewTestCases:
    """Mixins that give a model's API the tenancy matrix for free.

    A test class sets `url` (the list URL), `model`, `create_data` (dict), `update_data` (dict) and
    `make_object(self, tenant)` returning a saved object of that tenant; `detail_url(obj)` defaults to
    `url + <pk>/`.
    """

    class Base(TenantTestCase):
        url = None
        model = None
        create_data = None
        update_data = None
        lookup = "pk"

        def make_object(self, tenant):
            raise NotImplementedError

        def detail_url(self, obj):
            return f"{self.url}{getattr(obj, self.lookup)}/"

    class List(Base):
        def test_list_anonymous_401(self):
            self.assertIn(self.api().get(self.url).status_code, (401, 403))

        def test_list_shows_own_tenant_only(self):
            mine = self.make_object(self.tenant_a)
            theirs = self.make_object(self.tenant_b)
            response = self.api(self.alice_key).get(self.url, {"page_size": 1000})
            self.assertEqual(response.status_code, 200, response.content)
            ids = {str(row.get(self.lookup, row.get("id"))) for row in response.json()["results"]}
            self.assertIn(str(getattr(mine, self.lookup)), ids)
            self.assertNotIn(str(getattr(theirs, self.lookup)), ids)

    class Retrieve(Base):
        def test_retrieve_own_200_other_tenant_404(self):
            mine = self.make_object(self.tenant_a)
            theirs = self.make_object(self.tenant_b)
            self.assertEqual(self.api(self.alice_key).get(self.detail_url(mine)).status_code, 200)
            self.assertEqual(self.api(self.alice_key).get(self.detail_url(theirs)).status_code, 404)

    class Create(Base):
        def test_create_viewer_403(self):
            response = self.api(self.bob_key).post(self.url, self.create_data, format="json")
            self.assertEqual(response.status_code, 403, response.content)

        def test_create_admin_201_audited(self):
            before = AuditEntry.objects.count()
            response = self.api(self.alice_key).post(self.url, self.create_data, format="json")
            self.assertEqual(response.status_code, 201, response.content)
            self.assertGreater(AuditEntry.objects.count(), before)
            entry = self.last_audit(tenant=self.tenant_a)
            self.assertEqual(entry.actor_type, "apikey")

    class Update(Base):
        def test_update_viewer_403_other_tenant_404(self):
            mine = self.make_object(self.tenant_a)
            response = self.api(self.bob_key).patch(self.detail_url(mine), self.update_data, format="json")
            self.assertEqual(response.status_code, 403, response.content)
            response = self.api(self.charlie_key).patch(self.detail_url(mine), self.update_data, format="json")
            self.assertEqual(response.status_code, 404, response.content)

        def test_update_admin_200_audited(self):
            mine = self.make_object(self.tenant_a)
            response = self.api(self.alice_key).patch(self.detail_url(mine), self.update_data, format="json")
            self.assertEqual(response.status_code, 200, response.content)
            self.assertTrue(AuditEntry.objects.filter(tenant=self.tenant_a, object_id=str(mine.pk)).exists())

    class Delete(Base):
        def test_delete_viewer_403_other_tenant_404_admin_204(self):
            mine = self.make_object(self.tenant_a)
            self.assertEqual(self.api(self.bob_key).delete(self.detail_url(mine)).status_code, 403)
            self.assertEqual(self.api(self.charlie_key).delete(self.detail_url(mine)).status_code, 404)
            self.assertEqual(self.api(self.alice_key).delete(self.detail_url(mine)).status_code, 204)
            self.assertTrue(AuditEntry.objects.filter(object_id=str(mine.pk), action__in=["delete", "apikey.revoke"]))

    class Full(List, Retrieve, Create, Update, Delete):
        pass
