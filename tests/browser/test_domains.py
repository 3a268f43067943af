"""In a real browser: the domain list with a health badge per record kind, a domain page with its record plan, the
"Check now" button verifying against a real loopback DNS server, copy buttons, the zone file and the key timeline.

Drives Debian's Chromium with Playwright against a live server; screenshots (DELIVERYHUB_SCREENSHOTS=1) go to
docs/screenshots/domains-*.png.
"""

import os
import re
import unittest

from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.test import override_settings
from django_otp.oath import totp

from deliveryhub import services as core
from deliveryhub.choices import Role
from deliveryhub.models import EncryptedTOTPDevice
from deliveryhub.testing.cases import PASSWORD, make_user
from deliveryhub.testing.dns import DNSServer
from domains import services
from domains.choices import RecordKind
from domains.testing import BOUNCE_MX, zone_lines
from ippools.testing import make_ip, make_node, make_pool

from .test_login_flow import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, TIMEOUT_MS, VIEWPORT, sync_playwright

if sync_playwright is not None:
    from playwright.sync_api import expect


@unittest.skipUnless(CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium to run browser tests")
@unittest.skipIf(sync_playwright is None, "the playwright Python package is not installed")
class DomainPagesTest(StaticLiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls._async_unsafe = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        cls.dns = DNSServer().start()
        cls._dns_settings = override_settings(
            DNS_RESOLVERS=[cls.dns.address], DNS_TIMEOUT=1.0, BOUNCE_MX_HOST=BOUNCE_MX, SPF_INCLUDE=""
        )
        cls._dns_settings.enable()
        super().setUpClass()
        cls.playwright = sync_playwright().start()
        cls.browser = cls.playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.playwright.stop()
        super().tearDownClass()
        cls._dns_settings.disable()
        cls.dns.stop()
        if cls._async_unsafe is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = cls._async_unsafe

    def setUp(self):
        self.tenant = core.create_tenant("acme", "Acme Mail")
        self.user = make_user("alice@acme.test", self.tenant, Role.ADMIN)
        self.device = EncryptedTOTPDevice.objects.create(user=self.user, name="phone", confirmed=True)
        node = make_node("node-1")
        ips = [make_ip(a, node, ehlo=f"mta{n}.acme.test") for n, a in enumerate(("203.0.113.7", "2001:db8::25"), 1)]
        make_pool("shared", all_tenants=True, members=[(ip, 100) for ip in ips])
        self.dns.set_zone(BOUNCE_MX, "@ IN A 127.0.0.1")
        self.dns.set_zone("acme.test", "mta1 IN A 203.0.113.7\nmta2 IN AAAA 2001:db8::25")
        self.dns.set_ptr("203.0.113.7", "mta1.acme.test")
        self.dns.set_ptr("2001:db8::25", "mta2.acme.test")
        # one healthy domain, one with a problem per kind shown, one just added (nothing published)
        good = services.create_domain(self.tenant, "acme.example", dmarc_policy="reject", dmarc_rua="dmarc@acme.test")
        self.dns.set_zone(good.name, zone_lines(good))
        services.verify_domain(good)
        news = services.create_domain(self.tenant, "news.acme.example", bulk_sender=True, ed25519=True)
        spf = f'{news.name}. IN TXT "v=spf1 ip4:203.0.113.7 ~all"'  # forgets the IPv6 address
        self.dns.set_zone(
            news.name, zone_lines(news, skip=(RecordKind.RETURN_PATH_MX,), replace={RecordKind.SPF: [spf]})
        )
        services.verify_domain(news)
        self.fresh = services.create_domain(self.tenant, "bücher.example", dmarc_rua="dmarc@acme.test")
        context = self.browser.new_context(viewport=VIEWPORT, permissions=["clipboard-read", "clipboard-write"])
        self.addCleanup(context.close)
        self.page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)

    def tearDown(self):
        for origin in list(self.dns._zones):
            self.dns.remove_zone(origin.to_text())

    def screenshot(self, name):
        if not os.environ.get("DELIVERYHUB_SCREENSHOTS"):
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / name), full_page=True)

    def log_in(self):
        page = self.page
        page.goto(self.live_server_url + "/domains/")
        page.fill("input[name=username]", "alice@acme.test")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        device = EncryptedTOTPDevice.objects.get(pk=self.device.pk)
        page.fill("input[name=token]", f"{totp(device.bin_key, step=device.step, t0=device.t0):06d}")
        page.click("form button[type=submit] >> text=Verify")
        expect(page).to_have_url(re.compile(r"/domains/$"))

    def test_list_detail_check_now_and_copy(self):
        page = self.page
        self.log_in()
        table = page.locator("#domain-table")
        expect(table.locator("tbody tr")).to_have_count(3)
        good_row = table.locator("tr", has_text="acme.example").first
        expect(good_row.locator(".badge").first).to_have_text("Verified")
        news_row = table.locator("tr", has_text="news.acme.example")
        expect(news_row.locator('[data-kind="spf"]')).to_have_class(re.compile("text-bg-danger"))
        expect(news_row.locator('[data-kind="return path"]')).to_have_class(re.compile("text-bg-danger"))
        expect(news_row.locator('[data-kind="dkim"]')).to_have_class(re.compile("text-bg-success"))
        expect(news_row.locator('[data-kind="dmarc"]')).to_have_class(re.compile("text-bg-warning"))  # p=none
        fresh_row = table.locator("tr", has_text="bücher.example")
        expect(fresh_row).to_contain_text("xn--bcher-kva.example")
        expect(fresh_row).to_contain_text("blocked")
        self.screenshot("domains-list.png")

        page.click("text=news.acme.example")
        expect(page.locator("#record-table")).to_contain_text("SPF does not authorise 2001:db8::25")
        expect(page.locator("#record-table")).to_contain_text("DMARC p=none: receivers take no action on spoofed mail")
        expect(page.locator("#key-timeline li")).to_have_count(2)
        self.screenshot("domains-detail-warning.png")

        page.goto(self.live_server_url + "/domains/")
        page.click("text=bücher.example")
        expect(page.locator("#domain-status")).to_have_text("Pending")
        expect(page.locator("#send-state")).to_contain_text("has not verified")
        page.click("[data-copy='#zone-file']")
        copied = page.evaluate("navigator.clipboard.readText()")
        self.assertEqual(copied, page.locator("#zone-file").input_value())
        self.assertIn("_domainkey.xn--bcher-kva.example.", copied)
        self.dns.set_zone(self.fresh.name, copied)  # publish exactly what the page says
        page.click("#check-now")
        expect(page.locator("#domain-status")).to_have_text("Verified")
        expect(page.locator("#send-state")).to_contain_text("may send")
        expect(page.locator('#record-table tr[data-kind="dkim"]')).to_have_attribute("data-status", "ok")
        expect(page.locator("#key-timeline")).to_contain_text("Active (signs)")
        self.screenshot("domains-detail.png")
