"""The queues pages as people use them: the Test inbox says where mail goes and never sends to a real recipient
unasked; the Routes page says what demo capture catches; message pages say what a message waits for and refresh
themselves while it is unfinished; bounce rules are managed in the browser."""

from django.test import Client, override_settings
from django.utils import timezone

from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase, login_verified, make_user
from domains.services import create_domain
from queues.choices import MessageStatus
from queues.delivery.destination import mail_path
from queues.models import BounceRule, CapturedMessage, Message, Route
from queues.testing import make_sending_domain

from .helpers import send


class TestInboxTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")

    def setUp(self):
        self.client = Client()
        login_verified(self.client, self.alice)

    def post(self, to, **extra):
        data = {"sender": "me@mail-a.test", "to": to, "subject": "Hi", "text": "Hello", **extra}
        return self.client.post("/test-inbox/", data)

    def test_from_is_prefilled_with_a_domain_that_may_send(self):
        create_domain(self.tenant_a, "aaa-unverified.test")  # first by name, but it may not send yet
        page = self.client.get("/test-inbox/")
        self.assertEqual(page.context["form"]["sender"].value(), "test@mail-a.test")

    @override_settings(DEMO_MODE=True)
    def test_demo_capture_catches_what_no_route_matches_and_the_page_says_so(self):
        Route.objects.create(tenant=self.tenant_a, pattern="partner.example", host="relay.partner.example")
        page = self.client.get("/test-inbox/")
        self.assertContains(page, "no route matches goes to the demo capture server")
        self.assertContains(page, "partner.example")  # the route whose mail is not captured
        response = self.post("someone@example.net")  # no route: captured, no confirmation needed
        message = Message.objects.get()
        self.assertRedirects(response, f"/test-inbox/?sent={message.uuid}", fetch_redirect_response=False)
        page = self.client.get(response["Location"])  # the page stays, following the message
        self.assertContains(page, 'id="sent-messages"')
        self.assertContains(page, "demo capture server")
        response = self.post("ann@partner.example")  # a route: the mail leaves the machine
        self.assertContains(response, "relay.partner.example", status_code=400)
        self.assertEqual(Message.objects.count(), 1)
        self.assertEqual(self.post("ann@partner.example", send_for_real="on").status_code, 302)
        self.assertEqual(Message.objects.count(), 2)

    @override_settings(DEMO_MODE=False)
    def test_without_demo_mode_a_test_message_goes_to_the_real_recipient_only_when_confirmed(self):
        self.assertContains(self.client.get("/test-inbox/"), "Demo mode is off")
        response = self.post("someone@example.net")
        self.assertContains(response, "the real recipient", status_code=400)
        self.assertFalse(Message.objects.exists())
        self.post("someone@example.net", send_for_real="on")
        self.assertEqual(Message.objects.get().rcpt_to, "someone@example.net")

    def test_the_inbox_list_refreshes_itself_and_shows_parts(self):
        [message] = send(self.tenant_a, ["x@example.com"], sender="a@mail-a.test")
        raw = (
            b"From: a@mail-a.test\r\nTo: x@example.com\r\nSubject: Parts\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
            b"plain words\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html <b>words</b></p>\r\n--b--\r\n"
        )
        captured = CapturedMessage.objects.create(tenant=self.tenant_a, message=message, mail_from="b@x",
                                                  rcpt_tos=["x@example.com"], subject="Parts", raw=raw,
                                                  dkim_result="pass")  # fmt: skip
        CapturedMessage.objects.create(tenant=self.tenant_b, mail_from="c@x", rcpt_tos=["y@b.test"], subject="Theirs",
                                       raw=b"x")  # fmt: skip
        page = self.client.get("/test-inbox/")
        self.assertContains(page, 'hx-trigger="every 3s"')
        fragment = self.client.get("/test-inbox/", {"fragment": "inbox"})
        self.assertTemplateUsed(fragment, "queues/_test_inbox_list.html")
        self.assertContains(fragment, "Parts")
        self.assertContains(fragment, f"/messages/{message.uuid}/")  # its queue entry
        self.assertNotContains(fragment, "Theirs")
        page = self.client.get("/test-inbox/", {"show": captured.pk})
        self.assertContains(page, "plain words")
        self.assertContains(page, 'srcdoc="&lt;p&gt;html &lt;b&gt;words&lt;/b&gt;&lt;/p&gt;')  # sandboxed, escaped
        self.assertContains(page, 'sandbox=""')


class RoutesPageTest(TenantTestCase):
    def setUp(self):
        self.client = Client()
        login_verified(self.client, self.alice)

    @override_settings(DEMO_MODE=True)
    def test_routes_page_says_what_demo_capture_catches(self):
        Route.objects.create(tenant=self.tenant_a, pattern="*.partner.example", host="relay.partner.example")
        page = self.client.get("/routes/", {"check": "shop.partner.example"})
        self.assertContains(page, "Demo mode is on: mail to a domain that no route matches goes to the demo capture")
        self.assertContains(page, "goes to the relay relay.partner.example:25")
        page = self.client.get("/routes/", {"check": "gmail.com"})
        self.assertContains(page, "goes to the demo capture server")

    def test_mail_path(self):
        Route.objects.create(tenant=self.tenant_a, pattern="example.com", host="relay.test")
        Route.objects.create(tenant=self.tenant_b, pattern="*", host="b-relay.test")
        with override_settings(DEMO_MODE=True):
            self.assertEqual(mail_path(self.tenant_a.pk, "example.com").kind, "route")
            path = mail_path(self.tenant_a.pk, "other.test")  # tenant B's catch-all is not A's
            self.assertEqual((path.kind, path.reaches_real_recipient), ("capture", False))
        with override_settings(DEMO_MODE=False):
            path = mail_path(self.tenant_a.pk, "other.test")
            self.assertEqual((path.kind, path.reaches_real_recipient), ("mx", True))


class MessagePagesTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")

    def setUp(self):
        self.client = Client()
        login_verified(self.client, self.alice)

    def test_unfinished_messages_say_what_they_wait_for_and_refresh(self):
        [m] = send(self.tenant_a, ["x@example.com"], sender="a@mail-a.test")
        later = timezone.now() + timezone.timedelta(hours=3)
        Message.objects.filter(pk=m.pk).update(
            next_attempt_at=later, status_detail="Waiting for sending capacity: every usable IP reached its cap."
        )
        page = self.client.get(f"/messages/{m.uuid}/")
        self.assertContains(page, 'id="waiting-for"')
        self.assertContains(page, f"Next look at {later:%Y-%m-%d %H:%M:%S} UTC")
        self.assertContains(page, 'hx-select="#message-live"')
        listing = self.client.get("/messages/")
        self.assertContains(listing, 'data-live="true"')
        self.assertContains(listing, "Waiting for sending capacity")
        Message.objects.filter(pk=m.pk).update(status=MessageStatus.DELIVERED, delivered_at=timezone.now())
        page = self.client.get(f"/messages/{m.uuid}/")
        self.assertNotContains(page, 'hx-select="#message-live"')
        self.assertNotContains(page, 'id="waiting-for"')
        self.assertContains(self.client.get("/messages/"), 'data-live="false"')

    def test_deferred_message_says_when_it_is_tried_next(self):
        [m] = send(self.tenant_a, ["x@example.com"], sender="a@mail-a.test")
        at = timezone.now() + timezone.timedelta(minutes=10)
        Message.objects.filter(pk=m.pk).update(status=MessageStatus.DEFERRED, attempts=2, next_attempt_at=at,
                                               status_detail="421 4.7.0 Try again later")  # fmt: skip
        self.assertContains(self.client.get(f"/messages/{m.uuid}/"),
                            f"Deferred after 2 attempts: next try at {at:%Y-%m-%d %H:%M:%S} UTC")  # fmt: skip

    def test_per_state_counts_and_csv(self):
        send(self.tenant_a, ["x@example.com", "y@example.com"], sender="a@mail-a.test")
        [done] = send(self.tenant_a, ["z@example.com"], sender="a@mail-a.test")
        Message.objects.filter(pk=done.pk).update(status=MessageStatus.DELIVERED)
        page = self.client.get("/messages/")
        self.assertContains(page, "3 in all")
        self.assertContains(page, 'data-count="queued">Queued 2</a>')
        self.assertContains(page, 'data-count="delivered">Delivered 1</a>')
        page = self.client.get("/messages/", {"status": "delivered"})
        self.assertContains(page, "1 in all (filtered)")
        self.assertContains(page, 'data-count="queued">Queued 2</a>')  # the counts ignore the state filter itself
        csv = b"".join(self.client.get("/messages/", {"export": "csv"}).streaming_content).decode().splitlines()
        self.assertEqual(len(csv), 4)
        self.assertTrue(csv[0].startswith("Created,Recipient"))


class BounceRulePagesTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.root = make_user("root@ops.test", is_superuser=True)

    def test_tenant_admin_writes_their_own_rules_operator_global_ones(self):
        client = Client()
        login_verified(client, self.alice)
        data = {"priority": 10, "code": "550", "enhanced": "5.7.1", "text": "listed", "category": "policy",
                "action": "defer+slow", "enabled": "on", "tenant": self.tenant_b.pk}  # fmt: skip
        self.assertRedirects(client.post("/bounce-rules/new/", data), "/bounce-rules/", fetch_redirect_response=False)
        rule = BounceRule.objects.get()
        self.assertEqual(rule.tenant, self.tenant_a)  # not the tenant named in the form
        bad = client.post("/bounce-rules/new/", {**data, "text": "([unclosed"})
        self.assertContains(bad, "Not a regular expression", status_code=400)
        global_rule = BounceRule.objects.create(priority=5, category="spam", action="bounce")
        page = client.get("/bounce-rules/")
        self.assertContains(page, "listed")
        self.assertNotContains(page, "spam")  # global rules are the operators'
        self.assertEqual(client.post(f"/bounce-rules/{global_rule.pk}/delete/").status_code, 404)
        root = Client()
        login_verified(root, self.root)
        root.post("/bounce-rules/new/", {**data, "tenant": "", "category": "everyone"})
        self.assertTrue(BounceRule.objects.filter(tenant=None, category="everyone").exists())
        self.assertContains(root.get("/bounce-rules/"), "listed")  # an operator sees every tenant's too
        client = Client()
        login_verified(client, self.bob)
        self.assertEqual(client.post(f"/bounce-rules/{rule.pk}/delete/").status_code, 403)
        self.assertTrue(AuditEntry.objects.filter(object_type="queues.bouncerule", action="create").exists())
