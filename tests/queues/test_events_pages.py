"""Panel pages of webhooks, events, feedback reports, DMARC reports and SMTP credentials: roles, tenancy (another
tenant's object is a 404), secrets shown once, changes audited; an SMTP credential made in the panel submits over
STARTTLS + AUTH and the message reaches a sink; revoked, AUTH fails."""

import smtplib
import ssl
import time

from django.test import Client, TransactionTestCase, override_settings

from deliveryhub import services as core
from deliveryhub.choices import Role
from deliveryhub.models import AuditEntry
from deliveryhub.otp import SESSION_OTP_SUDO_KEY
from deliveryhub.testing.cases import TenantTestCase, login_verified, make_user
from deliveryhub.testing.smtp import SMTPSink, self_signed_certificate
from domains.models import DmarcRecord, DmarcReport
from queues.delivery import state
from queues.models import Message, Route, SmtpCredential, Webhook
from queues.services import create_smtp_credential
from queues.smtpd.listener import Listener, tls_context
from queues.testing import make_sending_domain, make_sending_ips
from queues.webhooks import services, stream

from .helpers import flush_redis, run_once

PUBLIC_URL = "https://93.184.215.14/hook"


class PagesTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain_a = make_sending_domain(cls.tenant_a, "mail-a.test")
        make_sending_domain(cls.tenant_b, "mail-b.test")

    def setUp(self):
        self.admin = Client()
        login_verified(self.admin, self.alice)
        self.viewer = Client()
        self.viewer.force_login(self.bob)

    def test_webhook_create_secret_once_edit_test_audited(self):
        response = self.admin.post("/webhooks/new/", {"url": PUBLIC_URL, "events": ["delivered"], "enabled": "on",
                                                      "description": "orders"})  # fmt: skip
        self.assertEqual(response.status_code, 200)
        webhook = Webhook.objects.get()
        self.assertContains(response, webhook.secret)  # shown this once…
        self.assertNotContains(self.admin.get(f"/webhooks/{webhook.pk}/"), webhook.secret)  # …never again
        self.assertTrue(AuditEntry.objects.filter(action="create", object_id=str(webhook.pk)).exists())
        response = self.admin.post(f"/webhooks/{webhook.pk}/edit/", {"url": PUBLIC_URL, "events": ["bounced"],
                                                                     "description": "orders"})  # fmt: skip
        self.assertEqual(response.status_code, 302)
        webhook.refresh_from_db()
        self.assertEqual((webhook.events, webhook.enabled), (["bounced"], False))
        self.assertTrue(AuditEntry.objects.filter(action="update", object_id=str(webhook.pk)).exists())
        bad = self.admin.post(f"/webhooks/{webhook.pk}/edit/", {"url": "https://10.0.0.1/x"})
        self.assertEqual(bad.status_code, 400)
        self.assertContains(bad, "private address", status_code=400)
        with self.captureOnCommitCallbacks(execute=False):
            self.assertEqual(self.admin.post(f"/webhooks/{webhook.pk}/test/").status_code, 302)
        self.assertTrue(AuditEntry.objects.filter(action="webhook.test").exists())
        session = self.admin.session
        session[SESSION_OTP_SUDO_KEY] = time.time()  # a code entered just now (rotation is a sudo action)
        session.save()
        rotated = self.admin.post(f"/webhooks/{webhook.pk}/rotate-secret/")
        webhook.refresh_from_db()
        self.assertContains(rotated, webhook.secret)

    def test_roles_and_tenancy(self):
        theirs = services.create_webhook(self.tenant_b, url=PUBLIC_URL)[0]
        mine = services.create_webhook(self.tenant_a, url=PUBLIC_URL)[0]
        their_credential, _ = create_smtp_credential(self.tenant_b, "b-login")
        for path in (f"/webhooks/{theirs.pk}/", f"/webhooks/{theirs.pk}/edit/",
                     f"/smtp-credentials/{their_credential.pk}/edit/"):  # fmt: skip
            self.assertEqual(self.admin.get(path).status_code, 404, path)
        for path in (f"/webhooks/{theirs.pk}/test/", f"/webhooks/{theirs.pk}/delete/",
                     f"/smtp-credentials/{their_credential.pk}/revoke/"):  # fmt: skip
            self.assertEqual(self.admin.post(path).status_code, 404, path)
        self.assertEqual(self.viewer.get("/webhooks/new/").status_code, 403)
        self.assertEqual(self.viewer.post(f"/webhooks/{mine.pk}/test/").status_code, 403)
        self.assertEqual(self.viewer.get(f"/webhooks/{mine.pk}/").status_code, 200)
        self.assertEqual(self.viewer.get("/smtp-credentials/").status_code, 403)  # viewers do not see logins
        self.assertNotContains(self.admin.get("/webhooks/"), theirs.url + "\"")
        their_credential.refresh_from_db()
        self.assertTrue(their_credential.is_active)

    def test_events_feedback_and_dmarc_pages(self):
        from queues.services import Submission, accept_messages

        accept_messages(self.tenant_a, [Submission(sender="a@mail-a.test", to=["mine@example.com"], subject="s",
                                                   text="t")])  # fmt: skip
        accept_messages(self.tenant_b, [Submission(sender="b@mail-b.test", to=["theirs@example.com"], subject="s",
                                                   text="t")])  # fmt: skip
        stream.sequence_events()
        page = self.viewer.get("/events/")
        self.assertContains(page, "mine@example.com")
        self.assertNotContains(page, "theirs@example.com")
        self.assertContains(self.viewer.get("/events/", {"type": "delivered"}), "No")
        self.assertEqual(self.viewer.get("/feedback-reports/").status_code, 200)
        from django.utils import timezone

        report = DmarcReport.objects.create(tenant=self.tenant_a, sending_domain=self.domain_a, org_name="google.com",
                                            report_id="r1", date_begin=timezone.now(), date_end=timezone.now(),
                                            policy_domain="mail-a.test", message_count=5)  # fmt: skip
        DmarcRecord.objects.create(report=report, source_ip="203.0.113.9", count=5, dkim="fail", spf="fail")
        page = self.viewer.get("/dmarc/")
        self.assertContains(page, "203.0.113.9")
        self.assertContains(page, "not ours")

    def test_smtp_credential_create_password_once_then_revoke(self):
        data = {"username": "shop-app", "description": "shop", "allowed_from_domains": "mail-a.test",
                "allowed_networks": "127.0.0.0/8"}
        response = self.admin.post("/smtp-credentials/new/", data)
        self.assertEqual(response.status_code, 200, response.content[:2000])
        credential = SmtpCredential.objects.get(username="shop-app")
        password = response.context["password"]
        self.assertTrue(credential.check_password(password))
        self.assertEqual(credential.allowed_networks, ["127.0.0.0/8"])
        self.assertNotContains(self.admin.get("/smtp-credentials/"), password)
        self.assertEqual(self.admin.post(f"/smtp-credentials/{credential.pk}/revoke/").status_code, 302)
        credential.refresh_from_db()
        self.assertFalse(credential.is_active)
        self.assertTrue(AuditEntry.objects.filter(action="smtp_credential.revoke").exists())
        taken = self.admin.post("/smtp-credentials/new/", {"username": "shop-app"})
        self.assertEqual(taken.status_code, 400)


