"""Audit exports: CSV and PDF files match the filters and the tenant, their SHA-256 is audited, access is policed."""

import csv
import hashlib
import io
import json
import shutil
import tempfile

from django.test import override_settings
from pypdf import PdfReader
from rq import SimpleWorker

from deliveryhub import audit, services
from deliveryhub.choices import JobStatus, Role
from deliveryhub.constants import QUEUE_DEFAULT, QUEUE_LOW
from deliveryhub.exports import CSV_HEADER, AuditExportRunner
from deliveryhub.jobs import get_queue
from deliveryhub.models import AuditEntry, Job
from deliveryhub.permissions import Principal
from deliveryhub.testing.cases import TenantTestCase, login_verified, make_user

EXPORT_URL = "/api/v1/audit-log/export/"


def run_worker():
    queues = [get_queue(QUEUE_LOW), get_queue(QUEUE_DEFAULT)]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True)


class ExportTestCase(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.cora = make_user("cora@a.test", cls.tenant_a, Role.COMPLIANCE)
        cls.mark = make_user("mark@a.test", cls.tenant_a, Role.MARKETER)
        cls.cora_key = services.create_api_key(tenant=cls.tenant_a, name="cora", role=Role.COMPLIANCE)[1]
        cls.mark_key = services.create_api_key(tenant=cls.tenant_a, name="mark", role=Role.MARKETER)[1]
        with audit.audit_context(principal=None):
            cls.early = [audit.record("dkim.rotate", tenant=cls.tenant_a, message=f"early-a-{n}") for n in range(3)]
            cls.late = [
                audit.record("dkim.rotate", tenant=cls.tenant_a, message=f"late-a-{n}", postchange={"n": n})
                for n in range(4)
            ]
            cls.other_action = audit.record("ip.delist_requested", tenant=cls.tenant_a, message="late-a-ip")
            cls.theirs = [audit.record("dkim.rotate", tenant=cls.tenant_b, message=f"secret-b-{n}") for n in range(3)]

    def setUp(self):
        get_queue(QUEUE_LOW).connection.flushdb()
        media = tempfile.mkdtemp(prefix="dh-exports-")
        self.addCleanup(shutil.rmtree, media, ignore_errors=True)
        media_override = override_settings(MEDIA_ROOT=media, EXPORT_ROWS_PER_CHUNK=2)  # several chunks per export
        media_override.enable()
        self.addCleanup(media_override.disable)

    def export(self, key, body):
        """POST an export, run the worker, return the finished Job."""
        with self.captureOnCommitCallbacks(execute=True):
            response = self.api(key).post(EXPORT_URL, body, format="json")
        self.assertEqual(response.status_code, 202, response.content)
        self.assertEqual(response.json()["status"], JobStatus.PENDING)
        run_worker()
        job = Job.objects.get(uuid=response.json()["uuid"])
        self.assertEqual(job.status, JobStatus.COMPLETED, job.error)
        return job

    def download(self, key, job):
        response = self.api(key).get(f"/api/v1/jobs/{job.uuid}/download/")
        self.assertEqual(response.status_code, 200)
        return b"".join(response.streaming_content)

    def export_entry(self, job):
        return AuditEntry.objects.get(action="audit.export", object_id=str(job.uuid))


class CsvExportTest(ExportTestCase):
    def test_csv_rows_match_filters_and_tenant(self):
        after = self.late[0].time.isoformat()
        job = self.export(self.cora_key, {"format": "csv", "after": after, "action": "dkim.rotate"})
        data = self.download(self.cora_key, job)
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
        self.assertEqual(rows[0], CSV_HEADER)
        body = [dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]]
        self.assertEqual([r["message"] for r in body], [f"late-a-{n}" for n in range(4)])  # oldest first
        self.assertEqual([int(r["seq"]) for r in body], [e.seq for e in self.late])
        first = body[0]
        self.assertTrue(first["time_utc"].endswith("+00:00"))
        self.assertEqual(first["actor_type"], "system")
        self.assertEqual(json.loads(first["postchange"]), {"n": 0})
        self.assertEqual(first["hash"], self.late[0].hash)
        self.assertNotIn(b"secret-b", data)
        self.assertNotIn(b"early-a", data)
        self.assertNotIn(b"late-a-ip", data)
        self.assertEqual(job.result["rows"], 4)

    def test_sha256_is_in_the_audit_log_and_the_job(self):
        job = self.export(self.alice_key, {"format": "csv"})
        data = self.download(self.alice_key, job)
        digest = hashlib.sha256(data).hexdigest()
        entry = self.export_entry(job)
        self.assertEqual(entry.postchange["sha256"], digest)
        self.assertEqual(entry.postchange["format"], "csv")
        self.assertEqual(entry.postchange["rows"], job.result["rows"])
        self.assertEqual(entry.tenant_id, self.tenant_a.pk)
        self.assertEqual(job.result["sha256"], digest)
        self.assertTrue(audit.verify_chain().ok)

    def test_unfiltered_export_has_every_entry_of_the_tenant_and_none_of_another(self):
        job = self.export(self.cora_key, {"format": "csv"})
        rows = list(csv.DictReader(io.StringIO(self.download(self.cora_key, job).decode())))
        expected = AuditEntry.objects.filter(tenant=self.tenant_a, seq__lt=self.export_entry(job).seq).count()
        self.assertEqual(len(rows), expected)
        self.assertEqual({r["seq"] for r in rows} & {str(e.seq) for e in self.theirs}, set())

    def test_charlie_exports_only_tenant_b(self):
        job = self.export(self.charlie_key, {"format": "csv", "action": "dkim.rotate"})
        rows = list(csv.DictReader(io.StringIO(self.download(self.charlie_key, job).decode())))
        self.assertEqual([r["message"] for r in rows], [f"secret-b-{n}" for n in range(3)])

    def test_formula_cells_are_neutralised(self):
        audit.record("test.csv", tenant=self.tenant_a, message='=HYPERLINK("http://evil")')
        job = self.export(self.cora_key, {"format": "csv", "action": "test.csv"})
        (row,) = list(csv.DictReader(io.StringIO(self.download(self.cora_key, job).decode())))
        self.assertEqual(row["message"], '\'=HYPERLINK("http://evil")')


