"""Private keys are encrypted at rest; rotating the data key keeps every key usable."""

import base64
import io

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase
from domains import services
from domains.choices import DkimAlgorithm
from domains.models import DkimKey

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def database_text():
    """Every value of every row of every table, as one string."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            parts += [str(value) for row in cursor.fetchall() for value in row]
    return "\n".join(parts)


def raw_private_column(key):
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key FROM domains_dkimkey WHERE id = %s", [key.pk])
        return cursor.fetchone()[0]


@override_settings(DATA_KEY=OLD_KEY)
class EncryptionAtRestTest(TenantTestCase):
    def setUp(self):
        self.domain = services.create_domain(self.tenant_a, "example.test", ed25519=True)
        self.keys = list(DkimKey.objects.filter(domain=self.domain))

    def test_private_key_is_nowhere_in_the_database_in_clear(self):
        dump = database_text()
        self.assertNotIn("PRIVATE KEY", dump)
        for key in self.keys:
            pem = key.private_key_pem()
            self.assertTrue(pem.startswith("-----BEGIN PRIVATE KEY-----"))
            body = "".join(pem.strip().splitlines()[1:-1])
            for line in pem.strip().splitlines()[1:-1]:
                self.assertNotIn(line, dump)
            self.assertNotIn(body[:40], dump)
            private = serialization.load_pem_private_key(pem.encode(), password=None)
            raw = private.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            self.assertNotIn(base64.b64encode(raw).decode()[:40], dump)
            self.assertTrue(raw_private_column(key).startswith("gAAAAA"))  # a Fernet token
        # and no audit entry carries it either
        for entry in AuditEntry.objects.filter(object_type="domains.dkimkey"):
            self.assertNotIn("private_key", entry.postchange or {})

    def test_rotate_data_key_keeps_every_key_usable(self):
        pems = {key.pk: key.private_key_pem() for key in self.keys}
        before = {key.pk: raw_private_column(key) for key in self.keys}
        with override_settings(DATA_KEY=f"{NEW_KEY},{OLD_KEY}"):
            out = io.StringIO()
            with self.assertRaises(CommandError):
                call_command("rotate_data_key", "--check", stdout=out)
            call_command("rotate_data_key", stdout=out)
            self.assertIn("domains.DkimKey.private_key: 2 of 2 rows re-encrypted", out.getvalue())
            call_command("rotate_data_key", "--check", stdout=io.StringIO())  # nothing left on the old key
        self.assertTrue(AuditEntry.objects.filter(action="crypto.rotate_data_key").exists())
        with override_settings(DATA_KEY=NEW_KEY):  # the old key is gone: everything still decrypts
            for key in DkimKey.objects.filter(domain=self.domain):
                self.assertNotEqual(raw_private_column(key), before[key.pk])
                self.assertEqual(key.private_key_pem(), pems[key.pk])
                serialization.load_pem_private_key(key.private_key_pem().encode(), password=None)
        self.assertEqual({k.algorithm for k in self.keys}, {DkimAlgorithm.RSA_SHA256, DkimAlgorithm.ED25519_SHA256})

    def test_rotate_data_key_refuses_when_a_row_cannot_be_decrypted(self):
        missing_old_key = override_settings(DATA_KEY=NEW_KEY)  # the key the rows were written with is gone
        with missing_old_key, self.assertRaisesMessage(CommandError, "cannot be decrypted with any configured key"):
            call_command("rotate_data_key", stdout=io.StringIO())
        with override_settings(DATA_KEY=OLD_KEY):
            self.assertTrue(DkimKey.objects.get(pk=self.keys[0].pk).private_key_pem().startswith("-----BEGIN"))
