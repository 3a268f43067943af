"""
DKIM key material: generating key pairs, their DNS public-key form, and parsing published DKIM records.

RSA keys publish `p=` as base64 DER SubjectPublicKeyInfo (RFC 6376 §3.6.1); Ed25519 keys publish the raw
32-byte public key (RFC 8463 §4). Private keys are PKCS#8 PEM, which is what OpenSSL signers load.
"""

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from .choices import DkimAlgorithm
from .constants import DKIM_TXT_STRING_MAX, RSA_PUBLIC_EXPONENT


def generate(algorithm, bits=None):
    """A new key pair: (private key PEM, public key as published in `p=`)."""
    if algorithm == DkimAlgorithm.ED25519_SHA256:
        private = ed25519.Ed25519PrivateKey.generate()
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        public = base64.b64encode(raw).decode()
    else:
        private = rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=bits)
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        public = base64.b64encode(der).decode()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, public


def key_type_tag(algorithm):
    """The `k=` tag of the DNS record."""
    return "ed25519" if algorithm == DkimAlgorithm.ED25519_SHA256 else "rsa"


def dkimpy_private_key(pem, algorithm):
    """The private key in the form dkimpy's `dkim.sign` takes (PEM for RSA, base64 raw seed for Ed25519)."""
    if algorithm != DkimAlgorithm.ED25519_SHA256:
        return pem.encode()
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw)


def split_txt(value, size=DKIM_TXT_STRING_MAX):
    """A long TXT value cut into character-strings of at most `size` bytes (ASCII values only)."""
    return [value[i : i + size] for i in range(0, len(value), size)] or [""]


def quote_txt(value):
    """Zone-file rdata for a TXT value: quoted strings of at most 255 bytes each."""
    return " ".join('"{}"'.format(part.replace("\\", "\\\\").replace('"', '\\"')) for part in split_txt(value))


def parse_tags(value, separator=";"):
    """Tag=value pairs of a DKIM/DMARC/MTA-STS record: (dict of tags in lower case, list of tags in order, errors)."""
    tags, order, errors = {}, [], []
    for part in value.split(separator):
        part = part.strip()
        if not part:
            continue
        name, eq, tag_value = part.partition("=")
        name = name.strip()
        if not eq or not name:
            errors.append(f"'{part}' is not a tag=value pair")
            continue
        key = name.lower()
        if key in tags:
            errors.append(f"the tag {name} appears twice")
        tags[key] = tag_value.strip()
        order.append(key)
    return tags, order, errors


def public_key_from_record(tags):
    """The `p=` value of a parsed DKIM record with folding whitespace removed."""
    return "".join(tags.get("p", "").split())
