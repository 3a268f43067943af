"""Operator commands: create_tenant, create_user, create_api_key — audited as the system, bad input changes nothing."""

import io

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase

from deliveryhub import services
from deliveryhub.choices import ActorType, ApiKeyScope, Role
from deliveryhub.models import ApiKey, AuditEntry, Membership, Tenant

User = get_user_model()
STRONG = "a long enough passphrase 42"


def run(*args):
    """Run a command: (output, error or None)."""
    out = io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=io.StringIO())
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


class CommandTestCase(TestCase):
    def assertFails(self, args, text):
        counts = (Tenant.objects.count(), User.objects.count(), ApiKey.objects.count(), AuditEntry.objects.count())
        _, error = run(*args)
        self.assertIsNotNone(error, f"{args} should fail")
        self.assertEqual(error.returncode, 1)
        self.assertIn(text, str(error))
        after = (Tenant.objects.count(), User.objects.count(), ApiKey.objects.count(), AuditEntry.objects.count())
        self.assertEqual(after, counts, "a failed command wrote something")


class CreateTenantTest(CommandTestCase):
    def test_creates_and_audits_as_system(self):
        output, error = run("create_tenant", "acme", "--name", "Acme Corp")
        self.assertIsNone(error)
        self.assertIn("Created tenant acme", output)
        tenant = Tenant.objects.get(slug="acme")
        self.assertEqual(tenant.name, "Acme Corp")
        entry = AuditEntry.objects.get(object_type="deliveryhub.tenant", object_id=str(tenant.pk), action="create")
        self.assertEqual(entry.actor_type, ActorType.SYSTEM)

    def test_duplicate_and_bad_slug(self):
        run("create_tenant", "acme", "--name", "Acme")
        self.assertFails(("create_tenant", "acme", "--name", "Other"), "already exists")
        self.assertFails(("create_tenant", "not a slug!", "--name", "X"), "slug")


class CreateUserTest(CommandTestCase):
    @classmethod
    def setUpTestData(cls):
        cls.tenant = services.create_tenant("acme", "Acme")

    def test_creates_member_with_password(self):
        output, error = run(
            "create_user", "Dora@Acme.test", "--tenant", "acme", "--role", "compliance", "--password", STRONG
        )
        self.assertIsNone(error)
        self.assertIn("dora@acme.test as compliance in acme", output)
        user = User.objects.get(username="dora@acme.test")
        self.assertTrue(user.check_password(STRONG))
        self.assertEqual(Membership.objects.get(user=user).role, Role.COMPLIANCE)
        self.assertEqual(AuditEntry.objects.get(action="user.create").actor_type, ActorType.SYSTEM)

    def test_superuser_without_tenant(self):
        _, error = run("create_user", "op@example.test", "--superuser", "--password", STRONG)
        self.assertIsNone(error)
        self.assertTrue(User.objects.get(username="op@example.test").is_superuser)

    def test_bad_input_writes_nothing(self):
        self.assertFails(("create_user", "x@acme.test", "--tenant", "nope", "--role", "admin"), "Unknown tenant 'nope'")
        self.assertFails(("create_user", "x@acme.test", "--tenant", "acme", "--role", "boss"), "Unknown role 'boss'")
        self.assertFails(("create_user", "x@acme.test", "--tenant", "acme"), "--role is required")
        self.assertFails(("create_user", "x@acme.test", "--role", "admin"), "--tenant is required")
        self.assertFails(("create_user", "not-an-email", "--tenant", "acme", "--role", "admin"), "not a valid email")
        self.assertFails(
            ("create_user", "x@acme.test", "--tenant", "acme", "--role", "admin", "--password", "password"), "password"
        )
        run("create_user", "x@acme.test", "--tenant", "acme", "--role", "admin", "--password", STRONG)
        self.assertFails(("create_user", "X@acme.test", "--tenant", "acme", "--role", "viewer"), "already exists")


class CreateApiKeyTest(CommandTestCase):
    @classmethod
    def setUpTestData(cls):
        cls.tenant = services.create_tenant("acme", "Acme")

    def test_tenant_key_alone_on_last_line_and_works(self):
        output, error = run(
            "create_api_key", "--tenant", "acme", "--role", "admin", "--scope", "send", "--name", "app",
            "--expires-days", "30", "--allowed-network", "10.0.0.0/8", "--allowed-network", "127.0.0.1/32",
        )  # fmt: skip
        self.assertIsNone(error)
        raw = output.strip().splitlines()[-1]
        self.assertRegex(raw, r"^dh_live_\S+$")
        key = services.authenticate_api_key(raw, "127.0.0.1")
        self.assertIsNotNone(key)
        self.assertEqual(
            (key.tenant, key.role, key.scope, key.name), (self.tenant, Role.ADMIN, ApiKeyScope.SEND, "app")
        )
        self.assertEqual(key.allowed_networks, ["10.0.0.0/8", "127.0.0.1/32"])
        self.assertIsNotNone(key.expires)
        self.assertEqual(AuditEntry.objects.get(action="apikey.create").actor_type, ActorType.SYSTEM)
        self.assertNotIn(raw, output.strip().splitlines()[0])  # only the last line carries it

    def test_read_key_and_platform_key(self):
        output, _ = run("create_api_key", "--tenant", "acme", "--role", "compliance", "--scope", "read")
        self.assertTrue(output.strip().splitlines()[-1].startswith("dh_ro_"))
        output, error = run("create_api_key", "--platform", "--name", "ops")
        self.assertIsNone(error)
        raw = output.strip().splitlines()[-1]
        self.assertTrue(raw.startswith("dh_op_"))
        self.assertTrue(services.authenticate_api_key(raw).is_platform)

    def test_bad_input_writes_nothing(self):
        self.assertFails(("create_api_key", "--tenant", "nope", "--role", "admin"), "Unknown tenant")
        self.assertFails(("create_api_key", "--tenant", "acme", "--role", "god"), "Unknown role")
        self.assertFails(("create_api_key", "--tenant", "acme"), "--role is required")
        self.assertFails(("create_api_key", "--tenant", "acme", "--role", "admin", "--scope", "all"), "Unknown scope")
        self.assertFails(("create_api_key", "--tenant", "acme", "--role", "admin", "--expires-days", "0"), "positive")
        self.assertFails(
            ("create_api_key", "--tenant", "acme", "--role", "admin", "--allowed-network", "10.0.0.300/8"), "CIDR"
        )
        self.assertFails(("create_api_key", "--platform", "--role", "admin"), "no role")
        self.assertFails(("create_api_key", "--role", "admin"), "--tenant")
