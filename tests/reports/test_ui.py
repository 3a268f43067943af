"""The reports pages: data-subject requests, retention, compliance reports, the verify page and the operator's backup
page — roles (403), tenancy (404), bad input (400, nothing changed), and the happy paths."""

import io
import shutil
import tempfile
import zipfile

from django.test import override_settings
from rq import SimpleWorker

from deliveryhub import backup, services
from deliveryhub.choices import Role
from deliveryhub.constants import QUEUE_DEFAULT, QUEUE_LOW
from deliveryhub.jobs import get_queue
from deliveryhub.models import Job
from deliveryhub.testing.cases import TenantTestCase, login_verified, make_user
from reports import services as report_services
from reports.models import DataRequest, RetentionPolicy


def run_worker():
    queues = [get_queue(QUEUE_LOW), get_queue(QUEUE_DEFAULT)]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True)


class ReportsUITest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.cora = make_user("cora@a.test", cls.tenant_a, Role.COMPLIANCE)
        cls.mark = make_user("mark@a.test", cls.tenant_a, Role.MARKETER)
        cls.cb = make_user("cb@b.test", cls.tenant_b, Role.COMPLIANCE)
        cls.root = make_user("root@ops.test", is_superuser=True)

    def setUp(self):
        get_queue(QUEUE_LOW).connection.flushdb()
        media = tempfile.mkdtemp(prefix="dh-ui-")
        self.addCleanup(shutil.rmtree, media, ignore_errors=True)
        override = override_settings(MEDIA_ROOT=media)
        override.enable()
        self.addCleanup(override.disable)

    def test_compliance_records_an_access_request_and_downloads_it(self):
        self.client.force_login(self.cora)
        self.assertContains(self.client.get("/reports/data-requests/"), "No data-subject requests yet")
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post("/reports/data-requests/", {"kind": "access", "subjects": "p@example.com\n",
                                                                    "note": "ticket 7"})  # fmt: skip
        request = DataRequest.objects.get()
        self.assertRedirects(response, f"/reports/data-requests/{request.uuid}/")
        page = self.client.get(f"/reports/data-requests/{request.uuid}/")
        self.assertContains(page, 'hx-trigger="every 2s"')  # polls while it runs
        run_worker()
        status = self.client.get(f"/reports/data-requests/{request.uuid}/status/")
        self.assertContains(status, "Download the archive")
        self.assertNotContains(status, "hx-trigger")
        download = self.client.get(f"/reports/data-requests/{request.uuid}/download/")
        self.assertEqual(download.status_code, 200)
        self.assertIn("subject-data.json", zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).namelist())

    def test_erasure_needs_the_confirmation_box(self):
        self.client.force_login(self.cora)
        response = self.client.post("/reports/data-requests/", {"kind": "erasure", "subjects": "p@example.com"})
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "Tick this box", status_code=400)
        response = self.client.post("/reports/data-requests/", {"kind": "access", "subjects": "not an address"})
        self.assertContains(response, "not an email address", status_code=400)
        self.assertFalse(DataRequest.objects.exists())

    def test_roles_and_tenancy(self):
        request = report_services.create_data_request(self.tenant_a, kind="access", subjects=["p@example.com"],
                                                      acting_user=self.cora)  # fmt: skip
        for user in (self.bob, self.mark):
            self.client.force_login(user)
            self.assertEqual(self.client.get("/reports/data-requests/").status_code, 403)
            self.assertEqual(self.client.get("/reports/retention/").status_code, 403)
        login_verified(self.client, self.alice)  # admins do not handle data-subject requests either
        self.assertEqual(self.client.get("/reports/data-requests/").status_code, 403)
        self.client.force_login(self.cb)
        self.assertEqual(self.client.get(f"/reports/data-requests/{request.uuid}/").status_code, 404)
        self.assertEqual(self.client.get(f"/reports/data-requests/{request.uuid}/download/").status_code, 404)

    def test_retention_page_sets_a_period_and_runs_a_dry_run(self):
        self.client.force_login(self.cora)
        self.assertContains(self.client.get("/reports/retention/"), "built-in default")
        self.client.post("/reports/retention/set/", {"kind": "bodies", "days": "14"})
        self.assertEqual(RetentionPolicy.objects.get(tenant=self.tenant_a, kind="bodies").days, 14)
        response = self.client.post("/reports/retention/purge/", {"dry_run": "1"}, follow=True)
        self.assertContains(response, "Dry run: would delete 0")
        self.assertContains(response, "dry run")
        self.client.post("/reports/retention/set/", {"kind": "bodies", "days": "0"})
        self.assertEqual(RetentionPolicy.objects.get(tenant=self.tenant_a, kind="bodies").days, 14)  # refused

    def test_compliance_report_from_the_page(self):
        self.client.force_login(self.cora)
        self.assertContains(self.client.get("/reports/"), "No reports yet")
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post("/reports/compliance/", {"period_start": "2026-11-01",
                                                                 "period_end": "2026-12-01", "format": "pdf"})
        job = Job.objects.get()
        self.assertRedirects(response, f"/jobs/{job.uuid}/")
        run_worker()
        self.assertContains(self.client.get("/reports/"), "Download")
        self.client.force_login(self.mark)
        self.assertEqual(self.client.post("/reports/compliance/", {"period_start": "2026-11-01",
                                                                   "period_end": "2026-12-01",
                                                                   "format": "pdf"}).status_code, 403)  # fmt: skip

    def test_verify_page(self):
        self.client.force_login(self.cora)
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        backup.write_archive(f"{directory}/c.zip")
        with open(f"{directory}/c.zip", "rb") as f:
            self.assertContains(self.client.post("/reports/verify/", {"file": f}), "Valid: signed by")
        bad = io.BytesIO(b"%PDF-1.7 nothing signed here")
        bad.name = "x.pdf"
        self.assertContains(self.client.post("/reports/verify/", {"file": bad}), "Not valid")
        self.assertEqual(self.client.post("/reports/verify/", {}).status_code, 400)
        certificate = self.client.get("/reports/verify/certificate.pem")
        self.assertIn(b"BEGIN CERTIFICATE", certificate.content)


