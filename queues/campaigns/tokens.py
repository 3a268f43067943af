"""Signed tokens that identify a campaign message in public links: one-click unsubscribe and engagement tracking.

A token is lower-case base32 (no padding) of the message's UUID (16 bytes) followed by the first
TOKEN_DIGEST_BYTES of HMAC-SHA256(key, uuid): case-insensitive, so it survives as the local part of the
mailto: unsubscribe address too (`u-<token>@<return-path host>`). The key is derived from SECRET_KEY for this
purpose only. A tracked link is signed separately over (token, target URL), so a link can redirect only to the
URLs the campaign's own messages carried (no open redirect).
"""

import base64
import binascii
import hashlib
import hmac
import uuid

from django.conf import settings

from ..constants import CLICK_DIGEST_BYTES, TOKEN_DIGEST_BYTES, UNSUBSCRIBE_LOCAL_PREFIX

UUID_BYTES = 16
TOKEN_LENGTH = len(base64.b32encode(b"\0" * (UUID_BYTES + TOKEN_DIGEST_BYTES)).rstrip(b"="))


def _key(purpose):
    return hashlib.sha256(f"deliveryhub.campaigns.{purpose}:{settings.SECRET_KEY}".encode()).digest()


def _b32(data):
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def message_token(message_uuid):
    """The public token of a message (its UUID, signed)."""
    raw = message_uuid.bytes
    digest = hmac.new(_key("message"), raw, hashlib.sha256).digest()[:TOKEN_DIGEST_BYTES]
    return _b32(raw + digest)


def message_uuid_from_token(token):
    """The message UUID a token names, or None when it is malformed or its signature does not match."""
    if not isinstance(token, str) or len(token) != TOKEN_LENGTH:
        return None
    padded = token.upper() + "=" * (-len(token) % 8)
    try:
        data = base64.b32decode(padded)
    except (binascii.Error, ValueError):
        return None
    if _b32(data) != token.lower():  # one spelling only: the unused bits of the last character must be zero
        return None
    raw, digest = data[:UUID_BYTES], data[UUID_BYTES:]
    expected = hmac.new(_key("message"), raw, hashlib.sha256).digest()[:TOKEN_DIGEST_BYTES]
    if not hmac.compare_digest(digest, expected):
        return None
    return uuid.UUID(bytes=raw)


def unsubscribe_address(token, host):
    """The mailto: target of one-click unsubscribe: mail to it is read by the inbound SMTP listener."""
    return f"{UNSUBSCRIBE_LOCAL_PREFIX}-{token}@{host}"


def token_from_unsubscribe_address(address):
    """The token in an unsubscribe address (`u-<token>@host`), or None."""
    local = (address or "").rpartition("@")[0].lower()
    prefix = f"{UNSUBSCRIBE_LOCAL_PREFIX}-"
    return local[len(prefix) :] if local.startswith(prefix) else None


def click_signature(token, url):
    """The signature that lets `/t/c/<token>/<signature>?u=<url>` redirect to `url`."""
    digest = hmac.new(_key("click"), f"{token}\n{url}".encode(), hashlib.sha256).digest()[:CLICK_DIGEST_BYTES]
    return _b32(digest)


def click_signature_ok(token, url, signature):
    return isinstance(signature, str) and hmac.compare_digest(click_signature(token, url), signature.lower())


def public_url(path):
    return f"{settings.PUBLIC_URL}{path}"


def unsubscribe_url(token):
    return public_url(f"/u/{token}")
