"""Retention: on a controlled clock, data past its period goes and younger data stays; dry runs count only; every
run is recorded and audited; tenants set their own periods (owners and compliance staff only)."""

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from deliveryhub import services
from deliveryhub.choices import JobStatus, Role
from deliveryhub.models import AuditEntry, Job
from deliveryhub.testing.cases import TenantTestCase, make_user
from queues import services as queue_services
from queues.choices import AttemptStatus, EventKind, MessageStatus
from queues.models import CapturedMessage, DeliveryAttempt, Message, MessageContent, MessageEvent
from queues.services import Submission
from queues.testing import make_sending_domain
from reports import services as report_services
from reports.models import DataRequest, PurgeRun, RetentionPolicy

NOW = timezone.now()


def age(messages, days, status=MessageStatus.DELIVERED):
    """Make `messages` (and their contents) `days` old, in `status`, with an attempt and an event each."""
    when = NOW - timedelta(days=days)
    ids = [m.pk for m in messages]
    Message.objects.filter(pk__in=ids).update(created=when, updated=when, status=status)
    MessageContent.objects.filter(messages__in=ids).update(created=when)
    for message in messages:
        DeliveryAttempt.objects.create(message=message, time=when, status=AttemptStatus.DELIVERED, code=250)
        MessageEvent.objects.create(message=message, time=when, kind=EventKind.DELIVERED)


