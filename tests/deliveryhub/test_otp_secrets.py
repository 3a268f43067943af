"""TOTP secrets and recovery codes are encrypted at rest with the data key, rotated by `rotate_data_key`, and the
migration moved django-otp's clear rows into them."""

import importlib
import io
from base64 import b32encode

from cryptography.fernet import Fernet
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from deliveryhub import otp
from deliveryhub.models import EncryptedTOTPDevice, RecoveryCode, RecoveryCodeDevice
from deliveryhub.testing.cases import TenantTestCase, app_code, database_text

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
migration = importlib.import_module("deliveryhub.migrations.0004_move_otp_devices_encrypted")


def raw(table, column):
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}" FROM "{table}"')
        return [row[0] for row in cursor.fetchall()]


@override_settings(DATA_KEY=OLD_KEY, OTP_TOTP_THROTTLE_FACTOR=0, OTP_STATIC_THROTTLE_FACTOR=0)
class OTPSecretsAtRestTest(TenantTestCase):
    def setUp(self):
        self.device = EncryptedTOTPDevice.objects.create(user=self.alice, name="phone", confirmed=False)
        self.codes = otp.confirm_totp_device(self.device, acting_user=self.alice)

    def test_secret_and_recovery_codes_are_nowhere_in_the_database_in_clear(self):
        device = EncryptedTOTPDevice.objects.get(pk=self.device.pk)
        dump = database_text()
        self.assertNotIn(device.key, dump)  # hex, as django-otp would store it
        self.assertNotIn(b32encode(device.bin_key).decode().rstrip("="), dump)  # as the app shows it
        for code in self.codes:
            self.assertNotIn(code, dump)
        self.assertTrue(all(v.startswith("gAAAAA") for v in raw("deliveryhub_encryptedtotpdevice", "key")))
        self.assertTrue(all(v.startswith("gAAAAA") for v in raw("deliveryhub_recoverycode", "code")))
        self.assertTrue(device.verify_token(app_code(device)))
        recovery = RecoveryCodeDevice.objects.get(user=self.alice)
        self.assertFalse(recovery.verify_token("notacode"))
        self.assertTrue(recovery.verify_token(self.codes[0]))
        self.assertFalse(recovery.verify_token(self.codes[0]), "a recovery code works once")
        self.assertEqual(RecoveryCode.objects.count(), len(self.codes) - 1)

    def test_rotate_data_key_covers_them(self):
        before = raw("deliveryhub_encryptedtotpdevice", "key") + raw("deliveryhub_recoverycode", "code")
        with override_settings(DATA_KEY=f"{NEW_KEY},{OLD_KEY}"):
            out = io.StringIO()
            call_command("rotate_data_key", stdout=out)
        self.assertIn("deliveryhub.EncryptedTOTPDevice.key: 1 of 1 rows re-encrypted", out.getvalue())
        self.assertIn(f"deliveryhub.RecoveryCode.code: {len(self.codes)} of {len(self.codes)} rows", out.getvalue())
        with override_settings(DATA_KEY=NEW_KEY):  # the old key is gone: the app's codes and recovery codes work
            after = raw("deliveryhub_encryptedtotpdevice", "key") + raw("deliveryhub_recoverycode", "code")
            self.assertFalse(set(before) & set(after))
            device = EncryptedTOTPDevice.objects.get(pk=self.device.pk)
            self.assertTrue(device.verify_token(app_code(device)))
            self.assertTrue(RecoveryCodeDevice.objects.get(user=self.alice).verify_token(self.codes[-1]))


@override_settings(DATA_KEY=OLD_KEY)
class MoveFromDjangoOTPTest(TenantTestCase):
    def test_migration_encrypts_existing_devices_and_removes_the_clear_rows(self):
        old = TOTPDevice.objects.create(user=self.bob, name="old phone", confirmed=True, last_t=123, drift=1)
        static = StaticDevice.objects.create(user=self.bob, name="Recovery codes", confirmed=True)
        for token in ("aaaa2222", "bbbb3333"):
            StaticToken.objects.create(device=static, token=token)
        secret = old.key

        migration.encrypt_devices(apps, connection.schema_editor())

        self.assertFalse(TOTPDevice.objects.exists())
        self.assertFalse(StaticToken.objects.exists())
        moved = EncryptedTOTPDevice.objects.get(user=self.bob)
        self.assertEqual((moved.name, moved.confirmed, moved.key, moved.last_t, moved.drift),
                         ("old phone", True, secret, 123, 1))  # fmt: skip
        self.assertEqual(moved.created_at, old.created_at)
        self.assertNotIn(secret, database_text())
        codes = RecoveryCodeDevice.objects.get(user=self.bob).codes.all()
        self.assertEqual(sorted(code.code for code in codes), ["aaaa2222", "bbbb3333"])
        self.assertNotIn("aaaa2222", database_text())