def client_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@override_settings(DEMO_MODE=False)
class CredentialSubmitsToSinkTest(TransactionTestCase):
    def setUp(self):
        flush_redis()
        self.addCleanup(state.close)
        self.tenant = core.create_tenant("cred-a", "Cred A")
        self.admin_user = make_user("admin@cred.test", self.tenant, Role.ADMIN)
        make_sending_domain(self.tenant, "mail-a.test")
        make_sending_domain(self.tenant, "other-a.test")
        make_sending_ips(("127.0.0.2",))
        self.sink = SMTPSink().start()
        self.addCleanup(self.sink.stop)
        Route.objects.create(tenant=self.tenant, pattern="*", host="127.0.0.1", port=self.sink.port)
        cert, key, _ = self_signed_certificate()
        self.listener = Listener("127.0.0.1", 0, context=tls_context(cert, key)).start()
        self.addCleanup(self.listener.stop)

    def login(self, username, password):
        smtp = smtplib.SMTP("127.0.0.1", self.listener.port, timeout=10)
        self.addCleanup(smtp.close)
        smtp.ehlo("app.test")
        smtp.starttls(context=client_context())
        smtp.ehlo("app.test")
        smtp.login(username, password)
        return smtp

    def test_created_in_the_panel_submits_then_revoked_fails(self):
        browser = Client()
        login_verified(browser, self.admin_user)
        response = browser.post("/smtp-credentials/new/", {"username": "shop", "allowed_from_domains": "mail-a.test"})
        password = response.context["password"]
        smtp = self.login("shop", password)
        body = b"From: Shop <shop@mail-a.test>\r\nTo: buyer@example.com\r\nSubject: order\r\n\r\nHi\r\n"
        rejected = smtp.sendmail("x@mail-a.test", ["buyer@example.com"], body)
        self.assertEqual(rejected, {})
        with self.assertRaises(smtplib.SMTPDataError) as refused:  # the tenant's other domain: not allowed here
            smtp.sendmail("x@other-a.test", ["buyer@example.com"],
                          b"From: news@other-a.test\r\nTo: buyer@example.com\r\nSubject: x\r\n\r\nHi\r\n")
        self.assertIn(b"may send only as mail-a.test", refused.exception.smtp_error)
        run_once()
        [received] = self.sink.wait_for_messages(1)
        self.assertIn(b"Subject: order", received.data)
        self.assertEqual(Message.objects.get().status, "delivered")
        credential = SmtpCredential.objects.get(username="shop")
        browser.post(f"/smtp-credentials/{credential.pk}/revoke/")
        with self.assertRaises(smtplib.SMTPAuthenticationError):
            self.login("shop", password)
