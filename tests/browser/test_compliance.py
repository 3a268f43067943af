"""In a real browser: a compliance officer records an access request and watches it complete (the page polls), sets a
retention period and runs a dry run, writes a compliance report and checks its signature on the verify page; an
operator writes a configuration archive and sees what restoring it would change.

Screenshots (DELIVERYHUB_SCREENSHOTS=1) go to docs/screenshots/reports-*.png and platform-backup*.png.
"""

import os
import re
import shutil
import tempfile
import unittest
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.test import override_settings
from django_otp.oath import totp
from rq import SimpleWorker

from deliveryhub import audit
from deliveryhub import services as core
from deliveryhub.choices import Role
from deliveryhub.constants import QUEUE_DEFAULT, QUEUE_LOW
from deliveryhub.jobs import get_queue
from deliveryhub.models import EncryptedTOTPDevice, Job
from deliveryhub.testing.cases import PASSWORD, make_user
from queues.services import Submission, accept_messages
from queues.testing import make_sending_domain

from .test_login_flow import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, TIMEOUT_MS, VIEWPORT, sync_playwright

if sync_playwright is not None:
    from playwright.sync_api import expect


def run_worker():
    queues = [get_queue(QUEUE_LOW), get_queue(QUEUE_DEFAULT)]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True)


@unittest.skipUnless(CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium to run browser tests")
@unittest.skipIf(sync_playwright is None, "the playwright Python package is not installed")
class CompliancePagesTest(StaticLiveServerTestCase):
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
        get_queue(QUEUE_LOW).connection.flushdb()
        media = tempfile.mkdtemp(prefix="dh-browser-")
        self.addCleanup(shutil.rmtree, media, ignore_errors=True)
        override = override_settings(MEDIA_ROOT=media)
        override.enable()
        self.addCleanup(override.disable)
        with audit.audit_context(principal=None):
            self.tenant = core.create_tenant("acme", "Acme Mail")
            make_user("cora@acme.test", self.tenant, Role.COMPLIANCE)
            make_sending_domain(self.tenant, "mail.acme.test")
            for subject in ("Your order 1042", "Shipping update", "Your receipt"):
                accept_messages(self.tenant, Submission(
                    sender="Shop <shop@mail.acme.test>", subject=subject, text="Hello",
                    to=["jane.doe@example.com", "max@example.org"],
                ))  # fmt: skip
        context = self.browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        self.addCleanup(context.close)
        self.page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)

    def screenshot(self, name):
        if not os.environ.get("DELIVERYHUB_SCREENSHOTS"):
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / name), full_page=True)

    def log_in(self, username, path, device=None):
        page = self.page
        page.goto(self.live_server_url + path)
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        if device is not None:
            device = EncryptedTOTPDevice.objects.get(pk=device.pk)
            page.fill("input[name=token]", f"{totp(device.bin_key, step=device.step, t0=device.t0):06d}")
            page.click("form button[type=submit] >> text=Verify")
        expect(page).to_have_url(re.compile(re.escape(path) + "$"))

    def test_access_request_retention_report_and_verify(self):
        page = self.page
        self.log_in("cora@acme.test", "/reports/data-requests/")
        expect(page.locator("#data-request-table")).to_contain_text("No data-subject requests yet")
        page.fill("textarea[name=subjects]", "Jane.Doe@example.com")
        page.fill("textarea[name=note]", "Ticket 4711: identity checked by phone.")
        page.click("#data-request-form button")
        expect(page.locator("#data-request-state")).to_have_text("Pending")
        run_worker()  # the job runs; the page notices by itself (htmx polling)
        expect(page.locator("#data-request-state")).to_have_text("Completed", timeout=20_000)
        expect(page.locator("#data-request-result")).to_contain_text("messages")
        with page.expect_download() as download:
            page.click("#data-request-download")
        self.assertTrue(download.value.suggested_filename.endswith(".zip"))
        self.screenshot("reports-data-request.png")
        page.goto(self.live_server_url + "/reports/data-requests/")
        expect(page.locator("#data-request-table tbody tr")).to_have_count(1)
        self.screenshot("reports-data-requests.png")

        page.goto(self.live_server_url + "/reports/retention/")
        page.select_option("#retention-form select[name=kind]", "bodies")
        page.fill("#retention-form input[name=days]", "14")
        page.click("#retention-form button")
        expect(page.locator("#retention-table")).to_contain_text("this tenant")
        page.click("#dry-run-form button")
        expect(page.locator(".alert-success")).to_contain_text("Dry run: would delete")
        expect(page.locator("#purge-run-table")).to_contain_text("dry run")
        self.screenshot("reports-retention.png")

        page.goto(self.live_server_url + "/reports/")
        page.click("#report-form button")
        expect(page).to_have_url(re.compile(r"/jobs/"))
        run_worker()
        expect(page.locator("#job-state")).to_have_text("Completed", timeout=20_000)
        page.goto(self.live_server_url + "/reports/")
        expect(page.locator("#report-table")).to_contain_text("PDF")
        self.screenshot("reports-index.png")

        job = Job.objects.get(name="Compliance report")
        page.goto(self.live_server_url + "/reports/verify/")
        page.set_input_files("input[name=file]", str(Path(settings.MEDIA_ROOT) / job.result_file))
        page.click("#verify-form button")
        expect(page.locator("#verify-result")).to_contain_text("Valid: signed by")
        self.screenshot("reports-verify.png")

    def test_operator_backup_page(self):
        root = make_user("root@ops.test", is_superuser=True)
        device = EncryptedTOTPDevice.objects.create(user=root, name="phone", confirmed=True)
        page = self.page
        self.log_in("root@ops.test", "/platform/backup/", device=device)
        expect(page.locator("#scheduler-lease")).to_be_visible()
        page.click("#backup-export")
        expect(page).to_have_url(re.compile(r"/jobs/"))
        run_worker()
        expect(page.locator("#job-state")).to_have_text("Completed", timeout=20_000)
        job = Job.objects.get(name="Configuration backup")
        page.goto(self.live_server_url + "/platform/backup/")
        expect(page.locator("#backup-jobs")).to_contain_text("Configuration backup")
        self.screenshot("platform-backup.png")
        core.create_tenant("globex", "Globex")  # only here: the preview says so
        page.set_input_files("#archive", str(Path(settings.MEDIA_ROOT) / job.result_file))
        page.click("#backup-upload button")
        expect(page.locator("#backup-diff")).to_contain_text("core.tenants")
        self.screenshot("platform-backup-preview.png")