class BackupPageTest(TenantTestCase):
    def setUp(self):
        get_queue(QUEUE_LOW).connection.flushdb()
        media = tempfile.mkdtemp(prefix="dh-backup-ui-")
        self.addCleanup(shutil.rmtree, media, ignore_errors=True)
        override = override_settings(MEDIA_ROOT=media)
        override.enable()
        self.addCleanup(override.disable)
        self.root = make_user("root@ops.test", is_superuser=True)

    def test_operator_exports_uploads_sees_the_differences_and_restores(self):
        login_verified(self.client, self.root)
        self.assertContains(self.client.get("/platform/backup/"), "Write a configuration archive")
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post("/platform/backup/export/")
        job = Job.objects.get()
        self.assertRedirects(response, f"/jobs/{job.uuid}/")
        run_worker()
        job.refresh_from_db()
        archive = self.client.get(f"/jobs/{job.uuid}/download/")
        data = b"".join(archive.streaming_content)
        services.create_tenant("tenant-c", "Tenant C")  # only here: the preview says so and a restore keeps it
        upload = io.BytesIO(data)
        upload.name = "config.zip"
        preview = self.client.post("/platform/backup/upload/", {"archive": upload})
        self.assertContains(preview, "Valid: signed by")
        self.assertContains(preview, "core.tenants")
        self.client.post("/platform/backup/upload/", {"archive": io.BytesIO(b"junk")}, follow=True)

    def test_tenant_admins_cannot_reach_it(self):
        login_verified(self.client, self.alice)
        self.assertEqual(self.client.get("/platform/backup/").status_code, 403)
        self.assertEqual(self.client.post("/platform/backup/export/").status_code, 403)
        self.assertFalse(Job.objects.exists())
