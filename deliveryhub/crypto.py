"""
Encryption at rest for secrets (DKIM private keys, SMTP relay passwords): Fernet with the data key(s)
in DELIVERYHUB_DATA_KEY. Several keys (comma-separated, newest first) allow rotation: the first
encrypts, all decrypt; `rotate_data_key` re-encrypts every stored secret with the first.
"""

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

__all__ = ["EncryptedTextField", "InvalidToken", "decrypt", "digest", "encrypt", "fernet"]


def _fernet_for(raw):
    """A Fernet for one configured key: a Fernet key as is, anything else stretched with SHA-256."""
    raw = raw.strip()
    try:
        return Fernet(raw.encode())
    except ValueError:
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw.encode()).digest()))


def fernet(keys=None):
    keys = keys if keys is not None else settings.DATA_KEY.split(",")
    return MultiFernet([_fernet_for(key) for key in keys if key.strip()])


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    return fernet().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    """Re-encrypt a token with the newest data key."""
    return fernet().rotate(token.encode()).decode()


def digest(value: str) -> str:
    """HMAC-SHA256(pepper, value): how API keys and SMTP credentials are stored."""
    return hmac.new(settings.API_KEY_PEPPER.encode(), value.encode(), hashlib.sha256).hexdigest()


class EncryptedTextField(models.TextField):
    """A text field stored encrypted with the data key; the database never sees the plaintext.

    Every model using it is found by `rotate_data_key` through `encrypted_fields()`.
    """

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)


def encrypted_fields():
    """(model, field) for every EncryptedTextField in the project."""
    from django.apps import apps

    return [
        (model, field)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, EncryptedTextField)
    ]
