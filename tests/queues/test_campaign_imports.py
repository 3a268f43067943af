"""CSV imports into lists: the validation report lists exactly the bad rows; BOM, `;` and tab separators, quoted
commas, duplicates, suppressed addresses; the three modes; cancel mid-import; the API's names; the export."""

import csv
import io
from unittest import mock

from django.core.exceptions import ValidationError

from deliveryhub.choices import JobStatus
from deliveryhub.jobs import get_queue
from deliveryhub.testing.cases import TenantTestCase
from queues.campaigns import imports
from queues.choices import ImportMode, ImportState, SubscriptionStatus
from queues.models import Contact, ContactImport, ContactList, Subscription, Suppression

from .campaign_helpers import drain, make_marketer, upload


class ImportTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.marketer = make_marketer("mara@a.test", cls.tenant_a)

    def setUp(self):
        get_flush()
        self.list = ContactList.objects.create(tenant=self.tenant_a, name="Customers")

    def run_import(self, text, **kwargs):
        with self.captureOnCommitCallbacks(execute=True):
            imp = imports.start_import(self.tenant_a, upload(text), contact_list=self.list, acting_user=self.marketer,
                                       **kwargs)
        drain()
        imp.refresh_from_db()
        return imp

    def report(self, imp):
        return list(csv.reader(io.StringIO(imports.report_text(imp))))[1:]

    def test_bom_semicolons_quoted_values_duplicates_and_bad_rows(self):
        Suppression.objects.create(tenant=self.tenant_a, address="blocked@example.com", reason="manual")
        text = (
            "\ufeffEmail;Name;City;Plan\r\n"
            'ann@example.com;"Ann; the first";"Lyon, France";gold\r\n'
            "BOB@Example.COM;Bob;Paris;silver\r\n"
            "not-an-address;Nobody;;\r\n"
            "bob@example.com;Bob again;Nice;bronze\r\n"
            "blocked@example.com;Blocked;Rome;gold\r\n"
            "short@example.com;Short\r\n"
            f"long@example.com;Long;{'x' * 1001};gold\r\n"
            "\r\n"
            "zoe@bücher.example;Zoë;Berlin;gold\r\n"
        )
        imp = self.run_import(text)
        self.assertEqual(imp.state, ImportState.COMPLETED, imp.error)
        self.assertEqual(imp.counts(), {"rows": 8, "total": 9, "imported": 4, "updated": 0, "invalid": 4,
                                        "suppressed": 1})
        report = self.report(imp)
        self.assertEqual([row[0] for row in report], ["4", "5", "7", "8"])
        self.assertEqual(report[0][1], "not-an-address")
        self.assertIn("Duplicate of row 3", report[1][2])
        self.assertIn("columns", report[2][2])
        self.assertIn("longer than 1000", report[3][2])
        ann = Contact.objects.get(tenant=self.tenant_a, email="ann@example.com")
        self.assertEqual(ann.name, "Ann; the first")
        self.assertEqual(ann.attributes, {"City": "Lyon, France", "Plan": "gold"})
        self.assertTrue(Contact.objects.filter(email="bob@example.com", name="Bob").exists())  # lower-cased address
        self.assertTrue(Contact.objects.filter(email="blocked@example.com").exists())  # imported, but suppressed
        zoe = Contact.objects.get(email="zoe@xn--bcher-kva.example")  # IDNA, as intake stores domains
        self.assertEqual((zoe.name, zoe.domain), ("Zoë", "xn--bcher-kva.example"))
        self.assertEqual(Subscription.objects.filter(contact_list=self.list, status="subscribed").count(), 4)
        self.assertEqual(imp.job.status, JobStatus.COMPLETED)
        self.assertEqual(imp.job.result["invalid"], 4)
        self.assertEqual(imp.job.result["rows"], 8)

    def test_tab_separated_and_mapping(self):
        text = "e-mail\tFull name\tTown\tNotes\nann@example.com\tAnn\tLyon\tskip me\n"
        imp = self.run_import(text, email_column="E-Mail", mapping={"Full name": "name", "Town": "city", "Notes": ""})
        self.assertEqual(imp.state, ImportState.COMPLETED, imp.error)
        ann = Contact.objects.get(email="ann@example.com")
        self.assertEqual((ann.name, ann.attributes), ("Ann", {"city": "Lyon"}))

    def test_modes_add_update_unsubscribe(self):
        self.run_import("email,name,city\nann@example.com,Ann,Lyon\n")
        added = self.run_import("email,name,city\nann@example.com,Annie,Paris\nbob@example.com,Bob,Nice\n")
        self.assertEqual((added.imported, added.updated), (1, 0))  # ann was on the list already: unchanged
        self.assertEqual(Contact.objects.get(email="ann@example.com").name, "Ann")
        updated = self.run_import("email,name,zip\nann@example.com,Annie,69001\n", mode=ImportMode.UPDATE)
        self.assertEqual((updated.imported, updated.updated), (0, 1))
        ann = Contact.objects.get(email="ann@example.com")
        self.assertEqual((ann.name, ann.attributes), ("Annie", {"city": "Lyon", "zip": "69001"}))  # fields merged
        gone = self.run_import("email\nann@example.com\ncarol@example.com\n", mode=ImportMode.UNSUBSCRIBE)
        self.assertEqual(gone.state, ImportState.COMPLETED)
        statuses = dict(Subscription.objects.filter(contact_list=self.list).values_list("contact__email", "status"))
        self.assertEqual(statuses, {"ann@example.com": "unsubscribed", "bob@example.com": "subscribed",
                                    "carol@example.com": "unsubscribed"})
        # An unsubscribed address is never subscribed again by an import.
        self.run_import("email\nann@example.com\ncarol@example.com\n")
        self.assertEqual(Subscription.objects.get(contact__email="ann@example.com").status,
                         SubscriptionStatus.UNSUBSCRIBED)

    def test_header_problems_are_field_errors_and_nothing_is_queued(self):
        with self.assertRaises(ValidationError) as caught:
            imports.start_import(self.tenant_a, upload("mail,name\na@b.example,A\n"), contact_list=self.list)
        self.assertIn("email_column", caught.exception.message_dict)
        with self.assertRaises(ValidationError):
            imports.start_import(self.tenant_a, upload(""), contact_list=self.list)
        with self.assertRaises(ValidationError):
            imports.start_import(self.tenant_a, upload("email\n"), contact_list=self.list, mapping={"nope": "x"})
        self.assertFalse(ContactImport.objects.exists())

    def test_cancel_mid_import_reports_exactly_what_was_written(self):
        rows = "".join(f"user{i}@example.com,User {i}\n" for i in range(50))
        with self.captureOnCommitCallbacks(execute=True):
            imp = imports.start_import(self.tenant_a, upload("email,name\n" + rows), contact_list=self.list)
        original = imports._write_contacts
        calls = []

        def write_then_cancel(imp_, chunk):
            calls.append(len(chunk))
            result = original(imp_, chunk)
            imports.cancel_import(ContactImport.objects.get(pk=imp_.pk), acting_user=self.marketer)
            return result

        with mock.patch.object(imports, "IMPORT_CHUNK_ROWS", 20), mock.patch.object(
            imports, "_write_contacts", write_then_cancel
        ):
            drain()
        imp.refresh_from_db()
        self.assertEqual(imp.state, ImportState.CANCELLED)
        self.assertEqual(calls, [20])  # the chunk being written finished; no later chunk started
        self.assertEqual(imp.imported, 20)
        self.assertEqual(Contact.objects.filter(tenant=self.tenant_a).count(), 20)
        self.assertEqual(imp.job.status, JobStatus.COMPLETED)


