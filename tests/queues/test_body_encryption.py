"""Message bodies encrypted at rest (ENCRYPT_MESSAGE_BODIES): the database holds only ciphertext, every reader sees
the plaintext (the delivery engine included: a real SMTP peer receives the message, DKIM-signed), the setting can be
switched either way, a changed byte is refused, and rotate_data_key re-encrypts bodies."""

import io

from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from deliveryhub.crypto import BODY_MAGIC, InvalidToken, key_id
from deliveryhub.testing.cases import TenantTestCase
from deliveryhub.testing.smtp import SMTPSink
from queues.models import CapturedMessage, Message, MessageContent, Route
from queues.testing import make_sending_domain, make_sending_ips

from .helpers import flush_redis, run_once, send

BODY = "The secret body text 4711"
KEY = Fernet.generate_key().decode()


def stored(content_id):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT raw FROM {MessageContent._meta.db_table} WHERE id = %s", [content_id])
        return bytes(cursor.fetchone()[0])


@override_settings(DATA_KEY=KEY)
class BodyEncryptionTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain = make_sending_domain(cls.tenant_a, "mail-a.test")

    def setUp(self):
        flush_redis()

    @override_settings(ENCRYPT_MESSAGE_BODIES=True)
    def test_database_holds_ciphertext_readers_see_plaintext(self):
        message = send(self.tenant_a, "r@example.com", text=BODY)[0]
        raw = stored(message.content_id)
        self.assertTrue(raw.startswith(BODY_MAGIC))
        self.assertEqual(raw[len(BODY_MAGIC) : len(BODY_MAGIC) + 8].hex(), key_id()[:16])
        self.assertNotIn(BODY.encode(), raw)
        self.assertNotIn(b"Subject:", raw)
        self.assertIn(BODY.encode(), bytes(MessageContent.objects.get(pk=message.content_id).raw))

    @override_settings(ENCRYPT_MESSAGE_BODIES=True)
    def test_the_engine_delivers_encrypted_bodies(self):
        make_sending_ips(("127.0.0.2",))
        sink = SMTPSink().start()
        self.addCleanup(sink.stop)
        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=sink.port)
        message = send(self.tenant_a, "r@example.com", text=BODY)[0]
        run_once()
        self.assertEqual(Message.objects.get(pk=message.pk).status, "delivered")
        self.assertEqual(len(sink.messages), 1)
        self.assertIn(BODY.encode(), sink.messages[0].data)
        self.assertIn(b"DKIM-Signature:", sink.messages[0].data)

    def test_switching_the_setting_either_way_keeps_every_body_readable(self):
        plain = send(self.tenant_a, "a@example.com", text="written in clear")[0]
        with override_settings(ENCRYPT_MESSAGE_BODIES=True):
            secret = send(self.tenant_a, "b@example.com", text="written encrypted")[0]
            self.assertIn(b"written in clear", bytes(MessageContent.objects.get(pk=plain.content_id).raw))
        self.assertFalse(stored(plain.content_id).startswith(BODY_MAGIC))
        self.assertIn(b"written encrypted", bytes(MessageContent.objects.get(pk=secret.content_id).raw))

    @override_settings(ENCRYPT_MESSAGE_BODIES=True)
    def test_a_changed_byte_is_refused(self):
        message = send(self.tenant_a, "r@example.com", text=BODY)[0]
        raw = bytearray(stored(message.content_id))
        raw[-5] ^= 0x01
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {MessageContent._meta.db_table} SET raw = %s WHERE id = %s",
                           [bytes(raw), message.content_id])  # fmt: skip
        with self.assertRaises(InvalidToken):
            MessageContent.objects.get(pk=message.content_id)

    @override_settings(ENCRYPT_MESSAGE_BODIES=True)
    def test_captured_mail_is_encrypted_too(self):
        captured = CapturedMessage.objects.create(rcpt_tos=["x@example.com"], raw=BODY.encode())
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT raw FROM {CapturedMessage._meta.db_table} WHERE id = %s", [captured.pk])
            self.assertNotIn(BODY.encode(), bytes(cursor.fetchone()[0]))
        self.assertEqual(bytes(CapturedMessage.objects.get(pk=captured.pk).raw), BODY.encode())

    @override_settings(ENCRYPT_MESSAGE_BODIES=True)
    def test_rotate_data_key_re_encrypts_bodies(self):
        message = send(self.tenant_a, "r@example.com", text=BODY)[0]
        new = Fernet.generate_key().decode()
        with override_settings(DATA_KEY=f"{new},{KEY}"):
            with self.assertRaisesMessage(CommandError, "not yet encrypted with the newest key"):
                call_command("rotate_data_key", "--check", stdout=io.StringIO())
            call_command("rotate_data_key", stdout=io.StringIO())
            call_command("rotate_data_key", "--check", stdout=io.StringIO())
            raw = stored(message.content_id)
            self.assertEqual(raw[len(BODY_MAGIC) : len(BODY_MAGIC) + 8].hex(), key_id(new)[:16])
        with override_settings(DATA_KEY=new):  # the old key can go now
            self.assertIn(BODY.encode(), bytes(MessageContent.objects.get(pk=message.content_id).raw))
