"""`ensure_demo`: what `make run` seeds in demo mode so a newcomer can send at once."""

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import TestCase

from deliveryhub.choices import Role
from deliveryhub.models import AuditEntry, Membership, Tenant
from domains import services
from domains.models import DkimKey, SendingDomain


class EnsureDemoTest(TestCase):
    def test_seeds_tenant_owner_and_signing_domain_once(self):
        admin = get_user_model().objects.create_superuser("admin@localhost", "admin@localhost", "x" * 20)
        call_command("ensure_demo", stdout=open("/dev/null", "w"))
        call_command("ensure_demo", stdout=open("/dev/null", "w"))

        tenant = Tenant.objects.get(slug="demo")
        self.assertEqual(Membership.objects.get(tenant=tenant, user=admin).role, Role.OWNER)
        domain = SendingDomain.objects.get(tenant=tenant)
        self.assertEqual(domain.name, "demo.test")
        self.assertEqual(SendingDomain.objects.count(), 1)
        keys = services.signing_keys(domain)
        self.assertEqual([k.state for k in keys], ["active"])
        self.assertEqual(DkimKey.objects.filter(domain=domain).count(), 1)
        self.assertTrue(AuditEntry.objects.filter(action="dkim.activate_unverified", object_id=str(keys[0].pk)))

    def test_activation_without_dns_leaves_other_states_alone(self):
        tenant = Tenant.objects.create(slug="t", name="T")
        domain = services.create_domain(tenant, "real.test")
        DkimKey.objects.filter(domain=domain).update(state="retired")
        key = DkimKey.objects.get(domain=domain)
        services.activate_key_without_dns(key, reason="test")
        key.refresh_from_db()
        self.assertEqual(key.state, "retired")
