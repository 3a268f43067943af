"""The base of browser tests: a live server with the vendored static files, Debian's Chromium driven by Playwright,
screenshots into docs/screenshots/ when DELIVERYHUB_SCREENSHOTS=1 (tests never dirty the tree otherwise)."""

import os
import unittest
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.testing import StaticLiveServerTestCase

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the package is in requirements.txt
    sync_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run",
]  # fmt: skip
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 15_000  # per Playwright action


@unittest.skipUnless(CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium to run browser tests")
@unittest.skipIf(sync_playwright is None, "the playwright Python package is not installed")
class BrowserTestCase(StaticLiveServerTestCase):
    """One Chromium per test class; `open_page()` gives each test its own context (cookies, viewport)."""

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

    def open_page(self, viewport=VIEWPORT, **context_options):
        context = self.browser.new_context(viewport=viewport, **context_options)
        self.addCleanup(context.close)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        return page

    def screenshot(self, page, name):
        if not os.environ.get("DELIVERYHUB_SCREENSHOTS"):
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
