"""Periodic re-verification, the verify_domains command, and key retirement as a system job."""

import io
from datetime import timedelta

from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from deliveryhub.jobs import discover_system_jobs, run_system_job
from deliveryhub.models import AuditEntry
from domains import services
from domains.choices import DkimKeyState, DomainStatus
from domains.models import SendingDomain
from domains.testing import DNSTestCase


class RecheckJobTest(DNSTestCase):
    def test_registered_with_the_configured_interval(self):
        job = discover_system_jobs()["domains.jobs.recheck_domains"]
        self.assertEqual(job.interval, settings.DOMAIN_RECHECK_SECONDS)
        self.assertEqual(settings.DOMAIN_RECHECK_SECONDS, 3600)

    def test_recheck_verifies_due_domains_as_the_system(self):
        due = services.create_domain(self.tenant_a, "due.test")
        fresh = services.create_domain(self.tenant_b, "fresh.test")
        SendingDomain.objects.filter(pk=fresh.pk).update(last_checked=timezone.now())
        self.publish(due)
        run_system_job("domains.jobs.recheck_domains")
        due.refresh_from_db()
        fresh.refresh_from_db()
        self.assertEqual(due.status, DomainStatus.VERIFIED)
        self.assertEqual(fresh.status, DomainStatus.PENDING)  # checked recently: left alone
        entry = AuditEntry.objects.get(action="domain.dns_status_changed", object_id=str(due.pk))
        self.assertEqual(entry.actor_type, "system")

    def test_one_broken_domain_does_not_stop_the_sweep(self):
        broken = services.create_domain(self.tenant_a, "broken.test")
        good = services.create_domain(self.tenant_a, "good.test")
        self.dns.servfail("broken.test")
        self.publish(good)
        from domains.jobs import recheck_domains

        self.assertEqual(recheck_domains(), 2)
        good.refresh_from_db()
        broken.refresh_from_db()
        self.assertEqual(good.status, DomainStatus.VERIFIED)
        self.assertEqual(broken.status, DomainStatus.PENDING)

    def test_recheck_retires_keys_past_their_grace(self):
        domain = services.create_domain(self.tenant_a, "example.test")
        self.publish(domain)
        services.verify_domain(domain)
        old = domain.dkim_keys.get()
        services.rotate_dkim_key(domain)
        self.publish(domain)
        services.verify_domain(domain)
        old.refresh_from_db()
        self.assertEqual(old.state, DkimKeyState.RETIRING)
        type(old).objects.filter(pk=old.pk).update(retire_after=timezone.now() - timedelta(seconds=1))
        run_system_job("domains.jobs.recheck_domains")
        old.refresh_from_db()
        self.assertEqual(old.state, DkimKeyState.RETIRED)

    def test_verify_domains_command(self):
        domain = services.create_domain(self.tenant_a, "example.test")
        self.publish(domain)
        out = io.StringIO()
        call_command("verify_domains", "example.test", stdout=out)
        self.assertIn("example.test (tenant-a): verified", out.getvalue())
        self.assertIn("ok       SPF", out.getvalue())
        with self.assertRaises(CommandError):
            call_command("verify_domains", "nope.test", stdout=out)
        with self.assertRaisesMessage(CommandError, "not a valid host name"):
            call_command("verify_domains", "bad_name.test", stdout=out)
        idn = services.create_domain(self.tenant_a, "bücher.test")
        self.publish(idn)
        call_command("verify_domains", "BÜCHER.test.", stdout=out)  # written as people write it
        self.assertIn("xn--bcher-kva.test (tenant-a): verified", out.getvalue())
