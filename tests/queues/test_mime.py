"""The structured-message writer (queues/mime.py): what it writes reads back, with Python's `email` parser as the
receiver, to exactly what was given; it is 7-bit, CRLF, within line limits; and what it refuses, it refuses."""

import base64
import email
import email.policy
import random
from email.header import decode_header, make_header

from django.core.exceptions import ValidationError
from django.test import SimpleTestCase

from queues.mime import build_message, normalize_raw, parse_mailbox, parse_mailboxes

SENDER = "App <app@mail-a.test>"
TRICKY_TEXT = [
    "Hello",
    "Grüße aus Köln – “quoted” ‘single’ €",
    "日本語のメッセージ、とても長い件名がここにあります。" * 4,
    "Emoji 😀🎉 and a zero-width joiner 👩‍💻",
    'Quotes " and backslashes \\ and commas, semicolons; <angles> (comments) @at',
    "what =? looks ?= like half an encoded word =?utf-8?",
    "tabs\tinside\tthe\ttext",
    "x" * 300,  # one long word
    "word " * 190,  # many short words
    "a" * 997,
    "  leading and trailing spaces  ",
    "Mixed ASCII and ñ in a long subject that has to be folded over several lines because it is long " * 3,
]


def parse(data):
    return email.message_from_bytes(data, policy=email.policy.default)


def text_of(part):
    """A text part's content with the message's CRLF line breaks read as newlines."""
    return part.get_content().replace("\r\n", "\n")


