"""Data-subject requests: access archives hold exactly the subject's data; erasure leaves no trace of the address in the
database, the files under var/ and Redis, keeps the person suppressed and the audit chain intact; roles and tenancy."""

import io
import json
import shutil
import tempfile
import zipfile
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.utils import timezone
from pypdf import PdfReader
from rq import SimpleWorker

from deliveryhub import audit, services
from deliveryhub.choices import Role
from deliveryhub.constants import QUEUE_DEFAULT, QUEUE_LOW
from deliveryhub.crypto import pseudonym_address
from deliveryhub.jobs import get_queue
from deliveryhub.models import AuditEntry
from deliveryhub.signing import verify_bytes
from deliveryhub.testing import traces
from deliveryhub.testing.cases import TenantTestCase, make_user
from queues import services as queue_services
from queues.campaigns import contacts as contact_services
from queues.campaigns import imports
from queues.campaigns import services as campaign_services
from queues.choices import AttemptStatus, EventKind, ImportState, MessageStatus, SuppressionReason
from queues.models import (
    CapturedMessage,
    Contact,
    ContactImport,
    ContactList,
    DeliveryAttempt,
    IdempotencyKey,
    Message,
    MessageContent,
    MessageEvent,
    Suppression,
)
from queues.services import Submission
from queues.testing import make_sending_domain
from reports import services as report_services
from reports.choices import DataRequestStatus
from reports.models import DataRequest
from reports.services import ARCHIVE_JSON

URL = "/api/v1/data-requests/"
SUBJECT = "Jane.Subject@Example.com"  # stored as given; requests may use any case
OTHER = "other.person@example.com"


def run_worker():
    queues = [get_queue(QUEUE_LOW), get_queue(QUEUE_DEFAULT)]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True)


class DataRequestTestCase(TenantTestCase):
    with_b = True  # tenant B holds mail to the same address
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.cora = make_user("cora@a.test", cls.tenant_a, Role.COMPLIANCE)
        cls.olive = make_user("olive@a.test", cls.tenant_a, Role.OWNER)
        cls.mark = make_user("mark@a.test", cls.tenant_a, Role.MARKETER)
        cls.cora_key = services.create_api_key(tenant=cls.tenant_a, name="cora", role=Role.COMPLIANCE)[1]
        cls.owner_key = services.create_api_key(tenant=cls.tenant_a, name="olive", role=Role.OWNER)[1]
        cls.mark_key = services.create_api_key(tenant=cls.tenant_a, name="mark", role=Role.MARKETER)[1]
        cls.charlie_compliance_key = services.create_api_key(tenant=cls.tenant_b, name="cb", role=Role.COMPLIANCE)[1]
        make_sending_domain(cls.tenant_a, "mail-a.test")
        make_sending_domain(cls.tenant_b, "mail-b.test")

    def setUp(self):
        get_queue(QUEUE_LOW).connection.flushdb()
        media = tempfile.mkdtemp(prefix="dh-dsr-", dir=settings.VAR_DIR)
        self.addCleanup(shutil.rmtree, media, ignore_errors=True)
        self.media = media
        override = override_settings(MEDIA_ROOT=media)
        override.enable()
        self.addCleanup(override.disable)
        self.mine = self.send(self.tenant_a, "mail-a.test", [SUBJECT, OTHER], subject=f"Hello {SUBJECT}")
        self.solo = self.send(self.tenant_a, "mail-a.test", [SUBJECT.lower()], subject="Your receipt")
        self.others = self.send(self.tenant_a, "mail-a.test", [OTHER], subject="Not about Jane")
        self.theirs = self.send(self.tenant_b, "mail-b.test", [SUBJECT], subject="Tenant B mail") if self.with_b else []
        for message in self.mine + self.solo + self.theirs:
            if message.rcpt_to.lower() == SUBJECT.lower():
                Message.objects.filter(pk=message.pk).update(status=MessageStatus.BOUNCED,
                                                              status_detail=f"550 5.1.1 <{SUBJECT}> unknown")
                DeliveryAttempt.objects.create(message=message, status=AttemptStatus.BOUNCED, code=550,
                                               enhanced_code="5.1.1", text=f"<{SUBJECT}>: user unknown")  # fmt: skip
                MessageEvent.objects.create(message=message, kind=EventKind.COMPLAINED, detail="Complaint",
                                            data={"original_rcpt": SUBJECT})  # fmt: skip
        queue_services.add_suppression(self.tenant_a, SUBJECT, reason=SuppressionReason.HARD_BOUNCE,
                                       source=f"550 <{SUBJECT}>")  # fmt: skip
        CapturedMessage.objects.create(tenant=self.tenant_a, mail_from="b-x@bounces.mail-a.test",
                                       rcpt_tos=[SUBJECT], subject="captured", raw=f"To: {SUBJECT}\r\n\r\nhi".encode())
        IdempotencyKey.objects.create(tenant=self.tenant_a, key="k1", request_digest="0" * 64, status_code=202,
                                      response={"messages": [{"recipient": SUBJECT}]})  # fmt: skip

    def send(self, tenant, domain, to, **fields):
        return queue_services.accept_messages(
            tenant, Submission(sender=f"App <app@{domain}>", to=to, text=f"Dear {to[0]}, hello.", **fields)
        ).messages

    def request(self, key, kind, subjects=(SUBJECT,), note="Ticket 42"):
        with self.captureOnCommitCallbacks(execute=True):
            response = self.api(key).post(URL, {"kind": kind, "subjects": list(subjects), "note": note}, format="json")
        return response

    def run_request(self, key, kind, subjects=(SUBJECT,)):
        response = self.request(key, kind, subjects)
        self.assertEqual(response.status_code, 202, response.content)
        self.assertEqual(response.json()["status"], DataRequestStatus.PENDING)
        with self.captureOnCommitCallbacks(execute=True):
            run_worker()
        answer = self.api(key).get(f"{URL}{response.json()['id']}/").json()
        self.assertEqual(answer["status"], DataRequestStatus.COMPLETED, answer)
        return answer