def get_flush():
    get_queue("default").connection.flushdb()


class ImportAPITest(TenantTestCase):
    def setUp(self):
        get_flush()
        self.list = ContactList.objects.create(tenant=self.tenant_a, name="API list")

    def test_post_import_returns_the_job_then_counts_and_report(self):
        url = f"/api/v1/lists/{self.list.pk}/imports/"
        body = {"file": upload("email,name,city\nann@example.com,Ann,Lyon\nbad,B,\n"), "mode": "add",
                "email_column": "email", "mapping": '{"city": "city"}'}
        with self.captureOnCommitCallbacks(execute=True):
            response = self.api(self.alice_key).post(url, body, format="multipart")
        self.assertEqual(response.status_code, 202, response.content)
        answer = response.json()
        self.assertEqual(answer["state"], "pending")
        drain()
        detail = self.api(self.alice_key).get(f"/api/v1/contact-imports/{answer['id']}/").json()
        self.assertEqual(detail["state"], "completed")
        self.assertEqual(detail["result"], {"rows": 2, "total": 2, "imported": 1, "updated": 0, "invalid": 1,
                                            "suppressed": 0})
        report = self.api(self.alice_key).get(detail["report_url"])
        self.assertEqual(report.status_code, 200)
        self.assertIn(b"3,bad,", b"".join(report.streaming_content) if report.streaming else report.content)
        # The list's count and the export.
        listed = self.api(self.alice_key).get(f"/api/v1/lists/{self.list.pk}/").json()
        self.assertEqual(listed["subscribed_count"], 1)
        export = self.api(self.alice_key).get(f"/api/v1/lists/{self.list.pk}/export/")
        self.assertEqual(export.status_code, 200)
        lines = b"".join(export.streaming_content).decode().splitlines()
        self.assertEqual(lines[0], "email,name,status,subscribed,city")
        self.assertTrue(lines[1].startswith("ann@example.com,Ann,subscribed,"))
        # Viewers read but neither import nor export; another tenant sees nothing.
        self.assertEqual(self.api(self.bob_key).get(f"/api/v1/lists/{self.list.pk}/export/").status_code, 403)
        response = self.api(self.bob_key).post(url, {"file": upload("email\nx@y.example\n")}, format="multipart")
        self.assertEqual(response.status_code, 403)
        self.assertEqual(self.api(self.charlie_key).get(f"/api/v1/contact-imports/{answer['id']}/").status_code, 404)
        self.assertEqual(self.api(self.charlie_key).post(url, body, format="multipart").status_code, 404)

    def test_bad_mode_and_missing_file_are_field_errors(self):
        url = f"/api/v1/lists/{self.list.pk}/imports/"
        response = self.api(self.alice_key).post(url, {"mode": "merge"}, format="multipart")
        self.assertEqual(response.status_code, 400)
        fields = response.json()["error"]["fields"]
        self.assertIn("file", fields)
        self.assertIn("mode", fields)
