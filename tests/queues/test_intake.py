"""Intake: validation (addresses, IDN, headers, size, recipients), MIME building, suppression, all-or-nothing."""

import base64
import email
import email.policy

from django.core.exceptions import ValidationError
from django.test import override_settings

from deliveryhub.testing.cases import TenantTestCase
from queues import services
from queues.choices import EventKind, MessagePriority, MessageStatus
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
        self.assertTrue(m.mail_from.endswith("@" + self.domain.return_path_host))
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
        data = normalize_raw(b"From: a@mail-a.test\n\nx\n.\r\nMAIL FROM:<e@evil>\n").data
        self.assertEqual(data.count(b"\r\n.\r\n"), 1)  # kept as a body line: the sender dot-stuffs it

    def test_structured_message_is_seven_bit(self):
        """Non-ASCII in every field of a structured message goes out encoded (RFC 2047 headers, RFC 2231 file names,
        quoted-printable or base64 bodies), so a peer without SMTPUTF8 or 8BITMIME can take it as it is (the `email`
        package wrote such bodies as raw 8bit)."""
        accepted = self.accept(
            sender="Jürgen Müller <app@mail-a.test>",
            to=["Zoë <zoe@example.com>"],
            subject="Grüße – 你好",
            headers={"X-Note": "naïve café"},
            text="Grüße aus Köln\n",
            html="<p>你好</p>",
            attachments=[{"filename": "Prüfung.pdf", "content": "aGk="}],
        )
        data = bytes(accepted.messages[0].content.raw)
        data.decode("ascii")
        msg = parse(data)
        self.assertEqual(str(msg["Subject"]), "Grüße – 你好")
        self.assertEqual(str(msg["X-Note"]), "naïve café")
        self.assertEqual(msg.get_body(("plain",)).get_content().replace("\r\n", "\n"), "Grüße aus Köln\n")
        self.assertEqual(next(msg.iter_attachments()).get_filename(), "Prüfung.pdf")
        content = MessageContent.objects.get()
        self.assertEqual((content.subject, content.from_header), ("Grüße – 你好", "Jürgen Müller <app@mail-a.test>"))

    def test_encoded_word_injection_refused_nothing_stored(self):
        """`=?utf-8?b?…?=` decoding to CR/LF became a real `Bcc:` header line with the `email` package."""
        evil = "=?utf-8?b?" + base64.b64encode(b"Hi\r\nBcc: victim@evil.example").decode() + "?="
        for fields, key in [
            ({"subject": evil}, "subject"),
            ({"headers": {"X-A": evil}}, "headers"),
            ({"sender": f"{evil} <app@mail-a.test>"}, "from"),
            ({"to": [f"{evil} <a@x.example>"]}, "to"),
        ]:
            with self.subTest(field=key), self.assertRaises(ValidationError) as caught:
                self.accept(**fields)
            self.assertIn(key, caught.exception.message_dict)
        self.assertEqual((Message.objects.count(), MessageContent.objects.count()), (0, 0))

    def test_line_separators_refused(self):
        """U+2028, U+2029 and U+0085 are line breaks to Python's `str.splitlines()`: the `email` package raised
        ValueError on them (a 500); they are a field error, and nothing is stored."""
        for char in ("\u2028", "\u2029", "\x85"):
            for fields, key in [
                ({"subject": f"a{char}b"}, "subject"),
                ({"headers": {"X-A": f"a{char}b"}}, "headers"),
                ({"sender": f"A{char}B <app@mail-a.test>"}, "from"),
            ]:
                with self.subTest(char=repr(char), field=key), self.assertRaises(ValidationError) as caught:
                    self.accept(**fields)
                self.assertIn(key, caught.exception.message_dict)
        self.assertFalse(Message.objects.exists())

    def test_raw_and_structured_rules_live_in_the_service(self):
        """Rules the API serializer used to hold, now for every caller: raw MIME goes with an envelope and without
        structured fields; envelope addresses are bounded."""
        raw = b"From: a@mail-a.test\r\nSubject: x\r\n\r\nbody\r\n"
        for fields, key in [
            ({"raw": raw}, "envelope"),
            ({"raw": raw, "envelope_to": []}, "envelope"),
            ({"raw": raw, "envelope_to": ["x@example.com"], "to": ["y@example.com"]}, "raw"),
            ({"raw": raw, "envelope_to": ["N" * 400 + " <x@example.com>"]}, "envelope.to"),
            ({"raw": raw.decode() + "\ud800", "envelope_to": ["x@example.com"]}, "raw"),
        ]:
            with self.subTest(key=key), self.assertRaises(ValidationError) as caught:
                services.accept_messages(self.tenant_a, Submission(**fields))
            self.assertIn(key, caught.exception.message_dict)
        self.assertFalse(Message.objects.exists())

    def test_unstorable_metadata_and_tag_refused(self):
        """NUL and unpaired surrogates: PostgreSQL's jsonb and text columns refuse them (a 500 at the INSERT)."""
        for fields, key in [
            ({"metadata": {"a": "x\x00y"}}, "metadata"),
            ({"metadata": {"k\ud800": 1}}, "metadata"),
            ({"metadata": {"a": [{"b": "\udc00"}]}}, "metadata"),
            ({"tag": "t\ud800"}, "tag"),
        ]:
            with self.subTest(fields=repr(fields)), self.assertRaises(ValidationError) as caught:
                self.accept(**fields)
            self.assertIn(key, caught.exception.message_dict)
        self.assertFalse(Message.objects.exists())
        [message] = self.accept(metadata={"emoji": "😀", "nested": {"list": [1, "two"]}}).messages
        message.refresh_from_db()
        self.assertEqual(message.metadata, {"emoji": "😀", "nested": {"list": [1, "two"]}})

    def test_rows_written_in_bulk_read_back(self):
        """The plain-row INSERTs (queues/bulk.py) store what bulk_create stored: every column, ids that link."""
        import datetime

        from django.utils import timezone

        send_at = timezone.now() + datetime.timedelta(hours=2)
        Suppression.objects.create(tenant=self.tenant_a, address="gone@x.example", reason="hard_bounce")
        accepted = services.accept_messages(
            self.tenant_a,
            [
                Submission(
                    sender="app@mail-a.test",
                    to=["a@x.example", "gone@x.example"],
                    text="one",
                    tag="t1",
                    metadata={"n": 1},
                    send_at=send_at,
                ),
                Submission(
                    sender="app@mail-a.test", to=["b@y.example"], text="two", priority=MessagePriority.MARKETING
                ),
            ],
        )
        self.assertEqual([m.pk for m in accepted.messages], [m.pk for m in Message.objects.order_by("pk")])
        first, gone, second = (Message.objects.select_related("content").get(pk=m.pk) for m in accepted.messages)
        self.assertEqual(
            (first.tag, first.metadata, first.send_at, first.next_attempt_at), ("t1", {"n": 1}, send_at, send_at)
        )
        self.assertEqual((first.status, gone.status, second.status), ("queued", "suppressed", "queued"))
        self.assertEqual(first.content_id, gone.content_id)
        self.assertNotEqual(first.content_id, second.content_id)
        self.assertEqual(second.priority, MessagePriority.MARKETING)
        self.assertIn(b"two", bytes(second.content.raw))
        self.assertEqual(second.content.size, len(bytes(second.content.raw)))
        self.assertEqual(Message.uuid_from_verp(second.mail_from), second.uuid)
        self.assertEqual(
            sorted(MessageEvent.objects.values_list("message_id", "kind")),
            sorted([(first.pk, "accepted"), (gone.pk, "suppressed"), (second.pk, "accepted")]),
        )
        self.assertEqual(str(accepted.response["results"][1]["messages"][0]["id"]), str(second.uuid))

    @override_settings(MESSAGE_MAX_RECIPIENTS=1500)
    def test_suppression_list_asked_in_chunks(self):
        Suppression.objects.create(tenant=self.tenant_a, address="u1234@x.example", reason="hard_bounce")
        accepted = self.accept(to=[f"u{i}@x.example" for i in range(1300)])
        suppressed = [m.rcpt_to for m in accepted.messages if m.status == MessageStatus.SUPPRESSED]
        self.assertEqual(suppressed, ["u1234@x.example"])
        self.assertEqual(Message.objects.count(), 1300)
