"""In a real browser: an admin creates a webhook to a loopback receiver (the secret shown once), sends a test event and
sees it in the delivery log; the events page; an SMTP credential created with its password shown once; a domain's
DMARC report page. Screenshots (DELIVERYHUB_SCREENSHOTS=1) go to docs/screenshots/."""

from django.test import override_settings
from django.utils import timezone
from django_otp.oath import totp

from deliveryhub import services as core
from deliveryhub.choices import Role
from deliveryhub.models import EncryptedTOTPDevice
from deliveryhub.testing.cases import PASSWORD, make_user
from domains.models import DmarcRecord, DmarcReport
from queues.models import MessageEvent, WebhookDelivery
from queues.services import Submission, accept_messages
from queues.testing import make_sending_domain, make_sending_ips
from queues.webhooks import dispatch, stream
from queues.webhooks.testing import Receiver
from tests.queues.helpers import flush_redis

from .base import BrowserTestCase, sync_playwright

if sync_playwright is not None:
    from playwright.sync_api import expect


@override_settings(OUTBOUND_ALLOW_PRIVATE_TARGETS=True, RQ_IS_ASYNC=False)
class WebhooksBrowserTest(BrowserTestCase):
    def setUp(self):
        flush_redis()
        self.tenant = core.create_tenant("acme", "Acme Mail")
        self.domain = make_sending_domain(self.tenant, "mail.acme.test")
        self.user = make_user("alice@acme.test", self.tenant, Role.ADMIN)
        self.device = EncryptedTOTPDevice.objects.create(user=self.user, name="phone", confirmed=True)

    def code(self):
        device = EncryptedTOTPDevice.objects.get(pk=self.device.pk)
        return f"{totp(device.bin_key, step=device.step, t0=device.t0):06d}"

    def sign_in(self, page):
        page.goto(self.live_server_url + "/")
        page.fill("input[name=username]", self.user.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.fill("input[name=token]", self.code())
        page.click("form button[type=submit] >> text=Verify")
        expect(page.locator("#user-menu")).to_have_count(1)

    def test_webhook_events_credentials_dmarc(self):
        page = self.open_page()
        self.sign_in(page)
        with Receiver() as receiver:
            page.goto(self.live_server_url + "/webhooks/new/")
            page.fill("#id_url", receiver.url)
            page.check("input[name=events][value=delivered]")
            page.check("input[name=events][value=bounced]")
            page.fill("#id_description", "Order system")
            page.click("form button[type=submit] >> text=Create")
            secret = page.locator("#raw-secret").input_value()
            self.assertTrue(secret.startswith("whsec_"))
            receiver.secrets.append(secret)
            self.screenshot(page, "webhooks-secret-once.png")
            page.click("text=Done")
            page.click("#send-test")
            expect(page.locator("#delivery-table")).to_contain_text("Test event")
            self.assertEqual(receiver.events()[0]["type"], "test")
            self.assertEqual(receiver.bad_signatures, 0)
            # Real events: accepted, delivered, bounced; the dispatcher sends the subscribed ones.
            messages = accept_messages(self.tenant, [Submission(sender="app@mail.acme.test", to=[
                f"customer{i}@example.com" for i in range(3)], subject="Your order", text="Thanks", tag="orders")
            ]).messages  # fmt: skip
            MessageEvent.objects.create(message=messages[0], kind="delivered", detail="250 2.0.0 OK queued",
                                        data={"code": 250, "mx_host": "mx.example.com"})  # fmt: skip
            MessageEvent.objects.create(message=messages[1], kind="bounced", detail="550 5.1.1 No such user",
                                        data={"code": 550, "enhanced": "5.1.1", "category": "invalid_recipient"})
            dispatch.dispatch()
            self.assertEqual(sorted(e["type"] for e in receiver.events()[1:]), ["bounced", "delivered"])
            page.reload()
            expect(page.locator("#delivery-table")).to_contain_text("Events")
            self.assertEqual(WebhookDelivery.objects.count(), 2)
            self.screenshot(page, "webhooks-detail.png")
        page.goto(self.live_server_url + "/webhooks/")
        expect(page.locator("#webhook-table")).to_contain_text("healthy")
        self.screenshot(page, "webhooks.png")
        stream.sequence_events()
        page.goto(self.live_server_url + "/events/")
        expect(page.locator("#event-table")).to_contain_text("customer0@example.com")
        self.screenshot(page, "events.png")

        page.goto(self.live_server_url + "/smtp-credentials/new/")
        page.fill("#id_username", "shop-app")
        page.fill("#id_description", "Web shop")
        page.fill("#id_allowed_from_domains", "mail.acme.test")
        page.fill("#id_allowed_networks", "192.0.2.0/24")
        page.click("form button[type=submit] >> text=Create")
        password = page.locator("#raw-password").input_value()
        self.assertGreater(len(password), 20)
        self.screenshot(page, "smtp-credential-created.png")
        page.click("text=Done")
        expect(page.locator("#smtp-credential-table")).to_contain_text("shop-app")
        self.assertNotIn(password, page.content())
        self.screenshot(page, "smtp-credentials.png")

        make_sending_ips(("127.0.0.2",))
        report = DmarcReport.objects.create(tenant=self.tenant, sending_domain=self.domain, org_name="google.com",
                                            report_id="1766", date_begin=timezone.now() - timezone.timedelta(days=1),
                                            date_end=timezone.now(), policy_domain="mail.acme.test", policy="none",
                                            message_count=1327)  # fmt: skip
        DmarcRecord.objects.create(report=report, source_ip="127.0.0.2", count=1320, dkim="pass", spf="pass",
                                   disposition="none", ours=True)  # fmt: skip
        DmarcRecord.objects.create(report=report, source_ip="203.0.113.9", count=7, dkim="fail", spf="fail",
                                   disposition="none")  # fmt: skip
        page.goto(self.live_server_url + "/dmarc/")
        expect(page.locator("#dmarc-sources")).to_contain_text("203.0.113.9")
        self.screenshot(page, "dmarc-reports.png")
