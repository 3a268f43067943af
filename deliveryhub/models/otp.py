"""
Second-factor devices (django-otp device models) whose secrets are encrypted at rest with the data key, as DKIM
keys are: the TOTP secret of an authenticator app, and the recovery codes.

django-otp's own `otp_totp`/`otp_static` models keep both in clear; their rows were moved here (encrypted) by
migration 0003 and their apps stay installed only so that migration can read them. `manage.py rotate_data_key`
re-encrypts these fields with every other `EncryptedTextField`.
"""

import hmac
import secrets
import time
from base64 import b32encode
from binascii import unhexlify
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import models
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP
from django_otp.util import random_hex

from ..crypto import EncryptedTextField

TOTP_KEY_BYTES = 20  # 160-bit secrets, as RFC 4226 recommends
RECOVERY_CODE_BYTES = 5  # 8 base32 characters


def new_totp_key():
    """A random TOTP secret, hex-encoded (as django-otp stores it, before our encryption)."""
    return random_hex(TOTP_KEY_BYTES)


def new_recovery_code():
    """A recovery code: 8 lower-case base32 characters."""
    return b32encode(secrets.token_bytes(RECOVERY_CODE_BYTES)).decode().lower()


class EncryptedTOTPDevice(TimestampMixin, ThrottlingMixin, Device):
    """An authenticator app (RFC 6238 TOTP): its secret encrypted at rest, a code accepted at most once.

    Codes within `tolerance` steps of now are accepted, each time step only once (`last_t`); wrong codes back
    off exponentially (django-otp's throttle: OTP_TOTP_THROTTLE_FACTOR seconds, doubling).
    """

    key = EncryptedTextField(default=new_totp_key, help_text="The hex-encoded secret, encrypted with the data key.")
    step = models.PositiveSmallIntegerField(default=30)
    t0 = models.BigIntegerField(default=0)
    digits = models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6)
    tolerance = models.PositiveSmallIntegerField(default=1)
    drift = models.SmallIntegerField(default=0)
    last_t = models.BigIntegerField(default=-1)

    class Meta(Device.Meta):
        verbose_name = "TOTP device"

    @property
    def bin_key(self):
        return unhexlify(self.key.encode())

    def get_throttle_factor(self):
        return settings.OTP_TOTP_THROTTLE_FACTOR

    def verify_token(self, token):
        if not self.verify_is_allowed()[0]:
            return False
        try:
            code = int(token)
        except (TypeError, ValueError):
            code = None
        totp = TOTP(self.bin_key, self.step, self.t0, self.digits, self.drift)
        totp.time = time.time()
        if code is not None and totp.verify(code, self.tolerance, self.last_t + 1):
            self.last_t = totp.t()
            self.drift = totp.drift
            self.throttle_reset(commit=False)
            self.set_last_used_timestamp(commit=False)
            self.save()
            return True
        self.throttle_increment(commit=True)
        return False

    @property
    def config_url(self):
        """The otpauth:// URL an authenticator app reads from the QR code."""
        issuer = settings.OTP_TOTP_ISSUER.replace(":", "")
        label = f"{issuer}:{self.user.get_username()}" if issuer else self.user.get_username()
        params = {"secret": b32encode(self.bin_key), "algorithm": "SHA1", "digits": self.digits, "period": self.step}
        if issuer:
            params["issuer"] = issuer
        return f"otpauth://totp/{quote(label)}?{urlencode(params, quote_via=quote)}"


class RecoveryCodeDevice(ThrottlingMixin, Device):
    """A user's set of single-use recovery codes (encrypted at rest); a code is deleted once used."""

    class Meta(Device.Meta):
        verbose_name = "recovery code set"

    def get_throttle_factor(self):
        return settings.OTP_STATIC_THROTTLE_FACTOR

    def verify_token(self, token):
        if not self.verify_is_allowed()[0]:
            return False
        given = str(token).encode()
        for code in self.codes.all():  # a handful of rows; encrypted, so compared here, not in SQL
            if hmac.compare_digest(code.code.encode(), given):
                code.delete()
                self.throttle_reset(commit=True)
                return True
        self.throttle_increment(commit=True)
        return False


class RecoveryCode(models.Model):
    """One recovery code of a `RecoveryCodeDevice`, encrypted with the data key."""

    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    code = EncryptedTextField()

    def __str__(self):
        return f"recovery code of {self.device.user}"
