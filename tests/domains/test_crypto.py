"""Private keys are encrypted at rest; rotating the data key keeps every key usable."""

import base64
import io

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase, database_text
from domains import services
from domains.choices import DkimAlgorithm
from domains.keys import dkimpy_private_key
from domains.models import DkimKey
from queues.models import Route

RELAY_PASSWORD = "relay-Secret-4711"
OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def raw_column(model, column, pk):
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}" FROM "{model._meta.db_table}" WHERE id = %s', [pk])
        return cursor.fetchone()[0]


def raw_private_column(key):
    return raw_column(DkimKey, "private_key", key.pk)


@override_settings(DATA_KEY=OLD_KEY)
class EncryptionAtRestTest(TenantTestCase):
    def setUp(self):
        self.domain = services.create_domain(self.tenant_a, "example.test", ed25519=True)
        self.keys = list(DkimKey.objects.filter(domain=self.domain))
        self.route = Route.objects.create(
            tenant=self.tenant_a, pattern="*", host="relay.example.test", username="app", password=RELAY_PASSWORD
        )

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
            if key.algorithm == DkimAlgorithm.ED25519_SHA256:  # the raw seed dkimpy signs with
                self.assertNotIn(dkimpy_private_key(pem, key.algorithm).decode(), dump)
        self.assertNotIn(RELAY_PASSWORD, dump)  # every app's secrets: relay passwords too
        self.assertTrue(raw_column(Route, "password", self.route.pk).startswith("gAAAAA"))
        # and no audit entry carries it either
        for entry in AuditEntry.objects.filter(object_type="domains.dkimkey"):
            self.assertNotIn("private_key", entry.postchange or {})

    def test_rotate_data_key_keeps_every_key_usable(self):
        pems = {key.pk: key.private_key_pem() for key in self.keys}
        before = {key.pk: raw_private_column(key) for key in self.keys}
        route_before = raw_column(Route, "password", self.route.pk)
        with override_settings(DATA_KEY=f"{NEW_KEY},{OLD_KEY}"):
            out = io.StringIO()
            with self.assertRaises(CommandError):
                call_command("rotate_data_key", "--check", stdout=out)
            call_command("rotate_data_key", stdout=out)
            self.assertIn("domains.DkimKey.private_key: 2 of 2 rows re-encrypted", out.getvalue())
            self.assertIn("queues.Route.password: 1 of 1 rows re-encrypted", out.getvalue())
            call_command("rotate_data_key", "--check", stdout=io.StringIO())  # nothing left on the old key
        self.assertTrue(AuditEntry.objects.filter(action="crypto.rotate_data_key").exists())
        with override_settings(DATA_KEY=NEW_KEY):  # the old key is gone: everything still decrypts
            for key in DkimKey.objects.filter(domain=self.domain):
                self.assertNotEqual(raw_private_column(key), before[key.pk])
                self.assertEqual(key.private_key_pem(), pems[key.pk])
                serialization.load_pem_private_key(key.private_key_pem().encode(), password=None)
            self.assertNotEqual(raw_column(Route, "password", self.route.pk), route_before)
            self.assertEqual(Route.objects.get(pk=self.route.pk).password, RELAY_PASSWORD)
        self.assertEqual({k.algorithm for k in self.keys}, {DkimAlgorithm.RSA_SHA256, DkimAlgorithm.ED25519_SHA256})

    def test_rotate_data_key_refuses_when_a_row_cannot_be_decrypted(self):
        missing_old_key = override_settings(DATA_KEY=NEW_KEY)  # the key the rows were written with is gone
        with missing_old_key, self.assertRaisesMessage(CommandError, "cannot be decrypted with any configured key"):
            call_command("rotate_data_key", stdout=io.StringIO())
        with override_settings(DATA_KEY=OLD_KEY):
            self.assertTrue(DkimKey.objects.get(pk=self.keys[0].pk).private_key_pem().startswith("-----BEGIN"))