class RetentionTestCase(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.cora = make_user("cora@a.test", cls.tenant_a, Role.COMPLIANCE)
        cls.cora_key = services.create_api_key(tenant=cls.tenant_a, name="cora", role=Role.COMPLIANCE)[1]
        make_sending_domain(cls.tenant_a, "mail-a.test")
        make_sending_domain(cls.tenant_b, "mail-b.test")

    def send(self, tenant=None, count=1):
        tenant = tenant or self.tenant_a
        domain = "mail-a.test" if tenant == self.tenant_a else "mail-b.test"
        return queue_services.accept_messages(tenant, Submission(
            sender=f"app@{domain}", to=[f"r{i}@example.com" for i in range(count)], subject="s", text="body text",
        )).messages  # fmt: skip

    def body(self, message):
        return bytes(MessageContent.objects.get(pk=message.content_id).raw)


class PurgeTest(RetentionTestCase):
    def test_bodies_past_their_age_go_younger_stay(self):
        old, young, old_pending = self.send(), self.send(), self.send()
        age(old, 31)
        age(young, 29)
        age(old_pending, 31, status=MessageStatus.DEFERRED)
        run = report_services.purge(now=NOW)
        self.assertEqual(self.body(old[0]), b"")
        self.assertIsNotNone(MessageContent.objects.get(pk=old[0].content_id).purged_at)
        self.assertIn(b"body text", self.body(young[0]))
        self.assertIn(b"body text", self.body(old_pending[0]))  # not final: never touched
        self.assertEqual(run.items.get(kind="bodies", tenant=self.tenant_a).count, 1)

    def test_a_body_shared_with_a_pending_message_stays(self):
        shared = self.send(count=2)
        age(shared[:1], 40)
        age(shared[1:], 40, status=MessageStatus.QUEUED)
        report_services.purge(now=NOW)
        self.assertIn(b"body text", self.body(shared[0]))

    def test_messages_attempts_and_events_past_90_days_go(self):
        old, young, held = self.send(), self.send(), self.send()
        age(old, 91)
        age(young, 89)
        age(held, 91, status=MessageStatus.HELD)
        report_services.purge(now=NOW)
        self.assertFalse(Message.objects.filter(pk=old[0].pk).exists())
        self.assertFalse(DeliveryAttempt.objects.filter(message_id=old[0].pk).exists())
        self.assertFalse(MessageEvent.objects.filter(message_id=old[0].pk).exists())
        self.assertFalse(MessageContent.objects.filter(pk=old[0].content_id).exists())
        self.assertTrue(Message.objects.filter(pk=young[0].pk).exists())
        self.assertTrue(DeliveryAttempt.objects.filter(message_id=young[0].pk).exists())
        self.assertTrue(Message.objects.filter(pk=held[0].pk).exists())

    @override_settings(RETENTION_PURGE_CHUNK=3)
    def test_chunks_cover_everything(self):
        old = self.send(count=10)
        age(old, 100)
        run = report_services.purge(now=NOW)
        self.assertEqual(Message.objects.filter(pk__in=[m.pk for m in old]).count(), 0)
        self.assertEqual(run.items.get(kind="messages").count, 10)

    def test_dry_run_counts_and_deletes_nothing(self):
        old = self.send(count=3)
        age(old, 100)
        run = report_services.purge(now=NOW, dry_run=True)
        self.assertTrue(run.dry_run)
        self.assertEqual(run.items.get(kind="messages").count, 3)
        self.assertEqual(run.items.get(kind="bodies").count, 1)
        self.assertEqual(Message.objects.filter(pk__in=[m.pk for m in old]).count(), 3)
        self.assertIn(b"body text", self.body(old[0]))
        entry = AuditEntry.objects.filter(action="retention.dry_run").latest("seq")
        self.assertEqual(entry.postchange["counts"]["tenant-a"]["messages"], 3)

    def test_run_is_recorded_and_audited(self):
        age(self.send(count=2), 100)
        age(self.send(self.tenant_b), 100)
        run = report_services.purge(now=NOW)
        self.assertEqual(run.status, "completed")
        self.assertEqual(run.total, sum(item.count for item in run.items.all()))
        entry = AuditEntry.objects.filter(action="retention.purge").latest("seq")
        self.assertEqual(entry.object_id, str(run.pk))
        self.assertEqual(entry.postchange["counts"]["tenant-b"]["messages"], 1)

    def test_tenant_period_overrides_the_platform_default(self):
        a, b = self.send(), self.send(self.tenant_b)
        age(a, 10)
        age(b, 10)
        report_services.set_retention(self.tenant_a, "bodies", 5, acting_user=self.cora)
        report_services.purge(now=NOW)
        self.assertEqual(self.body(a[0]), b"")
        self.assertIn(b"body text", self.body(b[0]))

    def test_platform_default_applies_to_every_tenant(self):
        superuser = make_user("root@x.test", is_superuser=True)
        report_services.set_retention(None, "bodies", 5, acting_user=superuser)
        b = self.send(self.tenant_b)
        age(b, 10)
        report_services.purge(now=NOW)
        self.assertEqual(self.body(b[0]), b"")

    def test_captured_mail_goes_after_seven_days(self):
        old = CapturedMessage.objects.create(tenant=self.tenant_a, rcpt_tos=["x@example.com"], raw=b"x",
                                             received=NOW - timedelta(days=8))  # fmt: skip
        orphan = CapturedMessage.objects.create(rcpt_tos=["y@example.com"], raw=b"y", received=NOW - timedelta(days=8))
        young = CapturedMessage.objects.create(tenant=self.tenant_a, rcpt_tos=["x@example.com"], raw=b"x",
                                               received=NOW - timedelta(days=6))  # fmt: skip
        report_services.purge(now=NOW)
        self.assertFalse(CapturedMessage.objects.filter(pk__in=[old.pk, orphan.pk]).exists())
        self.assertTrue(CapturedMessage.objects.filter(pk=young.pk).exists())

    def test_export_files_go_after_seven_days(self):
        media = tempfile.mkdtemp(prefix="dh-retention-")
        self.addCleanup(shutil.rmtree, media, ignore_errors=True)
        with override_settings(MEDIA_ROOT=media):
            Path(media, "exports").mkdir()
            old_file, new_file = Path(media, "exports", "old.csv"), Path(media, "exports", "new.csv")
            old_file.write_text("x")
            new_file.write_text("y")
            old = Job.objects.create(tenant=self.tenant_a, name="export", runner="x", status=JobStatus.COMPLETED,
                                     result_file="exports/old.csv", completed=NOW - timedelta(days=8))  # fmt: skip
            new = Job.objects.create(tenant=self.tenant_a, name="export", runner="x", status=JobStatus.COMPLETED,
                                     result_file="exports/new.csv", completed=NOW - timedelta(days=1))  # fmt: skip
            archive = DataRequest.objects.create(tenant=self.tenant_a, kind="access", subjects=["a@b.test"],
                                                 archive_file="exports/new.csv", completed=NOW - timedelta(days=9))
            with self.captureOnCommitCallbacks(execute=True):
                report_services.purge(now=NOW)
            self.assertFalse(old_file.exists())
            self.assertFalse(new_file.exists())  # the archive row pointing at it was old
            old.refresh_from_db()
            new.refresh_from_db()
            archive.refresh_from_db()
            self.assertEqual((old.result_file, new.result_file, archive.archive_file), ("", "exports/new.csv", ""))

    def test_command_dry_run(self):
        age(self.send(count=2), 100)
        call_command("purge_retention", "--dry-run", stdout=open("/dev/null", "w"))
        self.assertEqual(PurgeRun.objects.latest("started").items.get(kind="messages").count, 2)
        self.assertEqual(Message.objects.count(), 2)


class RetentionApiTest(RetentionTestCase):
    url = "/api/v1/retention-policies/"

    def test_compliance_sets_a_period_viewer_and_admin_cannot(self):
        response = self.api(self.cora_key).post(self.url, {"kind": "bodies", "days": 14}, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(RetentionPolicy.objects.get(tenant=self.tenant_a).days, 14)
        self.assertTrue(AuditEntry.objects.filter(object_type="reports.retentionpolicy", action="create").exists())
        for key in (self.bob_key, self.alice_key):
            self.assertEqual(self.api(key).post(self.url, {"kind": "bodies", "days": 3}, format="json").status_code,
                             403)  # fmt: skip

    def test_bad_values_are_field_errors(self):
        for body, field in (({"kind": "nope", "days": 3}, "kind"), ({"kind": "bodies", "days": 0}, "days"),
                            ({"kind": "bodies", "days": "x"}, "days")):  # fmt: skip
            response = self.api(self.cora_key).post(self.url, body, format="json")
            self.assertEqual(response.status_code, 400, response.content)
            self.assertIn(field, response.json()["error"]["fields"])
        self.assertFalse(RetentionPolicy.objects.exists())

    def test_other_tenant_policy_is_404(self):
        policy = report_services.set_retention(self.tenant_b, "bodies", 3, acting_user=make_user(
            "cb@b.test", self.tenant_b, Role.COMPLIANCE))  # fmt: skip
        self.assertEqual(self.api(self.cora_key).get(f"{self.url}{policy.pk}/").status_code, 404)

    def test_purge_runs_api_dry_run_for_the_tenant(self):
        age(self.send(count=2), 100)
        age(self.send(self.tenant_b), 100)
        response = self.api(self.cora_key).post("/api/v1/purge-runs/", {"dry_run": True}, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        items = response.json()["items"]
        self.assertEqual({(i["tenant"], i["kind"]) for i in items}, {("tenant-a", "messages"), ("tenant-a", "bodies")})
        self.assertEqual(Message.objects.count(), 3)
        listed = self.api(self.cora_key).get("/api/v1/purge-runs/").json()["results"]
        self.assertEqual(len(listed), 1)
        self.assertEqual(self.api(self.bob_key).post("/api/v1/purge-runs/", {"dry_run": True},
                                                     format="json").status_code, 403)  # fmt: skip


def test_a_purge_while_real_workers_deliver_loses_nothing(tmp_path):
    """tests/reports/purge_scenario.py: purges in their own processes, again and again, during a real send."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'purge.sqlite3'}",
           "DELIVERYHUB_VAR_DIR": str(tmp_path), "DELIVERYHUB_NODE": "purge-node", "DELIVERYHUB_DEMO_MODE": "false",
           "DELIVERYHUB_BATCH_SIZE": "50",
           "DELIVERYHUB_RETENTION_PURGE_CHUNK": "200", "DELIVERYHUB_LOG_LEVEL": "WARNING"}  # fmt: skip
    script = Path(__file__).with_name("purge_scenario.py")
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=script.parents[2])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["fresh_statuses"] == {"delivered": result["fresh"]}, result
    assert result["sink_total"] == result["sink_unique"] == result["fresh"], result
    assert result["old_left"] == result["old_attempts_left"] == 0, result
    assert result["purge_runs"] >= 2, result