class AccessTest(DataRequestTestCase):
    def archive(self, key=None):
        answer = self.run_request(key or self.cora_key, "access", subjects=[SUBJECT.upper()])
        response = self.api(key or self.cora_key).get(answer["download_url"])
        self.assertEqual(response.status_code, 200)
        data = b"".join(response.streaming_content)
        return answer, data

    def test_archive_holds_exactly_the_subjects_rows(self):
        answer, data = self.archive()
        archive = zipfile.ZipFile(io.BytesIO(data))
        self.assertEqual(set(archive.namelist()), {"subject-data.json", "summary.pdf", "manifest.json",
                                                   "signature.p7s"})  # fmt: skip
        document = json.loads(archive.read("subject-data.json"))
        self.assertEqual(document["subjects"], [SUBJECT.lower()])
        sections = document["sections"]
        got = {record["id"] for record in sections["messages"]["records"]}
        expected = {str(m.uuid) for m in self.mine + self.solo if m.rcpt_to.lower() == SUBJECT.lower()}
        self.assertEqual(got, expected)  # not OTHER's copy, not tenant B's
        self.assertEqual(sections["messages"]["count"], 2)
        first = sections["messages"]["records"][0]
        self.assertEqual(first["attempts"][0]["code"], 550)
        self.assertEqual(first["events"][-1]["kind"], EventKind.COMPLAINED)
        self.assertEqual([r["address"] for r in sections["suppressions"]["records"]], [SUBJECT.lower()])
        self.assertEqual(sections["captured_mail"]["count"], 1)
        self.assertEqual(sections["signals"]["count"], 2)
        self.assertEqual(sections["message_bodies"]["count"], 2)
        text = json.dumps(document)
        self.assertNotIn("Not about Jane", text)
        self.assertNotIn("Tenant B mail", text)
        self.assertEqual(answer["result"]["messages"], 2)

    def test_archive_and_summary_are_signed_and_readable(self):
        _, data = self.archive()
        self.assertTrue(verify_bytes(data).ok, verify_bytes(data).summary())
        archive = zipfile.ZipFile(io.BytesIO(data))
        pdf = archive.read("summary.pdf")
        self.assertTrue(verify_bytes(pdf).ok)
        text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
        self.assertIn("Data-subject access report", text)
        self.assertIn(SUBJECT.lower(), text)
        self.assertIn("Your receipt", text)
        tampered = io.BytesIO()
        with zipfile.ZipFile(tampered, "w") as out:
            for name in archive.namelist():
                content = archive.read(name)
                out.writestr(name, content.replace(b"Your receipt", b"Your reCeipt"))
        result = verify_bytes(tampered.getvalue())
        self.assertFalse(result.ok)
        self.assertIn("subject-data.json was changed after signing", result.summary())

    def test_access_is_audited_with_pseudonyms_only(self):
        answer, _ = self.archive()
        entries = AuditEntry.objects.filter(object_type="reports.datarequest").order_by("seq")
        self.assertEqual([e.action for e in entries],
                         ["datarequest.access.create", "datarequest.access.complete", "datarequest.access.download"])
        for entry in entries:
            self.assertNotIn(SUBJECT.lower(), json.dumps([entry.prechange, entry.postchange, entry.object_repr,
                                                          entry.message]).lower())  # fmt: skip
        marker = f"pseudonym:{pseudonym_address(SUBJECT)[:32]}"
        self.assertEqual(entries[0].postchange["subjects"], [marker])

    def test_owner_may_compliance_may_others_may_not(self):
        self.assertEqual(self.request(self.owner_key, "access").status_code, 202)
        for key in (self.alice_key, self.bob_key, self.mark_key):
            with self.subTest(key=key[:12]):
                self.assertEqual(self.request(key, "access").status_code, 403)
                self.assertEqual(self.api(key).get(URL).status_code, 403)

    def test_other_tenant_gets_404(self):
        answer, _ = self.archive()
        for path in (f"{URL}{answer['id']}/", f"{URL}{answer['id']}/download/"):
            self.assertEqual(self.api(self.charlie_compliance_key).get(path).status_code, 404)
        self.assertEqual(self.api(self.charlie_compliance_key).get(URL).json()["results"], [])

    def test_bad_input_is_a_field_error_and_changes_nothing(self):
        before = DataRequest.objects.count()
        for body, field in (({"kind": "access", "subjects": ["not-an-address"]}, "subjects"),
                            ({"kind": "delete", "subjects": [SUBJECT]}, "kind"),
                            ({"kind": "access", "subjects": []}, "subjects"),
                            ({"kind": "access", "subjects": [f"x{i}@example.com" for i in range(30)]}, "subjects")):
            with self.subTest(body=body):
                response = self.api(self.cora_key).post(URL, body, format="json")
                self.assertEqual(response.status_code, 400, response.content)
                self.assertIn(field, response.json()["error"]["fields"])
        self.assertEqual(DataRequest.objects.count(), before)


