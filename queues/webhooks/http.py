"""
One guarded HTTP POST to a tenant's webhook URL.

The URL's host is resolved once and every address is checked with the platform's outbound policy
(`deliveryhub.netguard`: no loopback, private, link-local/metadata, … addresses unless the operator allows private
targets, and never the platform's own ports on this host); the connection then goes to the checked address, not to
the name again (a name that resolves differently a moment later cannot slip past), with TLS verified for the name.
Plain http is only for loopback targets while private targets are allowed (development and tests). Redirects are not
followed (a 3xx is a failed delivery); at most RESPONSE_READ_BYTES of the answer are read.
"""

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from deliveryhub import netguard

RESPONSE_READ_BYTES = 4096  # of an answer's body, read at most
RESPONSE_EXCERPT_CHARS = 1000  # kept in the delivery log
USER_AGENT = "DeliveryHub-Webhooks/1"


@dataclass
class PostResult:
    """How one POST went: the status (None when no answer came), an excerpt of the answer, or the error."""

    status: int | None
    excerpt: str
    error: str
    duration: float


def _target(url):
    """(scheme, host, port, path) of a webhook URL; ValidationError if it is not an http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError({"url": "Enter a valid URL."}) from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError({"url": "Use an https:// URL."})
    if parts.username or parts.password:
        raise ValidationError({"url": "Credentials in the URL are not allowed: use the signature to authenticate."})
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def check_url(url):
    """Refuse (ValidationError on `url`) a webhook URL the policy does not allow; return the checked addresses."""
    scheme, host, port, _ = _target(url)
    try:
        addresses = netguard.check_public_host(host, port)
    except netguard.TargetNotAllowed as exc:
        raise ValidationError({"url": str(exc)}) from None
    if scheme == "http" and not (netguard.private_targets_allowed() and all(a.is_loopback for a in addresses)):
        raise ValidationError({"url": "Use an https:// URL (plain http only to loopback, where an operator allows)."})
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, address, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((str(self._address), self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, address, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._address = address

    def connect(self):
        sock = socket.create_connection((str(self._address), self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _tls_context():
    context = ssl.create_default_context()
    if settings.SMTP_TLS_CA_FILE:
        context.load_verify_locations(settings.SMTP_TLS_CA_FILE)
    return context


def post(url, body, headers, timeout=None):
    """POST `body` (bytes) to `url` with `headers` under the outbound policy; a PostResult, never an exception."""
    timeout = timeout or settings.WEBHOOK_TIMEOUT_SECONDS
    started = time.monotonic()

    def failed(error, status=None, excerpt=""):
        return PostResult(status, excerpt, error[:500], time.monotonic() - started)

    try:
        scheme, host, port, path = _target(url)
        addresses = check_url(url)
    except ValidationError as exc:
        return failed("; ".join(exc.message_dict.get("url", exc.messages)))
    address = sorted(addresses, key=lambda a: a.version)[0]  # IPv4 first
    try:
        netguard.check_address(address, port)  # the address actually connected to
    except netguard.TargetNotAllowed as exc:
        return failed(str(exc))
    if scheme == "http" and not ipaddress.ip_address(address).is_loopback:
        return failed("Plain http is only allowed to loopback.")
    if scheme == "https":
        conn = _PinnedHTTPSConnection(address, host, port, timeout=timeout, context=_tls_context())
    else:
        conn = _PinnedHTTPConnection(address, host, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers,
        })  # fmt: skip
        response = conn.getresponse()
        excerpt = response.read(RESPONSE_READ_BYTES).decode("utf-8", "replace")[:RESPONSE_EXCERPT_CHARS]
        return PostResult(response.status, excerpt, "", time.monotonic() - started)
    except TimeoutError:
        return failed(f"No answer within {timeout} s.")
    except ssl.SSLError as exc:
        return failed(f"TLS failed: {exc.reason or exc}")
    except (OSError, http.client.HTTPException) as exc:
        return failed(f"Connection failed: {exc}")
    finally:
        conn.close()
