"""In a real browser: the Test inbox receiving a message without a reload; an operator creating a node, an IP and a
pool in the panel and sending through them; a marketer's navigation showing only what it may open, on a wide and a
390 px screen.

The delivery runs in this process (the scheduler, then each batch, as the worker would: `run_once`) into the real
demo capture SMTP server on loopback. Screenshots (DELIVERYHUB_SCREENSHOTS=1) go to docs/screenshots/.
"""

import os
import re

from django.conf import settings
from django.test import override_settings
from django_otp.oath import totp

from deliveryhub import services as core
from deliveryhub.choices import Role
from deliveryhub.models import EncryptedTOTPDevice
from deliveryhub.testing.cases import PASSWORD, make_user
from ippools import services as ip_services
from ippools.models import IPAddress, IPPool, WarmupPlan
from ippools.warmup import default_plans
from queues.capture import capture_server_factory
from queues.delivery import state
from queues.models import CapturedMessage, Message
from queues.smtpd.listener import ThreadedServer
from queues.testing import make_sending_domain
from tests.queues.helpers import flush_redis, run_once

from .base import BrowserTestCase, sync_playwright

if sync_playwright is not None:
    from playwright.sync_api import expect

NARROW = {"width": 390, "height": 844}  # a phone


class PanelBrowserTest(BrowserTestCase):
    @classmethod
    def setUpClass(cls):
        cls.capture = ThreadedServer(capture_server_factory(), "127.0.0.1", 0).start()
        cls._settings = override_settings(
            DEMO_MODE=True, CAPTURE_SMTP_PORT=cls.capture.port, DNS_RESOLVERS=["127.0.0.1:9"], DNS_TIMEOUT=0.5
        )
        cls._settings.enable()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls._settings.disable()
        state.close()
        cls.capture.stop()

    def setUp(self):
        flush_redis()
        self.tenant = core.create_tenant("acme", "Acme Mail")
        make_sending_domain(self.tenant, "mail.acme.test")

    def sign_in(self, page, user, device=None, path="/"):
        page.goto(self.live_server_url + path)
        page.fill("input[name=username]", user.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        if device is not None:
            device = EncryptedTOTPDevice.objects.get(pk=device.pk)
            page.fill("input[name=token]", f"{totp(device.bin_key, step=device.step, t0=device.t0):06d}")
            page.click("form button[type=submit] >> text=Verify")
        expect(page.locator("#user-menu")).to_have_count(1)  # signed in (the menu may be folded on a phone)

    def admin(self, email="alice@acme.test", **kwargs):
        user = make_user(email, self.tenant, Role.ADMIN, **kwargs)
        return user, EncryptedTOTPDevice.objects.create(user=user, name="phone", confirmed=True)

    def send_from_test_inbox(self, page, to="friend@example.com", subject="Hello from the panel"):
        page.goto(self.live_server_url + "/test-inbox/")
        expect(page.locator("#id_sender")).to_have_value("test@mail.acme.test")  # pre-filled: a domain that may send
        page.fill("#id_to", to)
        page.fill("#id_subject", subject)
        page.click("#test-message-form button[type=submit]")
        expect(page.locator("#sent-messages")).to_contain_text(to)
        page.evaluate("window.notReloaded = true")  # gone if the page reloads

    def test_test_inbox_shows_the_message_arrive_without_a_reload(self):
        user, device = self.admin()
        ip_services.ensure_local_node()  # the demo stack's node "local" owning 127.0.0.1
        page = self.open_page()
        self.sign_in(page, user, device)
        self.send_from_test_inbox(page)
        expect(page.locator("#capture-note")).to_contain_text("no route matches goes to the demo capture server")
        expect(page.locator("#sent-messages .badge")).to_have_text("Queued")
        self.screenshot(page, "queues-test-inbox-sent.png")
        run_once()  # the scheduler and a worker, as `make run` runs them
        self.assertEqual(CapturedMessage.objects.count(), 1)
        row = page.locator("#inbox-table tbody tr", has_text="Hello from the panel")
        expect(row).to_be_visible()  # polled in, no reload
        expect(row).to_contain_text("pass")  # its DKIM result
        expect(page.locator("#sent-messages .badge")).to_have_text("Delivered")
        self.assertTrue(page.evaluate("window.notReloaded === true"))
        self.screenshot(page, "queues-test-inbox.png")
        row.locator("a").first.click()
        expect(page.locator("#inbox-text")).to_contain_text("It works")
        page.click("#inbox-message >> text=queue entry")
        expect(page.locator("#message-summary")).to_contain_text("Delivered")
        expect(page.locator("#waiting-for")).to_have_count(0)
        self.screenshot(page, "queues-message-detail.png")
        page.click("#main-nav >> text=Queues")
        expect(page.locator("#counts")).to_contain_text("Delivered 1")
        self.screenshot(page, "queues-messages.png")

    def test_operator_creates_a_node_an_ip_and_a_pool_and_sends_through_them(self):
        root = make_user("root@ops.test", is_superuser=True)
        device = EncryptedTOTPDevice.objects.create(user=root, name="phone", confirmed=True)
        core.add_member(self.tenant, root, Role.OWNER)
        page = self.open_page()
        self.sign_in(page, root, device)
        page.click("#platform-menu .dropdown-toggle")
        page.click("#platform-menu >> text=Delivery nodes")
        expect(page.locator("#node-table")).to_contain_text("No delivery node yet")
        page.click("#add-object")
        page.fill("#id_name", settings.NODE_NAME)
        page.fill("#id_region", "eu")
        page.click("#object-form button[type=submit]")
        expect(page.locator("#node-live")).to_have_text("no heartbeat")
        ip_services.heartbeat(settings.NODE_NAME)  # what the node's worker does when it starts
        page.reload()
        expect(page.locator("#node-live")).to_have_text("live")
        self.screenshot(page, "ippools-node.png")

        page.goto(self.live_server_url + "/ip-pools/addresses/new/")
        page.fill("#id_address", "300.0.0.1")  # refused like the API refuses it, nothing saved
        page.select_option("#id_node", label=settings.NODE_NAME)
        page.click("#object-form button[type=submit]")
        expect(page.locator("#object-form")).to_contain_text("not an IPv4 or IPv6 address")
        page.fill("#id_address", "127.0.0.2")
        page.fill("#id_ehlo_hostname", "mta1.acme.test")
        page.click("#object-form button[type=submit]")
        expect(page.locator("h1")).to_contain_text("127.0.0.2")
        ip = IPAddress.objects.get(address="127.0.0.2")

        page.goto(self.live_server_url + "/ip-pools/new/")
        page.fill("#id_name", "acme-dedicated")
        page.select_option("#id_tenant", label="Acme Mail")
        page.click("#object-form button[type=submit]")
        expect(page.locator("#member-table")).to_contain_text("No IP addresses in this pool")
        page.select_option("#id_ip", label="127.0.0.2")
        page.fill("#id_weight", "100")
        page.click("text=Add >> nth=-1")
        expect(page.locator("#member-table")).to_contain_text("127.0.0.2")
        self.screenshot(page, "ippools-pool.png")
        pool = IPPool.objects.get(name="acme-dedicated")

        self.send_from_test_inbox(page, subject="Through the new pool")
        run_once()
        message = Message.objects.get()
        self.assertEqual((message.status, message.source_ip, message.ip_pool), ("delivered", ip, None))
        self.assertEqual(ip_services.default_pool_for(self.tenant), pool)  # its default pool: the dedicated one
        expect(page.locator("#inbox-table")).to_contain_text("Through the new pool")
        page.goto(self.live_server_url + f"/messages/{message.uuid}/")
        expect(page.locator("#attempt-table")).to_contain_text("127.0.0.2")
        page.goto(self.live_server_url + "/ip-pools/addresses/")
        self.screenshot(page, "ippools-addresses.png")
        page.goto(self.live_server_url + "/audit/")
        expect(page.locator("#audit-table")).to_contain_text("acme-dedicated")
        self.screenshot(page, "audit-log-changes.png")
        self.tour(page, [
            ("/ip-pools/", "ippools-pools.png"),
            (f"/ip-pools/addresses/{ip.pk}/", "ippools-address-detail.png"),
            (f"/ip-pools/addresses/{ip.pk}/start-warmup/?plan={self.shipped_plan().pk}&day=1",
             "ippools-warmup-preview.png"),
            (f"/ip-pools/warmup-plans/{self.shipped_plan().pk}/edit/", "ippools-warmup-plan.png"),
            ("/ip-pools/blocklists/", "ippools-blocklists.png"),
            ("/ip-pools/throttle-rules/", "ippools-throttle-rules.png"),
            ("/platform/tenants/", "platform-tenants.png"),
            ("/routes/?check=example.com", "queues-routes.png"),
            ("/bounce-rules/", "queues-bounce-rules.png"),
            ("/no/such/page/", "not-found.png"),
        ])  # fmt: skip

    def shipped_plan(self):
        """The first shipped plan (a live-server test starts from an empty database: made again from the same data)."""
        data = default_plans()[0]
        return WarmupPlan.objects.filter(name=data["name"]).first() or WarmupPlan.objects.create(**data)

    def tour(self, page, pages):
        """Screenshots of more pages, only when screenshots are asked for (they are tested without a browser)."""
        if not os.environ.get("DELIVERYHUB_SCREENSHOTS"):
            return
        for path, name in pages:
            page.goto(self.live_server_url + path)
            self.screenshot(page, name)

    def test_a_marketer_sees_only_what_it_may_open(self):
        marketer = make_user("mara@acme.test", self.tenant, Role.MARKETER)
        page = self.open_page()
        self.sign_in(page, marketer)
        nav = page.locator("#main-nav .navbar-nav").first
        labels = [text.strip() for text in nav.locator(".nav-link").all_inner_texts()]
        self.assertNotIn("Audit log", labels)
        self.assertNotIn("Platform", labels)
        self.assertTrue({"Dashboard", "Domains", "IP pools", "Queues", "Settings"} <= set(labels), labels)
        for link in nav.locator("a.nav-link").all():
            href = link.get_attribute("href")
            response = page.request.get(self.live_server_url + href)
            self.assertEqual(response.status, 200, href)  # nothing shown answers 403
        phone = self.open_page(NARROW)
        self.sign_in(phone, marketer, path="/messages/")
        toggler = phone.locator(".navbar-toggler")
        expect(toggler).to_be_visible()  # the navigation collapses
        expect(phone.locator("#main-nav")).to_be_hidden()
        width = phone.evaluate("document.documentElement.scrollWidth")
        self.assertLessEqual(width, NARROW["width"], "the page scrolls sideways: tables must scroll in their card")
        toggler.click()
        expect(phone.locator("#main-nav")).to_be_visible()
        self.assertIsNotNone(re.search(r"Queues", phone.locator("#main-nav").inner_text()))
        self.screenshot(phone, "narrow-messages.png")