class ErasureTest(DataRequestTestCase):
    with_b = False  # the database must hold no trace at all afterwards

    def test_no_trace_left_in_database_files_or_redis(self):
        self.run_request(self.cora_key, "access")  # an earlier archive under var/ must go too
        self.assertTrue(traces.in_files(self.media, SUBJECT))
        self.assertTrue(traces.in_database(SUBJECT))
        answer = self.run_request(self.cora_key, "erasure", subjects=[SUBJECT.lower()])
        self.assertEqual(answer["subjects"], [pseudonym_address(SUBJECT)])
        self.assertEqual(traces.in_database(SUBJECT), [])
        self.assertEqual(traces.in_files(settings.VAR_DIR, SUBJECT), [])
        self.assertEqual(traces.in_redis(get_queue(QUEUE_LOW).connection, SUBJECT), [])

    def test_other_tenants_copy_is_not_touched(self):
        theirs = self.send(self.tenant_b, "mail-b.test", [SUBJECT], subject="Tenant B mail")[0]
        self.run_request(self.cora_key, "erasure")
        theirs.refresh_from_db()
        self.assertEqual((theirs.rcpt_to.lower(), theirs.status), (SUBJECT.lower(), MessageStatus.QUEUED))
        self.assertIn(SUBJECT.lower().encode(), bytes(theirs.content.raw).lower())

    def test_bodies_are_deleted_others_scrubbed(self):
        self.run_request(self.cora_key, "erasure")
        solo = MessageContent.objects.get(pk=self.solo[0].content_id)
        self.assertEqual(bytes(solo.raw), b"")
        self.assertIsNotNone(solo.purged_at)
        shared = MessageContent.objects.get(pk=self.mine[0].content_id)  # OTHER's copy is still queued
        self.assertNotIn(SUBJECT.lower().encode(), bytes(shared.raw).lower())
        self.assertIn(pseudonym_address(SUBJECT).encode(), bytes(shared.raw))
        self.assertEqual(Message.objects.get(pk=self.mine[1].pk).status, MessageStatus.QUEUED)  # OTHER keeps theirs

    def test_suppression_stays_effective_and_audit_chain_verifies(self):
        self.run_request(self.owner_key, "erasure")
        self.assertEqual(list(Suppression.objects.filter(tenant=self.tenant_a).values_list("address", flat=True)),
                         [pseudonym_address(SUBJECT)])  # fmt: skip
        again = self.send(self.tenant_a, "mail-a.test", [SUBJECT.upper()])
        self.assertEqual(again[0].status, MessageStatus.SUPPRESSED)
        with self.assertRaisesMessage(ValidationError, "already suppressed"):
            queue_services.add_suppression(self.tenant_a, SUBJECT)  # already suppressed, as its pseudonym
        self.assertTrue(audit.verify_chain().ok)
        entry = AuditEntry.objects.filter(action="datarequest.erasure.erase").get()
        self.assertEqual(entry.postchange["counts"]["messages"]["messages"], 2)
        self.assertNotIn(SUBJECT.lower(), json.dumps(entry.postchange).lower())

    def test_never_erased_address_is_still_suppressed_after_erasure(self):
        self.run_request(self.cora_key, "erasure", subjects=["never.mailed@example.org"])
        message = self.send(self.tenant_a, "mail-a.test", ["never.mailed@example.org"])[0]
        self.assertEqual(message.status, MessageStatus.SUPPRESSED)

    def test_marketer_cannot_erase(self):
        self.assertEqual(self.request(self.mark_key, "erasure").status_code, 403)
        self.assertEqual(self.request(self.alice_key, "erasure").status_code, 403)  # admins neither
        self.assertTrue(Message.objects.filter(rcpt_to__iexact=SUBJECT, tenant=self.tenant_a).exists())