class PdfExportTest(ExportTestCase):
    def pdf_text(self, data):
        return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)

    def test_pdf_holds_cover_and_period_entries_only(self):
        after = self.late[0].time.isoformat()
        job = self.export(self.cora_key, {"format": "pdf", "after": after})
        data = self.download(self.cora_key, job)
        self.assertTrue(data.startswith(b"%PDF"))
        text = self.pdf_text(data)
        self.assertIn("Audit log report", text)
        self.assertIn("Tenant A", text)
        self.assertIn("Audit chain intact", text)
        self.assertIn("API key cora", text)  # who generated it
        self.assertIn(after[:10], text)  # the period
        for n in range(4):
            self.assertIn(f"late-a-{n}", text)
        self.assertIn("late-a-ip", text)
        self.assertNotIn("early-a", text)
        self.assertNotIn("secret-b", text)
        self.assertNotIn("Tenant B", text)
        self.assertNotIn("TRUNCATED", text)
        self.assertEqual(self.export_entry(job).postchange["sha256"], hashlib.sha256(data).hexdigest())

    def test_broken_chain_is_on_the_cover(self):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {AuditEntry._meta.db_table} SET message = 'x' WHERE seq = %s", [self.early[1].seq])
        job = self.export(self.cora_key, {"format": "pdf", "action": "ip."})
        text = self.pdf_text(self.download(self.cora_key, job))
        self.assertIn("BROKEN", text)
        self.assertIn(f"#{self.early[1].seq}", text)

    @override_settings(EXPORT_PDF_MAX_ROWS=3)
    def test_pdf_is_capped_and_says_so(self):
        job = self.export(self.cora_key, {"format": "pdf", "action": "dkim.rotate"})
        text = self.pdf_text(self.download(self.cora_key, job))
        self.assertIn("TRUNCATED", text)
        self.assertEqual((job.result["rows"], job.result["total"], job.result["truncated"]), (3, 7, True))
        self.assertIn("early-a-2", text)
        self.assertNotIn("late-a-0", text)


