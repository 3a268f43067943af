"""In a real browser, the marketer's path: import a CSV into a list and watch the progress bar finish, write a campaign
with a variable, preview it as a contact, start it, see its progress move as the delivery engine sends (real
scheduler and worker code, to an aiosmtpd sink through a route), open the report with its chart.

Drives Debian's Chromium with Playwright against a live server; screenshots (DELIVERYHUB_SCREENSHOTS=1) go to
docs/screenshots/campaigns-*.png.
"""

import os
import re
import tempfile
import unittest
from pathlib import Path

from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.test import override_settings

from deliveryhub import services as core
from deliveryhub.jobs import get_queue
from deliveryhub.testing.smtp import SMTPSink
from queues.delivery import state
from queues.models import Route
from queues.testing import make_sending_domain, make_sending_ips

from ..queues.campaign_helpers import drain, make_marketer
from .test_login_flow import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, TIMEOUT_MS, VIEWPORT, sync_playwright

if sync_playwright is not None:
    from playwright.sync_api import expect

CSV = "email;name;city\n" + "".join(f"reader{i}@example.com;Reader {i};{('Lyon', 'Oslo')[i % 2]}\n" for i in range(12))
CSV += "not-an-address;Nobody;Nowhere\n"


@unittest.skipUnless(CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium to run browser tests")
@unittest.skipIf(sync_playwright is None, "the playwright Python package is not installed")
@override_settings(DEMO_MODE=False)
class MarketerPathTest(StaticLiveServerTestCase):
    @classmethod
    def setUpClass(cls):
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
        get_queue("default").connection.flushdb()
        self.tenant = core.create_tenant("acme", "Acme Shop")
        self.user = make_marketer("mara@acme.test", self.tenant)
        make_sending_domain(self.tenant, "news.acme.test")
        make_sending_ips(("127.0.0.2",))
        self.sink = SMTPSink().start()
        self.addCleanup(self.sink.stop)
        self.addCleanup(state.close)
        Route.objects.create(tenant=self.tenant, pattern="*", host="127.0.0.1", port=self.sink.port)
        context = self.browser.new_context(viewport=VIEWPORT)
        self.addCleanup(context.close)
        self.page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.csv = Path(tempfile.mkdtemp()) / "readers.csv"
        self.csv.write_text(CSV, encoding="utf-8")

    def screenshot(self, name):
        if os.environ.get("DELIVERYHUB_SCREENSHOTS"):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SCREENSHOTS / name), full_page=True)

    def test_import_write_preview_start_watch_report(self):
        page = self.page
        page.goto(self.live_server_url + "/campaigns/")
        page.fill("input[name=username]", "mara@acme.test")
        page.fill("input[name=password]", "correct horse battery staple 9")
        page.click("button[type=submit]")
        expect(page.locator("#campaign-table")).to_contain_text("No campaigns yet")
        # A list, and a CSV import into it: the progress bar runs to the end.
        page.click("#campaign-nav >> text=Lists")
        page.fill("#id_name", "Readers")
        page.click("#create-list")
        expect(page.locator("h1")).to_have_text("Readers")
        page.set_input_files("#id_file", str(self.csv))
        page.click("#start-import")
        expect(page).to_have_url(re.compile(r"/campaigns/imports/"))
        expect(page.locator("#import-state")).to_have_text("Pending")
        drain()  # the import job, run by a real RQ worker; the page polls and sees it finish
        expect(page.locator("#import-state")).to_have_text("Completed", timeout=20_000)
        expect(page.locator("#import-percent")).to_have_text("100%")
        expect(page.locator('[data-count="imported"]')).to_have_text("12")
        expect(page.locator('[data-count="invalid"]')).to_have_text("1")
        self.screenshot("campaigns-import.png")
        # A campaign with variables.
        page.goto(self.live_server_url + "/campaigns/new/")
        page.fill("#id_name", "Spring news")
        page.fill("#id_subject", "{{ contact.name | default('Hello') }}, spring is here")
        page.fill("#id_from_header", "Acme <news@news.acme.test>")
        page.fill("#id_html", "<p>Hello {{ contact.name }} in {{ contact.attributes.city }}!</p>"
                              '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')
        page.check("text=Readers")
        page.click("#save-campaign")
        expect(page.locator("#audience")).to_contain_text("12")
        self.screenshot("campaigns-draft.png")
        page.click("#preview-link")
        page.fill("#preview-contact", "reader3@example.com")
        page.click("#preview-as")
        expect(page.locator("#preview-subject")).to_have_text("Reader 3, spring is here")
        frame = page.frame_locator("#preview-html")
        expect(frame.locator("p").first).to_have_text("Hello Reader 3 in Oslo!")
        self.screenshot("campaigns-preview.png")
        page.go_back()
        page.go_back()
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#start-campaign")
        expect(page.locator("#campaign-state")).to_have_text("Scheduled")
        drain("default")  # the fan-out job
        expect(page.locator('[data-stat="recipients"]')).to_have_text("12", timeout=20_000)
        expect(page.locator('[data-stat="queued"]')).to_have_text("12")
        page.reload()
        expect(page.locator("#sends-chart")).to_be_visible()
        self.screenshot("campaigns-report.png")
