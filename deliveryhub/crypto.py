"""
Encryption at rest: Fernet with the data key(s) in DELIVERYHUB_DATA_KEY for secrets (DKIM private keys,
SMTP relay passwords, the platform signing key), AES-256-GCM for large binary values (message bodies).
Several keys (comma-separated, newest first) allow rotation: the first encrypts, all decrypt;
`rotate_data_key` re-encrypts every stored value with the first.

Each data key has a public id (`key_id()`: a SHA-256 fingerprint, never the key): a configuration backup
names the key its secrets are encrypted with, and an encrypted body carries the id of its key.

Pseudonyms (`pseudonym()`): a keyed HMAC of a personal value (an email address) with
DELIVERYHUB_PSEUDONYM_KEY. The same address always gives the same pseudonym, so an erased recipient stays
suppressed and the audit log can be searched for an address, but nobody can read the address back.
"""

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

__all__ = [
    "Ciphertext", "EncryptedBinaryField", "EncryptedTextField", "InvalidToken", "decrypt", "digest", "encrypt",
    "fernet", "key_id", "key_id_of_token", "personal_marker", "pseudonym", "pseudonym_address",
]  # fmt: skip

PSEUDONYM_DOMAIN = "erased.invalid"  # pseudonymous addresses end with this (RFC 2606: never a real mailbox)
# An EncryptedBinaryField value: magic, 8-byte key id, 12-byte nonce, AES-GCM ciphertext and tag. The NUL byte
# makes it impossible for a message in clear (RFC 5322 text, which never holds NUL) to look encrypted.
BODY_MAGIC = b"\x00DHE1"
BODY_KEY_ID_BYTES = 8
BODY_NONCE_BYTES = 12


def _fernet_for(raw):
    """A Fernet for one configured key: a Fernet key as is, anything else stretched with SHA-256."""
    raw = raw.strip()
    try:
        return Fernet(raw.encode())
    except ValueError:
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw.encode()).digest()))


def configured_keys():
    """The data keys in DELIVERYHUB_DATA_KEY, newest first."""
    return [key.strip() for key in settings.DATA_KEY.split(",") if key.strip()]


def fernet(keys=None):
    keys = keys if keys is not None else configured_keys()
    return MultiFernet([_fernet_for(key) for key in keys if key.strip()])


def _key_material(raw):
    """The 32 bytes of one configured key (a Fernet key's decoded bytes, or SHA-256 of any other string)."""
    raw = raw.strip()
    try:
        Fernet(raw.encode())
        return base64.urlsafe_b64decode(raw.encode())
    except ValueError:
        return hashlib.sha256(raw.encode()).digest()


def key_id(raw=None):
    """The public id of a data key (the newest configured one by default): 16 hex digits of a SHA-256."""
    raw = raw if raw is not None else configured_keys()[0]
    return hashlib.sha256(b"deliveryhub data key id\0" + _key_material(raw)).hexdigest()[:16]


def key_id_of_token(token: str) -> str | None:
    """The id of the configured data key that decrypts a Fernet token, or None if none does."""
    for raw in configured_keys():
        try:
            _fernet_for(raw).decrypt(token.encode())
        except InvalidToken:
            continue
        return key_id(raw)
    return None


def _aesgcm_keys():
    """{8-byte key id: AESGCM} for every configured data key (HKDF-derived: never the Fernet keys themselves)."""
    keys = {}
    for raw in configured_keys():
        material = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"deliveryhub body encryption").derive(
            _key_material(raw)
        )
        keys[bytes.fromhex(key_id(raw))[:BODY_KEY_ID_BYTES]] = AESGCM(material)
    return keys


_aesgcm_cache = {}


def _aesgcm():
    """(newest key id, {key id: AESGCM}), cached per DATA_KEY value (rotation and tests change it)."""
    cached = _aesgcm_cache.get(settings.DATA_KEY)
    if cached is None:
        keys = _aesgcm_keys()
        cached = _aesgcm_cache[settings.DATA_KEY] = (next(iter(keys)), keys)
    return cached


def encrypt_bytes(plaintext: bytes) -> bytes:
    """AES-256-GCM with the newest data key: BODY_MAGIC + key id + nonce + ciphertext and tag."""
    newest, keys = _aesgcm()
    nonce = os.urandom(BODY_NONCE_BYTES)
    return BODY_MAGIC + newest + nonce + keys[newest].encrypt(nonce, plaintext, BODY_MAGIC + newest)


