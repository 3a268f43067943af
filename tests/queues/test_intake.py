"""Intake: validation (addresses, IDN, headers, size, recipients), MIME building, suppression, all-or-nothing."""

import base64
import email
import email.policy

from django.core.exceptions import ValidationError
from django.test import override_settings

from deliveryhub.testing.cases import TenantTestCase
from queues import services
from queues.choices import EventKind, MessageStatus
from queues.mime import normalize_address, normalize_raw
from queues.models import Message, MessageContent, MessageEvent, Suppression
from queues.services import Submission
from queues.testing import make_sending_domain


def parse(data):
    return email.message_from_bytes(data, policy=email.policy.default)


class AddressTest(TenantTestCase):
    def test_idn_domain_is_encoded(self):
        self.assertEqual(normalize_address("user@bücher.example"), "user@xn--bcher-kva.example")

    def test_limits_and_syntax(self):
        for bad in ["no-at", "a@b", "a b@example.com", "a@exa mple.com", "a@-x.example", "x" * 65 + "@example.com",
                    "a@" + "x" * 64 + ".com", "a\r\n@example.com", '"quoted"@example.com', "a@[127.0.0.1]",
                    "a..b@example.com"]:  # fmt: skip
            with self.subTest(bad=bad), self.assertRaises(ValidationError):
                normalize_address(bad)


class AcceptTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain = make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.domain_b = make_sending_domain(cls.tenant_b, "mail-b.test")

    def accept(self, **fields):
        fields.setdefault("sender", "App <app@mail-a.test>")
        fields.setdefault("to", ["to@example.com"])
        fields.setdefault("subject", "Hello")
        fields.setdefault("text", "Body")
        return services.accept_messages(self.tenant_a, Submission(**fields))

    def test_send_at_is_bounded_for_every_caller(self):
        """Not only the API serializer: the service refuses a send time too far ahead or without a time zone, so any
        caller (the SMTP listener, campaigns) gets the same rule; nothing is stored."""
        import datetime

        from django.utils import timezone

        limit = datetime.timedelta(days=30)
        with override_settings(DELIVERY_MAX_SCHEDULE_SECONDS=int(limit.total_seconds())):
            for bad in (timezone.now() + limit + datetime.timedelta(hours=1), datetime.datetime(2030, 1, 1), "soon"):
                with self.subTest(send_at=bad), self.assertRaises(ValidationError) as caught:
                    self.accept(send_at=bad)
                self.assertIn("send_at", caught.exception.message_dict)
            self.assertFalse(Message.objects.exists())
            [message] = self.accept(send_at=timezone.now() + limit - datetime.timedelta(hours=1)).messages
        self.assertIsNotNone(message.send_at)

    def test_one_row_per_recipient_sharing_content(self):
        accepted = self.accept(to=["a@x.example", "B <b@y.example>"], cc=["c@x.example"], bcc=["d@z.example"])
        self.assertEqual(len(accepted.messages), 4)
        self.assertEqual(MessageContent.objects.count(), 1)
        self.assertEqual({m.rcpt_to for m in Message.objects.all()}, {"a@x.example", "b@y.example", "c@x.example",
                                                                       "d@z.example"})  # fmt: skip
        self.assertEqual(len(accepted.response["messages"]), 4)
        content = bytes(MessageContent.objects.get().raw)
        self.assertNotIn(b"d@z.example", content)  # Bcc never in the headers
        msg = parse(content)
        self.assertTrue(msg["Date"] and msg["Message-ID"])
        self.assertIn(b"\r\n", content)
        self.assertNotRegex(content, rb"(?<!\r)\n")
        m = Message.objects.get(rcpt_to="a@x.example")
        self.assertEqual(m.status, MessageStatus.QUEUED)
        self.assertEqual(m.rcpt_domain, "x.example")
        self.assertTrue(m.mail_from.endswith("@" + services.return_path_host(self.domain)))
        self.assertEqual(Message.uuid_from_verp(m.mail_from), m.uuid)
        self.assertEqual(MessageEvent.objects.filter(kind=EventKind.ACCEPTED).count(), 4)

    def test_duplicate_recipients_collapse(self):
        accepted = self.accept(to=["a@x.example", "a@X.EXAMPLE"], cc=["a@x.example"])
        self.assertEqual(len(accepted.messages), 1)

    def test_from_domain_must_belong_to_tenant(self):
        with self.assertRaises(ValidationError) as ctx:
            self.accept(sender="x@mail-b.test")
        self.assertIn("from", ctx.exception.message_dict)
        with self.assertRaises(ValidationError):
            self.accept(sender="x@unknown.test")
        self.assertEqual(Message.objects.count(), 0)

    def test_header_injection_refused(self):
        for fields in [
            {"subject": "Hi\r\nBcc: victim@evil.example"},
            {"subject": "Hi\nX-Evil: 1"},
            {"headers": {"X-Ok": "fine\r\nBcc: victim@evil.example"}},
            {"headers": {"X-Bad\r\nBcc": "v"}},
            {"headers": {"Bcc": "victim@evil.example"}},
            {"sender": "App\r\nBcc: v@evil.example <app@mail-a.test>"},
            {"to": ["to@example.com\r\nRCPT TO:<v@evil.example>"]},
            {"to": ["x <to@example.com>, v@evil.example"]},
            {"attachments": [{"filename": "a\r\nX: y", "content": "aGk="}]},
        ]:
            with self.subTest(fields=fields), self.assertRaises(ValidationError):
                self.accept(**fields)
        self.assertEqual(Message.objects.count(), 0)
        self.assertEqual(MessageContent.objects.count(), 0)

    def test_long_lines_are_encoded_and_attachments_base64(self):
        accepted = self.accept(text="x" * 5000, attachments=[
            {"filename": "r.csv", "content_type": "text/csv", "content": base64.b64encode(b"a,b\n1,2\n").decode()}
        ])  # fmt: skip
        data = bytes(accepted.messages[0].content.raw)
        self.assertTrue(all(len(line) <= 998 for line in data.split(b"\r\n")))
        attachment = next(parse(data).iter_attachments())
        self.assertEqual(attachment.get_filename(), "r.csv")
        self.assertEqual(attachment.get_content_type(), "text/csv")
        self.assertEqual(attachment["Content-Transfer-Encoding"], "base64")
        self.assertEqual(attachment.get_payload(decode=True), b"a,b\n1,2\n")

    @override_settings(MESSAGE_MAX_BYTES=2000)
    def test_size_limit(self):
        with self.assertRaises(ValidationError):
            self.accept(text="y" * 5000)
        self.assertEqual(Message.objects.count(), 0)

    @override_settings(MESSAGE_MAX_RECIPIENTS=2)
    def test_recipient_limit(self):
        with self.assertRaises(ValidationError):
            self.accept(to=["a@x.example", "b@x.example", "c@x.example"])

    def test_suppressed_recipient_is_stored_suppressed(self):
        Suppression.objects.create(tenant=self.tenant_a, address="gone@x.example", reason="hard_bounce")
        Suppression.objects.create(tenant=self.tenant_b, address="other@x.example", reason="hard_bounce")
        accepted = self.accept(to=["gone@x.example", "other@x.example"])
        states = {m.rcpt_to: m.status for m in accepted.messages}
        self.assertEqual(states, {"gone@x.example": MessageStatus.SUPPRESSED, "other@x.example": MessageStatus.QUEUED})

    def test_batch_is_all_or_nothing(self):
        good = Submission(sender="app@mail-a.test", to=["a@x.example"], subject="s", text="t")
        bad = Submission(sender="app@mail-a.test", to=["not an address"], subject="s", text="t")
        with self.assertRaises(ValidationError) as ctx:
            services.accept_messages(self.tenant_a, [good, bad])
        self.assertIn("messages[1].to", ctx.exception.message_dict)
        self.assertEqual(Message.objects.count(), 0)

    def test_raw_mime_is_normalised(self):
        raw = (b"From: App <app@mail-a.test>\nTo: x@example.com\nBcc: secret@example.com\nSubject: raw\n\n"
               b"line one\n.\nline three\n")  # fmt: skip
        accepted = services.accept_messages(self.tenant_a, Submission(raw=raw, envelope_to=["x@example.com"]))
        data = bytes(accepted.messages[0].content.raw)
        self.assertNotIn(b"secret@example.com", data)
        self.assertNotRegex(data, rb"(?<!\r)\n")
        self.assertIn(b"Message-ID: <", data)
        self.assertIn(b"Date: ", data)

    def test_raw_mime_refusals(self):
        for raw in [b"Subject: no from\r\n\r\nx", b"From: a@mail-b.test\r\n\r\nx", b"From: a@mail-a.test\r\n\r\n" +
                    b"x" * 1200, b"From: a@mail-a.test\r\n\r\nnul\x00"]:  # fmt: skip
            with self.subTest(raw=raw[:30]), self.assertRaises(ValidationError):
                services.accept_messages(self.tenant_a, Submission(raw=raw, envelope_to=["x@example.com"]))

    def test_normalize_raw_crlf_dot(self):
        data, _ = normalize_raw(b"From: a@mail-a.test\n\nx\n.\r\nMAIL FROM:<e@evil>\n")
        self.assertEqual(data.count(b"\r\n.\r\n"), 1)  # kept as a body line: the sender dot-stuffs it
