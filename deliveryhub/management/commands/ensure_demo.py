"""Demo mode (`make run`): a tenant, its owner and a sending domain, so a newcomer can send at once.

Creates, when missing: tenant `demo`, the first superuser as its owner, and sending domain `demo.test` (no
DNS exists for it, so it may send unverified and its first DKIM key signs without a DNS check; the capture
server verifies signatures against the key in the database). Safe to run again: it changes nothing that exists.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from deliveryhub import services
from deliveryhub.audit import audit_context
from deliveryhub.choices import Role
from deliveryhub.models import Membership, Tenant

DEMO_TENANT = "demo"
DEMO_DOMAIN = "demo.test"


class Command(BaseCommand):
    help = "Demo mode: create tenant 'demo' (first superuser as owner) and sending domain demo.test when missing."

    def handle(self, *args, **options):
        from domains import services as domain_services
        from domains.models import DkimKey, SendingDomain

        with audit_context(principal=None), transaction.atomic():
            tenant = Tenant.objects.filter(slug=DEMO_TENANT).first()
            if tenant is None:
                tenant = services.create_tenant(DEMO_TENANT, "Demo")
            admin = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
            if admin is not None and not Membership.objects.filter(user=admin, tenant=tenant).exists():
                services.add_member(tenant, admin, Role.OWNER)
            domain = SendingDomain.objects.filter(tenant=tenant, name=DEMO_DOMAIN).first()
            if domain is None:
                domain = domain_services.create_domain(tenant, DEMO_DOMAIN, allow_unverified_sending=True)
                reason = "demo domain: its zone exists nowhere, so the key signs without a DNS check"
                for key in DkimKey.objects.filter(domain=domain):
                    domain_services.activate_key_without_dns(key, reason=reason)
        self.stdout.write(f"Demo: tenant {tenant.slug}, domain {domain.name} (send from any address @{domain.name}).")
