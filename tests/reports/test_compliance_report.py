"""The deliverability and compliance report: what it states (read back from the PDF and the CSV), its signature, the
audit entry with its SHA-256, a page rendered with pdftoppm, roles and tenancy."""

import csv
import hashlib
import io
import re
import shutil
import subprocess
import tempfile
from datetime import date, timedelta
from pathlib import Path

from django.test import override_settings
from django.utils import timezone
from pypdf import PdfReader
from rq import SimpleWorker

from deliveryhub import audit, services
from deliveryhub.choices import JobStatus, Role
from deliveryhub.constants import QUEUE_DEFAULT, QUEUE_LOW
from deliveryhub.jobs import get_queue
from deliveryhub.models import AuditEntry, Job
from deliveryhub.signing import verify_bytes
from deliveryhub.testing.cases import TenantTestCase, make_user
from queues import services as queue_services
from queues.choices import EventKind, MessageStatus
from queues.models import Message, MessageEvent, Suppression
from queues.services import Submission
from queues.testing import make_sending_domain
from reports.models import DataRequest

URL = "/api/v1/compliance-reports/"


def run_worker():
    queues = [get_queue(QUEUE_LOW), get_queue(QUEUE_DEFAULT)]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True)


class ComplianceReportTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.cora = make_user("cora@a.test", cls.tenant_a, Role.COMPLIANCE)
        cls.cora_key = services.create_api_key(tenant=cls.tenant_a, name="cora", role=Role.COMPLIANCE)[1]
        cls.mark_key = services.create_api_key(tenant=cls.tenant_a, name="mark", role=Role.MARKETER)[1]
        make_sending_domain(cls.tenant_a, "mail-a.test")
        make_sending_domain(cls.tenant_b, "secret-b.test")

    def setUp(self):
        get_queue(QUEUE_LOW).connection.flushdb()
        media = tempfile.mkdtemp(prefix="dh-report-")
        self.addCleanup(shutil.rmtree, media, ignore_errors=True)
        override = override_settings(MEDIA_ROOT=media)
        override.enable()
        self.addCleanup(override.disable)
        messages = queue_services.accept_messages(self.tenant_a, Submission(
            sender="app@mail-a.test", to=[f"u{i}@example.com" for i in range(1000)], subject="s", text="t",
        )).messages  # fmt: skip
        ids = [m.pk for m in messages]
        Message.objects.filter(pk__in=ids[:960]).update(status=MessageStatus.DELIVERED)
        Message.objects.filter(pk__in=ids[960:990]).update(status=MessageStatus.BOUNCED)
        for message in messages[:4]:  # 4 complaints / 960 delivered = 0.417 %: above Gmail's 0.3 %
            MessageEvent.objects.create(message=message, kind=EventKind.COMPLAINED)
        Suppression.objects.create(tenant=self.tenant_a, address="x@example.com", reason="complaint")
        DataRequest.objects.create(tenant=self.tenant_a, kind="access", subjects=["p@example.com"], status="completed")
        with audit.audit_context(principal=None):
            queue_services.add_suppression(self.tenant_a, "manual@example.com")  # a configuration change

    def period(self):
        today = timezone.now().date()
        return {"period_start": (today - timedelta(days=3)).isoformat(),
                "period_end": (today + timedelta(days=1)).isoformat()}  # fmt: skip

    def report(self, fmt, key=None):
        with self.captureOnCommitCallbacks(execute=True):
            response = self.api(key or self.cora_key).post(URL, {"format": fmt, **self.period()}, format="json")
        self.assertEqual(response.status_code, 202, response.content)
        run_worker()
        job = Job.objects.get(uuid=response.json()["uuid"])
        self.assertEqual(job.status, JobStatus.COMPLETED, job.error)
        download = self.api(key or self.cora_key).get(f"/api/v1/jobs/{job.uuid}/download/")
        self.assertEqual(download.status_code, 200)
        return job, b"".join(download.streaming_content)

    def test_pdf_states_posture_rates_and_the_chain(self):
        job, data = self.report("pdf")
        self.assertTrue(verify_bytes(data).ok, verify_bytes(data).summary())
        text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
        flat = text.replace("\n", " ")
        for expected in ("Deliverability and compliance report", "Tenant A", "mail-a.test", "rsa-sha256 2048 bits",
                         "Spam complaint rate", "0.417 %", "above", "Audit chain intact", "complaint",
                         "queues.suppression"):  # fmt: skip
            self.assertIn(expected, flat)
        seq, head = re.search(r"Audit chain head #(\d+) ([0-9a-f]{64})", flat).groups()
        self.assertEqual(AuditEntry.objects.get(seq=int(seq)).hash, head)  # the head when the report was gathered
        self.assertNotIn("secret-b.test", text)
        entry = AuditEntry.objects.get(action="report.compliance", object_id=str(job.uuid))
        self.assertEqual(entry.postchange["sha256"], hashlib.sha256(data).hexdigest())
        tampered = bytearray(data)
        tampered[len(tampered) // 3] ^= 0x01
        self.assertFalse(verify_bytes(bytes(tampered)).ok)

    def test_a_page_renders(self):
        if shutil.which("pdftoppm") is None:
            self.skipTest("pdftoppm (poppler-utils) is not installed")
        _, data = self.report("pdf")
        with tempfile.TemporaryDirectory() as workdir:
            Path(workdir, "report.pdf").write_bytes(data)
            subprocess.run(["pdftoppm", "-r", "40", "-f", "1", "-l", "1", "-png", "report.pdf", "page"], cwd=workdir,
                           check=True, timeout=60)  # fmt: skip
            page = next(Path(workdir).glob("page*.png"))
            self.assertGreater(page.stat().st_size, 5000)  # a page with text on it, not a blank one

    def test_csv_has_one_row_per_fact(self):
        _, data = self.report("csv")
        rows = list(csv.DictReader(io.StringIO(data.decode())))
        by_metric = {(r["section"], r["item"], r["metric"]): r for r in rows}
        self.assertEqual(by_metric[("volume", "messages", "accepted")]["value"], "1000")
        self.assertEqual(by_metric[("volume", "messages", "bounced")]["value"], "30")
        spam = next(r for r in rows if r["section"] == "rate" and r["item"].startswith("Spam"))
        self.assertEqual((spam["value"], spam["assessment"]), ("0.004167", "above"))
        self.assertEqual(by_metric[("dkim_key", "mail-a.test/dh1", "key_bits")]["value"], "2048")
        self.assertEqual(by_metric[("data_requests", "access", "completed")]["value"], "1")
        self.assertEqual(by_metric[("audit_chain", "verification", "result")]["assessment"], "ok")
        self.assertFalse(any("secret-b" in ",".join(r.values()) for r in rows))

    def test_roles_and_tenancy(self):
        self.assertEqual(self.api(self.mark_key).post(URL, {"format": "pdf", **self.period()},
                                                      format="json").status_code, 403)  # fmt: skip
        self.assertEqual(self.api(self.bob_key).post(URL, {"format": "pdf", **self.period()},
                                                     format="json").status_code, 403)  # fmt: skip
        job, _ = self.report("csv")
        self.assertEqual(self.api(self.charlie_key).get(f"/api/v1/jobs/{job.uuid}/").status_code, 404)
        self.assertEqual(self.api(self.charlie_key).get(f"/api/v1/jobs/{job.uuid}/download/").status_code, 404)

    def test_bad_periods_are_field_errors(self):
        for body, field in (({"format": "pdf", "period_start": "2026-02-01", "period_end": "2026-01-01"}, "period_end"),
                            ({"format": "doc", "period_start": "2026-01-01", "period_end": "2026-02-01"}, "format"),
                            ({"format": "pdf", "period_start": "2020-01-01", "period_end": str(date.today())},
                             "period_end")):  # fmt: skip
            response = self.api(self.cora_key).post(URL, body, format="json")
            self.assertEqual(response.status_code, 400, response.content)
            self.assertIn(field, response.json()["error"]["fields"])