def is_encrypted_bytes(value: bytes) -> bool:
    return value[: len(BODY_MAGIC)] == BODY_MAGIC


def decrypt_bytes(value: bytes) -> bytes:
    """The plaintext of an `encrypt_bytes()` value; InvalidToken when no configured key opens it."""
    start = len(BODY_MAGIC)
    kid = value[start : start + BODY_KEY_ID_BYTES]
    nonce = value[start + BODY_KEY_ID_BYTES : start + BODY_KEY_ID_BYTES + BODY_NONCE_BYTES]
    ciphertext = value[start + BODY_KEY_ID_BYTES + BODY_NONCE_BYTES :]
    key = _aesgcm()[1].get(kid)
    if key is None:
        raise InvalidToken(f"Encrypted with data key {kid.hex()}, which is not configured.")
    try:
        return key.decrypt(nonce, ciphertext, BODY_MAGIC + kid)
    except InvalidTag:
        raise InvalidToken("The encrypted value was altered or the key is wrong.") from None


def rotate_bytes(value: bytes) -> bytes | None:
    """`value` re-encrypted with the newest key, or None if it already is (or is stored in clear)."""
    if not is_encrypted_bytes(value) or value[len(BODY_MAGIC) : len(BODY_MAGIC) + BODY_KEY_ID_BYTES] == _aesgcm()[0]:
        return None
    return encrypt_bytes(decrypt_bytes(value))


def pseudonym(value: str) -> str:
    """HMAC-SHA256(pseudonym key, normalised value), 32 hex digits: the same value always gives the same one."""
    normalised = value.strip().lower().encode()
    return hmac.new(settings.PSEUDONYM_KEY.encode(), normalised, hashlib.sha256).hexdigest()[:32]


def pseudonym_address(address: str) -> str:
    """The pseudonymous stand-in for an email address: <hmac>@erased.invalid (still shaped like an address)."""
    return f"{pseudonym(address)}@{PSEUDONYM_DOMAIN}"


def personal_marker(value):
    """How the audit log records a personal value: "pseudonym:<HMAC>" (lists element by element, dicts value by
    value under their keys; empty stays)."""
    if isinstance(value, list):
        return [personal_marker(item) for item in value]
    if isinstance(value, dict):
        return {key: personal_marker(item) for key, item in value.items()}
    if not isinstance(value, str) or not value:
        return value
    return f"pseudonym:{pseudonym(value)}"


def is_pseudonym_address(value: str) -> bool:
    return value.endswith("@" + PSEUDONYM_DOMAIN)


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


class Ciphertext(str):
    """A Fernet token to store as it is (a restored backup's secret): `EncryptedTextField` does not encrypt it again."""


class EncryptedTextField(models.TextField):
    """A text field stored encrypted with the data key; the database never sees the plaintext.

    Every model using it is found by `rotate_data_key` through `encrypted_fields()`.
    """

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        if isinstance(value, Ciphertext):
            return str(value)
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)


class EncryptedBinaryField(models.BinaryField):
    """Binary data (a message body) encrypted with AES-256-GCM under the data key when `enabled_setting` is on.

    Transparent to code that reads the field: values written in clear (the setting off, or rows from before it
    was turned on) read back as they are, encrypted ones are decrypted; so the setting can be switched either
    way at any time. `rotate_data_key` re-encrypts the encrypted rows with the newest key.
    """

    def __init__(self, *args, enabled_setting="", **kwargs):
        self.enabled_setting = enabled_setting
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.enabled_setting:
            kwargs["enabled_setting"] = self.enabled_setting
        return name, path, args, kwargs

    def encrypts(self):
        return not self.enabled_setting or bool(getattr(settings, self.enabled_setting))

    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        value = bytes(value)
        return decrypt_bytes(value) if is_encrypted_bytes(value) else value

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is not None and len(value) and self.encrypts():
            value = encrypt_bytes(bytes(value))
        return super().get_db_prep_value(value, connection, prepared)


def encrypted_fields(kind=EncryptedTextField):
    """(model, field) for every field of `kind` (EncryptedTextField or EncryptedBinaryField) in the project."""
    from django.apps import apps

    return [
        (model, field)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, kind)
    ]
