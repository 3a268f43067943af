"""In a real browser: sign in with a password and a TOTP code, land on the dashboard, create an API key and see it once.

Drives Debian's Chromium (`/usr/bin/chromium`) with Playwright against a live server that serves the vendored
static files: the panel must work with no network. Screenshots go to docs/screenshots/.
"""

import os
import re
import unittest
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django_otp.oath import totp

from deliveryhub import audit, services
from deliveryhub.choices import Role
from deliveryhub.models import EncryptedTOTPDevice
from deliveryhub.testing.cases import PASSWORD, make_user

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run",
]  # fmt: skip
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 15_000  # per Playwright action

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the package is in requirements.txt
    sync_playwright = None


@unittest.skipUnless(CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium to run browser tests")
@unittest.skipIf(sync_playwright is None, "the playwright Python package is not installed")
class LoginFlowTest(StaticLiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        # Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself are still sync.
        cls._async_unsafe = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        super().setUpClass()
        cls.playwright = sync_playwright().start()
        cls.browser = cls.playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.playwright.stop()
        super().tearDownClass()
        if cls._async_unsafe is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = cls._async_unsafe

    def setUp(self):
        self.tenant = services.create_tenant("acme", "Acme Mail")
        services.create_tenant("globex", "Globex")
        self.user = make_user("alice@acme.test", self.tenant, Role.ADMIN)
        make_user("bob@acme.test", self.tenant, Role.VIEWER)
        make_user("mara@acme.test", self.tenant, Role.MARKETER)
        services.create_api_key(tenant=self.tenant, name="billing app", role=Role.MARKETER, acting_user=self.user)
        with audit.audit_context(principal=None):
            audit.record(
                "dkim.rotate", tenant=self.tenant, object_type="domains.sendingdomain", object_repr="acme.test"
            )
        self.device = EncryptedTOTPDevice.objects.create(user=self.user, name="phone", confirmed=True)
        self.page = self.browser.new_page(viewport=VIEWPORT)
        self.page.set_default_timeout(TIMEOUT_MS)
        self.external_requests = []
        self.page.on("request", self._note_external)

    def tearDown(self):
        self.page.close()

    def _note_external(self, request):
        if not request.url.startswith((self.live_server_url, "data:", "about:")):
            self.external_requests.append(request.url)

    def current_code(self):
        device = EncryptedTOTPDevice.objects.get(pk=self.device.pk)
        return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"

    def screenshot(self, name):
        """Refresh docs/screenshots/ only when asked (DELIVERYHUB_SCREENSHOTS=1): tests never dirty the tree."""
        if not os.environ.get("DELIVERYHUB_SCREENSHOTS"):
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / name), full_page=True)

    def test_password_then_totp_then_create_an_api_key_shown_once(self):
        page = self.page
        page.goto(self.live_server_url + "/")
        expect(page).to_have_url(re.compile(r"/account/login/"))
        page.fill("input[name=username]", "alice@acme.test")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")

        expect(page).to_have_url(re.compile(r"/account/2fa/verify/"))
        page.fill("input[name=token]", self.current_code())
        page.click("form button[type=submit] >> text=Verify")

        expect(page).to_have_url(self.live_server_url + "/")
        expect(page.locator("h1")).to_have_text("Acme Mail")
        expect(page.locator("#member-count")).to_have_text("3")
        expect(page.locator("#active-key-count")).to_have_text("1")
        expect(page.locator("#setup-2fa")).to_have_count(0)
        self.assertEqual(page.evaluate("typeof bootstrap + ' ' + typeof htmx"), "object object")  # vendored JS loaded
        self.screenshot("dashboard.png")

        page.click("#user-menu .dropdown-toggle")
        page.click("#user-menu >> text=API keys")
        expect(page).to_have_url(re.compile(r"/settings/api-keys/$"))
        page.fill("#id_name", "deploy bot")
        page.select_option("#id_role", Role.ADMIN)
        page.fill("#id_allowed_networks", "192.0.2.0/24\n2001:db8::/32")
        page.click("#apikey-form button[type=submit]")

        raw = page.locator("#raw-key").input_value()
        self.assertTrue(raw.startswith("dh_live_"), raw)
        key = services.authenticate_api_key(raw, "192.0.2.10")  # the key is limited to 192.0.2.0/24
        self.assertEqual((key.name, key.tenant_id), ("deploy bot", self.tenant.pk))
        self.screenshot("api-key-created.png")

        page.reload()  # the page replaced its history entry: a reload lists the keys and submits nothing
        expect(page.locator("#apikey-table")).to_contain_text(key.prefix)
        expect(page.locator("#raw-key")).to_have_count(0)
        self.assertNotIn(raw, page.content())
        self.assertEqual(self.tenant.api_keys.filter(name="deploy bot").count(), 1)
        self.screenshot("api-keys.png")

        page.click("#main-nav >> text=Audit log")
        expect(page.locator("#audit-table")).to_contain_text("apikey.create")
        expect(page.locator("#audit-table")).to_contain_text("deploy bot")
        self.screenshot("audit-log.png")
        page.goto(self.live_server_url + "/settings/members/")
        expect(page.locator("#member-table")).to_contain_text("bob@acme.test")
        self.screenshot("members.png")

        self.assertEqual(self.external_requests, [])

    def test_first_sign_in_of_an_admin_enrols_2fa_first_including_one_wrong_code(self):
        newcomer = make_user("nora@acme.test", self.tenant, Role.ADMIN)  # no device yet
        page = self.page
        page.goto(self.live_server_url + "/settings/members/")
        page.fill("input[name=username]", "nora@acme.test")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")

        # An admin sets up 2FA before any page (and so before filling in any form), and is told why.
        expect(page).to_have_url(re.compile(r"/account/2fa/\?next=%2Fsettings%2Fmembers%2F$"))
        expect(page.locator("#otp-why")).to_contain_text("Your role (admin) needs two-factor authentication")
        device = EncryptedTOTPDevice.objects.get(user=newcomer, confirmed=False)
        code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"
        page.fill("input[name=token]", "000000" if code != "000000" else "111111")
        page.click("form button[type=submit] >> text=Confirm and turn on")
        expect(page.locator(".invalid-feedback")).to_contain_text("Check the time on your phone")
        self.screenshot("2fa-enrol-wrong-code.png")

        page.fill("input[name=token]", code)  # the right code at once: django-otp's back-off says how long to wait
        page.click("form button[type=submit] >> text=Confirm and turn on")
        expect(page.locator(".invalid-feedback")).to_contain_text("Too many wrong codes: wait 1 second")
        page.wait_for_timeout(1100)
        page.fill("input[name=token]", code)
        page.click("form button[type=submit] >> text=Confirm and turn on")

        expect(page.locator("#recovery-codes li")).to_have_count(10)
        page.click("text=I have saved them, continue")
        expect(page).to_have_url(re.compile(r"/settings/members/$"))
        expect(page.locator("#member-table")).to_contain_text("nora@acme.test")
        self.assertEqual(self.external_requests, [])