class ContactDataTest(DataRequestTestCase):
    """Campaign data: the subject as a contact on lists (created through the audited service), in an uploaded CSV
    and in its validation report (a duplicate row), and in a test send's audit entry."""

    with_b = False

    def setUp(self):
        super().setUp()
        news = ContactList.objects.create(tenant=self.tenant_a, name="News")
        offers = ContactList.objects.create(tenant=self.tenant_a, name="Offers")
        contact_services.create_contact(self.tenant_a, email=SUBJECT, name="Jane Subject",
                                        attributes={"city": "Leeds"}, lists=[news, offers])  # fmt: skip
        contact_services.create_contact(self.tenant_a, email=OTHER, lists=[news])
        csv_text = f"email,name\n{SUBJECT},Jane Subject\n{OTHER},Other\n{SUBJECT.upper()},Jane again\n"
        with self.captureOnCommitCallbacks(execute=True):
            self.imp = imports.start_import(self.tenant_a, SimpleUploadedFile("c.csv", csv_text.encode()),
                                            contact_list=offers, mapping={"name": "name"})  # fmt: skip
        with self.captureOnCommitCallbacks(execute=True):
            run_worker()
        self.imp.refresh_from_db()
        self.assertEqual((self.imp.state, self.imp.invalid), (ImportState.COMPLETED, 1))
        campaign = campaign_services.create_campaign(self.tenant_a, name="Spring", subject="Hi",
                                                     from_header="Shop <news@mail-a.test>", html="<p>Hi</p>",
                                                     lists=[news])  # fmt: skip
        campaign_services.test_send(campaign, [SUBJECT])  # its audit entry names the recipients

    def test_access_lists_the_contact_and_its_lists_only(self):
        answer = self.run_request(self.cora_key, "access")
        data = b"".join(self.api(self.cora_key).get(answer["download_url"]).streaming_content)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            document = json.loads(archive.read(ARCHIVE_JSON))
        contacts = document["sections"]["contacts"]["records"]
        self.assertEqual([(c["email"], c["name"], c["attributes"]) for c in contacts],
                         [(SUBJECT.lower(), "Jane Subject", {"city": "Leeds"})])  # fmt: skip
        self.assertEqual(sorted((s["list"], s["status"]) for s in contacts[0]["subscriptions"]),
                         [("News", "subscribed"), ("Offers", "subscribed")])  # fmt: skip

    def test_erasure_deletes_the_contact_and_scrubs_import_files(self):
        self.assertTrue(traces.in_files(self.media, SUBJECT))
        self.run_request(self.cora_key, "erasure")
        self.assertFalse(Contact.objects.filter(tenant=self.tenant_a, email=SUBJECT.lower()).exists())
        self.assertTrue(Contact.objects.filter(tenant=self.tenant_a, email=OTHER).exists())
        self.assertEqual(traces.in_database(SUBJECT), [])
        self.assertEqual(traces.in_files(settings.VAR_DIR, SUBJECT), [])
        report = imports.report_text(ContactImport.objects.get(pk=self.imp.pk))
        self.assertIn(pseudonym_address(SUBJECT).upper(), report.upper())  # the report still reads, pseudonymised
        self.assertTrue(audit.verify_chain().ok)

    def test_retention_deletes_import_files_of_finished_imports(self):
        ContactImport.objects.filter(pk=self.imp.pk).update(finished=timezone.now() - timedelta(days=8))
        paths = [Path(self.media) / self.imp.path, Path(self.media) / self.imp.report_path]
        self.assertTrue(all(path.is_file() for path in paths))
        with self.captureOnCommitCallbacks(execute=True):
            report_services.purge(tenant=self.tenant_a)
        self.assertFalse(any(path.exists() for path in paths))
        self.imp.refresh_from_db()
        self.assertEqual((self.imp.path, self.imp.report_path, self.imp.rows_read), ("", "", 3))
