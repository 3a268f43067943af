"""The domains UI: list with health badges, domain page, add, check now, rotate, export behind a fresh 2FA check."""

import time

from django.test import Client
from django.urls import reverse

from deliveryhub.constants import SESSION_OTP_SUDO_KEY
from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import login_verified
from domains import services
from domains.choices import DkimKeyState, DomainStatus, RecordKind
from domains.models import SendingDomain
from domains.testing import DNSTestCase


class DomainUITest(DNSTestCase):
    def setUp(self):
        super().setUp()
        self.domain = services.create_domain(self.tenant_a, "example.test")
        self.theirs = services.create_domain(self.tenant_b, "theirs.test")

    def login_sudo(self, user):
        login_verified(self.client, user)
        session = self.client.session
        session[SESSION_OTP_SUDO_KEY] = time.time()
        session.save()

    def test_list_and_detail_render_with_badges(self):
        self.publish(self.domain, skip=(RecordKind.DMARC,))
        services.verify_domain(self.domain)
        self.client.force_login(self.bob)  # a viewer reads
        response = self.client.get(reverse("domain-list"))
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "example.test")
        self.assertNotContains(response, "theirs.test")
        self.assertContains(response, 'class="badge text-bg-success me-1" title="ok" data-kind="dkim"')
        download = self.client.get(reverse("domain-list"), {"export": "csv"})  # the table as CSV, named for it
        self.assertIn('filename="sending-domains-', download["Content-Disposition"])
        lines = b"".join(download.streaming_content).decode().splitlines()
        self.assertEqual(lines[0], "Domain,ASCII name,Status,May send,SPF,DKIM,DMARC,RETURN PATH,PTR,Last checked")
        self.assertEqual([line.split(",")[0] for line in lines[1:]], ["example.test"])
        self.assertIn(",ok,", lines[1])
        self.assertContains(response, 'class="badge text-bg-danger me-1" title="missing, ok" data-kind="dmarc"')
        self.assertContains(response, 'title="nothing to check" data-kind="ptr"')  # no sending IPs yet
        self.assertNotContains(response, "Add domain")
        response = self.client.get(reverse("domain-detail", args=[self.domain.pk]))
        self.assertEqual(response.status_code, 200)
        body = response.content.decode()
        key = self.domain.dkim_keys.get()
        self.assertIn(key.dns_name, body)
        self.assertIn('data-copy="#zone-file"', body)
        self.assertIn("No DMARC record at _dmarc.example.test", body)
        self.assertNotIn("Check now", body)  # viewers cannot
        self.assertNotIn("Export private key", body)

    def test_other_tenant_is_404_viewer_is_403(self):
        login_verified(self.client, self.alice)
        self.assertEqual(self.client.get(reverse("domain-detail", args=[self.theirs.pk])).status_code, 404)
        self.assertEqual(self.client.post(reverse("domain-verify", args=[self.theirs.pk])).status_code, 404)
        self.client.force_login(self.bob)
        self.assertEqual(self.client.post(reverse("domain-verify", args=[self.domain.pk])).status_code, 403)
        self.assertEqual(self.client.get(reverse("domain-add")).status_code, 403)

    def test_changes_need_post_and_a_verified_session(self):
        login_verified(self.client, self.alice)
        self.assertEqual(self.client.get(reverse("domain-verify", args=[self.domain.pk])).status_code, 405)
        unverified = Client()
        unverified.force_login(self.alice)  # a session without its second factor
        response = unverified.post(reverse("domain-verify", args=[self.domain.pk]))
        self.assertEqual(response.status_code, 302)
        self.assertIn("/account/2fa/", response["Location"])
        self.assertIsNone(SendingDomain.objects.get(pk=self.domain.pk).last_checked)

    def test_add_check_now_and_rotate(self):
        login_verified(self.client, self.alice)
        response = self.client.get(reverse("domain-add"))
        self.assertEqual(response.status_code, 200)
        response = self.client.post(reverse("domain-add"), {
            "name": "news.example.test", "return_path_subdomain": "bounces", "dmarc_policy": "quarantine",
            "dmarc_alignment": "r", "spf_all": "~all", "tls_policy": "required", "mta_sts_mode": "",
            "dkim_bits": "2048",
        })  # fmt: skip
        self.assertEqual(response.status_code, 302, response.content.decode()[:2000])
        added = SendingDomain.objects.get(tenant=self.tenant_a, name="news.example.test")
        self.assertEqual(added.tls_policy, "required")
        self.assertRedirects(response, reverse("domain-detail", args=[added.pk]))
        response = self.client.post(reverse("domain-add"), {"name": "news.example.test", "return_path_subdomain": "b",
                                                            "dmarc_policy": "none", "dmarc_alignment": "r",
                                                            "spf_all": "~all", "tls_policy": "opportunistic",
                                                            "dkim_bits": "2048"})  # fmt: skip
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "already a sending domain", status_code=400)

        self.publish(added)
        response = self.client.post(reverse("domain-verify", args=[added.pk]), follow=True)
        self.assertContains(response, "Status: Verified")
        added.refresh_from_db()
        self.assertEqual(added.status, DomainStatus.VERIFIED)

        response = self.client.post(reverse("dkim-rotate", args=[added.pk]), {"key": "rsa-3072"}, follow=True)
        self.assertContains(response, "it signs once it verifies")
        new = added.dkim_keys.get(state=DkimKeyState.PENDING)
        self.assertEqual(new.key_bits, 3072)
        self.assertTrue(AuditEntry.objects.filter(action="dkim.rotate", actor_name="alice@a.test").exists())

    def test_settings_edit(self):
        login_verified(self.client, self.alice)
        data = {"return_path_subdomain": "rp", "dmarc_policy": "reject", "dmarc_rua": "dmarc@example.test",
                "dmarc_alignment": "r", "spf_all": "-all", "spf_extra_terms": "include:_spf.partner.test",
                "tls_policy": "opportunistic", "mta_sts_mode": ""}  # fmt: skip
        response = self.client.post(reverse("domain-edit", args=[self.domain.pk]), data)
        self.assertEqual(response.status_code, 302)
        self.domain.refresh_from_db()
        self.assertEqual(self.domain.return_path_host, "rp.example.test")
        self.assertEqual(self.domain.dmarc_txt_value(), "v=DMARC1; p=reject; rua=mailto:dmarc@example.test")
        response = self.client.post(reverse("domain-edit", args=[self.domain.pk]), {**data, "spf_extra_terms": "+all"})
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "Not an SPF term", status_code=400)

    def test_private_key_export_needs_a_fresh_code_and_is_audited(self):
        key = self.domain.dkim_keys.get()
        url = reverse("dkim-export", args=[self.domain.pk, key.pk])
        login_verified(self.client, self.alice)
        response = self.client.post(url)
        self.assertContains(response, "Confirm it is you")  # a fresh code is asked for first
        self.assertFalse(AuditEntry.objects.filter(action="dkim.export").exists())
        self.assertEqual(self.client.get(url).status_code, 405)
        self.login_sudo(self.alice)
        response = self.client.post(url)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content.decode(), key.private_key_pem())
        self.assertIn("attachment", response["Content-Disposition"])
        entry = AuditEntry.objects.get(action="dkim.export")
        self.assertEqual(entry.actor_name, "alice@a.test")
        self.assertNotIn("PRIVATE", entry.message)
        self.client.force_login(self.bob)
        self.assertEqual(self.client.post(url).status_code, 403)

    def test_delete(self):
        login_verified(self.client, self.alice)
        response = self.client.post(reverse("domain-delete", args=[self.domain.pk]))
        self.assertRedirects(response, reverse("domain-list"))
        self.assertFalse(SendingDomain.objects.filter(pk=self.domain.pk).exists())