class ExportAccessTest(ExportTestCase):
    def test_marketer_and_viewer_get_403(self):
        for key in (self.mark_key, self.bob_key):
            with self.captureOnCommitCallbacks(execute=True):
                response = self.api(key).post(EXPORT_URL, {"format": "csv"}, format="json")
            self.assertEqual(response.status_code, 403, response.content)
        self.assertFalse(Job.objects.exists())
        self.assertEqual(get_queue(QUEUE_LOW).count, 0)

    def test_bad_format_and_filters_are_400(self):
        response = self.api(self.cora_key).post(EXPORT_URL, {"format": "xlsx"}, format="json")
        self.assertEqual(response.status_code, 400)
        self.assertIn("format", response.json()["error"]["fields"])
        response = self.api(self.cora_key).post(EXPORT_URL, {"format": "csv", "after": "yesterday"}, format="json")
        self.assertEqual(response.status_code, 400)
        self.assertIn("after", response.json()["error"]["fields"])
        self.assertFalse(Job.objects.exists())

    def test_other_tenant_cannot_see_or_download_the_job(self):
        job = self.export(self.cora_key, {"format": "csv"})
        self.assertEqual(self.api(self.charlie_key).get(f"/api/v1/jobs/{job.uuid}/download/").status_code, 404)
        self.assertEqual(self.api(self.charlie_key).get(f"/api/v1/jobs/{job.uuid}/").status_code, 404)
        self.assertEqual(self.api(self.bob_key).get(f"/api/v1/jobs/{job.uuid}/download/").status_code, 403)
        self.assertEqual(self.api().get(f"/api/v1/jobs/{job.uuid}/download/").status_code, 401)
        response = self.api(self.alice_key).get(f"/api/v1/jobs/{job.uuid}/")
        self.assertTrue(response.json()["download_url"].endswith(f"/jobs/{job.uuid}/download/"))

    def test_an_api_key_export_is_audited_as_that_key(self):
        job = self.export(self.cora_key, {"format": "csv"})
        entry = self.export_entry(job)
        self.assertEqual((entry.actor_type, entry.actor_name), ("apikey", Principal.of(job.api_key).name))
        self.assertEqual(job.api_key.name, "cora")

    def test_a_key_revoked_before_the_job_runs_gets_nothing(self):
        key, raw = services.create_api_key(tenant=self.tenant_a, name="soon-gone", role=Role.COMPLIANCE)
        with self.captureOnCommitCallbacks(execute=True):
            response = self.api(raw).post(EXPORT_URL, {"format": "csv"}, format="json")
        self.assertEqual(response.status_code, 202, response.content)
        services.revoke_api_key(key)
        run_worker()
        job = Job.objects.get(uuid=response.json()["uuid"])
        self.assertEqual(job.status, JobStatus.FAILED)
        self.assertIn("revoked", job.error)
        self.assertFalse(job.result_file)
        self.assertFalse(AuditEntry.objects.filter(action="audit.export", object_id=str(job.uuid)).exists())

    def test_a_role_lost_before_the_job_runs_exports_nothing(self):
        with self.captureOnCommitCallbacks(execute=True):
            job = AuditExportRunner.enqueue(tenant=self.tenant_a, user=self.mark, params={"format": "csv"})
        run_worker()
        job.refresh_from_db()
        self.assertEqual(job.result["rows"], 0)


class ExportUITest(ExportTestCase):
    def test_audit_page_button_starts_the_job_with_its_filters(self):
        login_verified(self.client, self.alice)
        page = self.client.get("/audit/", {"action": "dkim.rotate"})
        self.assertEqual(page.status_code, 200)
        self.assertContains(page, 'id="audit-export-form"')
        self.assertContains(page, 'name="action" value="dkim.rotate"')
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post("/audit/export/", {"format": "csv", "action": "dkim.rotate", "page": "2"})
        job = Job.objects.get()
        self.assertRedirects(response, f"/jobs/{job.uuid}/", fetch_redirect_response=False)
        self.assertEqual(job.params["filters"], {"action": "dkim.rotate"})
        self.assertEqual(job.user, self.alice)
        run_worker()
        job.refresh_from_db()
        self.assertEqual((job.status, job.result["rows"]), (JobStatus.COMPLETED, 7))

    def test_compliance_can_export_marketer_cannot(self):
        self.client.force_login(self.cora)
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post("/audit/export/", {"format": "pdf"})
        self.assertEqual(response.status_code, 302)
        run_worker()
        job = Job.objects.get()
        self.assertEqual(job.status, JobStatus.COMPLETED, job.error)
        text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(self.download(self.cora_key, job))).pages)
        self.assertIn("cora@a.test", text)  # generated by
        self.client.force_login(self.mark)
        self.assertEqual(self.client.post("/audit/export/", {"format": "pdf"}).status_code, 403)
        self.assertEqual(Job.objects.count(), 1)

    def test_get_is_refused_and_bad_format_goes_back(self):
        self.client.force_login(self.cora)
        self.assertEqual(self.client.get("/audit/export/").status_code, 405)
        response = self.client.post("/audit/export/", {"format": "doc", "action": "dkim."})
        self.assertRedirects(response, "/audit/?action=dkim.", fetch_redirect_response=False)
        self.assertFalse(Job.objects.exists())