def as_received(text):
    """What a body reads as: its CR, LF or CRLF line breaks as newlines, and a final one."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def build(**fields):
    fields.setdefault("sender", parse_mailbox(SENDER, "from"))
    fields.setdefault("to", parse_mailboxes(["to@example.com"], "to"))
    fields.setdefault("text", "Body")
    return build_message(**fields)


class WriterTest(SimpleTestCase):
    def assert_well_formed(self, data):
        """7-bit, CRLF only, every line within 998 octets and header lines within 78 where they fold."""
        data.decode("ascii")  # no 8-bit octet anywhere: neither SMTPUTF8 nor 8BITMIME needed
        self.assertNotRegex(data, rb"(?<!\r)\n|\r(?!\n)")
        head, _, body = data.partition(b"\r\n\r\n")
        for line in data.split(b"\r\n"):
            self.assertLessEqual(len(line), 998)
        for line in head.split(b"\r\n"):
            value = line.split(b":", 1)[1] if line[:1] not in b" \t" else line  # the value (the first line's)
            if b" " in value.strip():  # a line that could have been folded was
                self.assertLessEqual(len(line), 78, line)
            self.assertTrue(line.strip(), "no whitespace-only header line")

    def test_headers_read_back_exactly(self):
        for text in TRICKY_TEXT:
            with self.subTest(text=text[:40]):
                content = build(subject=text, headers={"X-Custom": text},
                                to=parse_mailboxes([f'"{text}" <to@example.com>' if '"' not in text else
                                                    "to@example.com"], "to"))  # fmt: skip
                self.assert_well_formed(content.data)
                msg = parse(content.data)
                self.assertEqual(str(msg["Subject"]), text.strip())
                self.assertEqual(str(msg["X-Custom"]), text.strip())
                self.assertEqual(msg["Message-ID"], content.message_id)
                self.assertEqual(msg["From"].addresses[0].display_name, "App")

    def test_display_names_read_back(self):
        for name in ["Smith, John", 'The "Boss"', "Back\\slash", "Jürgen Müller", "李小龙", "A" * 200, "=?x?=",
                     "a.b@c", "Ünïcödé " * 30]:  # fmt: skip
            with self.subTest(name=name[:40]):
                mailbox = parse_mailbox("x@example.com", "to")._replace(display_name=name)
                content = build(sender=parse_mailbox(SENDER, "from")._replace(display_name=name), to=[mailbox])
                self.assert_well_formed(content.data)
                msg = parse(content.data)
                for header, addr in (("From", "app@mail-a.test"), ("To", "x@example.com")):
                    [address] = msg[header].addresses
                    self.assertEqual(address.addr_spec, addr)
                    if name.isascii():
                        self.assertEqual(address.display_name, name)
                    else:  # RFC 2047 decoding (the policy parser puts a space between adjacent words of a phrase)
                        raw = email.message_from_bytes(content.data, policy=email.policy.compat32)[header]
                        self.assertEqual(str(make_header(decode_header(raw))), f"{name} <{addr}>")

    def test_many_recipients_fold_between_addresses(self):
        to = parse_mailboxes([f"Person {i} <person{i}@example.com>" for i in range(300)], "to")
        content = build(to=to)
        self.assert_well_formed(content.data)
        self.assertEqual(len(parse(content.data)["To"].addresses), 300)

    def test_bodies_read_back_exactly(self):
        bodies = [
            "Short ASCII lines\nsecond line\n",
            "x" * 5000,  # one long line: quoted-printable with soft breaks
            "a = b and c=d at the end=\n",
            "trailing space \ntrailing tab\t\n",
            ".leading dot\nFrom the start\n.\n",
            "Grüße\r\naus\rKöln\n",
            "中文内容" * 500,  # base64 is shorter than quoted-printable
            "line separator \u2028 and NEL \x85 stay characters in a body\n",
            "no final newline",
            "\n\n\nblank lines\n\n",
        ]
        for text in bodies:
            for html in ("", "<p>" + text + "</p>"):
                with self.subTest(text=text[:30], html=bool(html)):
                    content = build(text=text, html=html)
                    self.assert_well_formed(content.data)
                    msg = parse(content.data)
                    self.assertEqual(text_of(msg.get_body(("plain",))), as_received(text))
                    if html:
                        self.assertEqual(msg.get_content_type(), "multipart/alternative")
                        self.assertEqual(text_of(msg.get_body(("html",))), as_received(html))

    def test_html_only(self):
        msg = parse(build(text="", html="<b>hi</b>").data)
        self.assertEqual(msg.get_content_type(), "text/html")
        self.assertEqual(text_of(msg), "<b>hi</b>\n")

    def test_attachments(self):
        payload = bytes(range(256)) * 40
        names = ["report.pdf", "Prüfungsergebnis für das Jahr 2026 – endgültige Fassung.pdf", 'a "quoted" name.txt',
                 "x" * 200 + ".bin", "名前.csv"]  # fmt: skip
        attachments = [{"filename": n, "content_type": "text/csv" if n.endswith(".csv") else "application/pdf",
                        "content": base64.b64encode(payload).decode()} for n in names]  # fmt: skip
        content = build(text="see attached", html="<p>see attached</p>", attachments=attachments)
        self.assert_well_formed(content.data)
        msg = parse(content.data)
        self.assertEqual(msg.get_content_type(), "multipart/mixed")
        found = list(msg.iter_attachments())
        self.assertEqual([a.get_filename() for a in found], names)
        for part in found:
            self.assertEqual(part.get_payload(decode=True), payload)
            self.assertEqual(part["Content-Transfer-Encoding"], "base64")
        self.assertEqual(found[-1].get_content_type(), "text/csv")  # text attachments stay byte-exact (base64)
        self.assertEqual(text_of(msg.get_body(("html",))), "<p>see attached</p>\n")

    def test_random_text_reads_back(self):
        """Random mixes of the characters that make writers stumble, in every field."""
        rng = random.Random(11)
        alphabet = "abc XYZ  ,;:\"'()<>@.=?_-\\üéß中文😀\t"
        for _ in range(300):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 150))).strip(" \t") or "x"
            content = build(subject=text, headers={"X-Random": text}, text=text, attachments=[
                {"filename": text, "content": "aGk="}])  # fmt: skip
            self.assert_well_formed(content.data)
            msg = parse(content.data)
            self.assertEqual(str(msg["Subject"]), text)
            self.assertEqual(str(msg["X-Random"]), text)
            self.assertEqual(next(msg.iter_attachments()).get_filename(), text)

    def test_encoded_words_from_the_client_are_decoded_and_checked(self):
        word = "=?utf-8?b?" + base64.b64encode("Grüße".encode()).decode() + "?="
        content = build(subject=f"{word} {word}", headers={"X-Name": word})
        msg = parse(content.data)
        self.assertEqual(str(msg["Subject"]), "GrüßeGrüße")  # whitespace between two encoded words is not text
        self.assertEqual(str(msg["X-Name"]), "Grüße")
        self.assertEqual(content.subject, "GrüßeGrüße")

    def test_encoded_word_header_injection_refused(self):
        """An encoded word that decodes to CR/LF would become a real header once decoded (the `email` package wrote
        `Bcc: evil@x` as its own line): refused, in every header field."""
        crlf = "=?utf-8?b?" + base64.b64encode(b"Hi\r\nBcc: evil@example.com").decode() + "?="
        for fields in [{"subject": crlf}, {"subject": "=?utf-8?q?Hi=0D=0ABcc:_evil@example.com?="},
                       {"headers": {"X-A": crlf}}, {"subject": "=?utf-8?q?tab=09ok_but_nul=00?="},
                       {"subject": "=?utf-8?b?!!!?="}, {"subject": "=?no-such-charset?q?x?="},
                       {"subject": "=?utf-8?b?" + base64.b64encode(b"\xff\xfe").decode() + "?="}]:  # fmt: skip
            with self.subTest(fields=fields), self.assertRaises(ValidationError) as caught:
                build(**fields)
            self.assertEqual(set(caught.exception.message_dict), {next(iter(fields))})
        for value in [f"Name {crlf} <x@example.com>", f"{crlf} <x@example.com>"]:
            with self.subTest(value=value), self.assertRaises(ValidationError):
                parse_mailbox(value, "to")

    def test_line_separators_and_controls_refused_in_headers(self):
        for char in ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x7f", "\x9b", "\r", "\n", "\x00", "\ud800"]:
            for fields in [{"subject": f"a{char}b"}, {"headers": {"X-A": f"a{char}b"}},
                           {"attachments": [{"filename": f"a{char}b", "content": "aGk="}]}]:  # fmt: skip
                with self.subTest(char=repr(char), field=next(iter(fields))), self.assertRaises(ValidationError):
                    build(**fields)
            with self.subTest(char=repr(char), field="display name"), self.assertRaises(ValidationError):
                parse_mailbox(f"Na{char}me <x@example.com>", "to")

    def test_bodies_refuse_nul_and_surrogates(self):
        for text in ["a\x00b", "a\ud800b"]:
            for field in ("text", "html"):
                with self.subTest(text=repr(text), field=field), self.assertRaises(ValidationError) as caught:
                    build(**{field: text})
                self.assertIn(field, caught.exception.message_dict)

    def test_raw_text_with_surrogates_refused(self):
        with self.assertRaises(ValidationError):
            normalize_raw("From: a@mail-a.test\r\n\r\nbad \ud800\r\n")
