"""
Sending one alert notification through one channel.

- Email: through the relay ALERT_SMTP_URL when set (independent of DeliveryHub's own delivery: the way to hear about
  it when the platform's delivery is what is broken), else through DeliveryHub itself as the tenant ALERT_EMAIL_TENANT
  (an ordinary transactional message from ALERT_EMAIL_FROM, on that tenant's transactional pool).
- Webhook: a JSON POST signed as Standard Webhooks specify (`webhook-id`, `webhook-timestamp`, `webhook-signature:
  v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the channel's `whsec_` secret; the `standardwebhooks` package).
- Slack-compatible webhook: a JSON `{"text": …}` POST (incoming webhooks of Slack, Mattermost, Rocket.Chat).

A tenant's webhook connects only where deliveryhub.netguard allows (public addresses unless the operator allows
private ones, never the platform's own ports): the name is resolved once, every address checked, and the connection
made to the checked address (TLS still verifies the name). Platform channels may point inside the operator's network.
No redirects are followed. Failures raise ChannelError with a message fit for the notification log.
"""

import http.client
import json
import socket
import ssl
from datetime import UTC, datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from standardwebhooks.webhooks import Webhook

from deliveryhub import netguard

from .choices import ChannelKind

USER_AGENT = "DeliveryHub-Alerts/1"
MAX_RESPONSE_READ = 4096


class ChannelError(Exception):
    """A notification that could not be delivered (the reason, in words)."""


def send(channel, payload, subject, text, *, message_id):
    """Deliver one notification through `channel` (an AlertChannel); returns a short description of what happened."""
    if channel.kind == ChannelKind.EMAIL:
        return send_email(channel.addresses(), subject, text)
    if channel.kind == ChannelKind.SLACK:
        body = json.dumps({"text": f"*{subject}*\n{text}"}).encode()
        return post(channel, body, {})
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    now = datetime.now(UTC)
    signature = Webhook(channel.secret).sign(message_id, now, body)
    headers = {"webhook-id": message_id, "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": signature}  # fmt: skip
    return post(channel, body, headers)


# ---------------------------------------------------------------------------------------------------------------------
# Email
# ---------------------------------------------------------------------------------------------------------------------


def _relay_connection(url):
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ChannelError("ALERT_SMTP_URL is smtp://[user:pass@]host:port (or smtps://…).")
    starttls = "starttls=1" in (parts.query or "") or "starttls=true" in (parts.query or "")
    return get_connection(
        "django.core.mail.backends.smtp.EmailBackend",
        host=parts.hostname,
        port=parts.port or (465 if parts.scheme == "smtps" else 25),
        username=parts.username or "",
        password=parts.password or "",
        use_ssl=parts.scheme == "smtps",
        use_tls=starttls,
        timeout=settings.ALERT_WEBHOOK_TIMEOUT,
        fail_silently=False,
    )


def send_email(addresses, subject, text):
    if settings.ALERT_SMTP_URL:
        try:
            sent = EmailMessage(subject, text, settings.ALERT_EMAIL_FROM, addresses,
                                connection=_relay_connection(settings.ALERT_SMTP_URL)).send()  # fmt: skip
        except (OSError, ValueError) as error:
            raise ChannelError(f"The alert relay refused or failed: {error}") from None
        if not sent:
            raise ChannelError("The alert relay accepted nothing.")
        return f"sent to {len(addresses)} address(es) through the alert relay"
    if settings.ALERT_EMAIL_TENANT:
        return _send_through_deliveryhub(addresses, subject, text)
    raise ChannelError("Alert email is not configured: set DELIVERYHUB_ALERT_SMTP_URL or "
                       "DELIVERYHUB_ALERT_EMAIL_TENANT.")


def _send_through_deliveryhub(addresses, subject, text):
    from django.core.exceptions import ValidationError

    from deliveryhub.models import Tenant
    from queues.services import Submission, accept_messages

    tenant = Tenant.objects.filter(slug=settings.ALERT_EMAIL_TENANT, is_active=True).first()
    if tenant is None:
        raise ChannelError(f"ALERT_EMAIL_TENANT {settings.ALERT_EMAIL_TENANT!r} is not an active tenant.")
    try:
        accepted = accept_messages(tenant, Submission(sender=settings.ALERT_EMAIL_FROM, to=list(addresses),
                                                      subject=subject, text=text, tag="alert"))  # fmt: skip
    except ValidationError as error:
        raise ChannelError(f"DeliveryHub refused the alert email: {'; '.join(error.messages)}") from None
    return f"queued as {len(accepted.messages)} message(s) of tenant {tenant.slug}"


# ---------------------------------------------------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------------------------------------------------


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a checked address (the URL's host name still goes in the Host header)."""

    def __init__(self, host, port, address, **kwargs):
        super().__init__(host, port, **kwargs)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to a checked address; the certificate is verified for the URL's host name."""

    def __init__(self, host, port, address, **kwargs):
        super().__init__(host, port, **kwargs)
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _target(channel):
    """(scheme, host, port, path, checked address) of the channel's URL, or ChannelError."""
    parts = urlsplit(channel.target.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ChannelError("The webhook URL is not an http(s) URL.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    allow_private = True if channel.tenant_id is None else None  # platform channels: the operator's own network
    try:
        addresses = netguard.resolve(parts.hostname)
        for address in addresses:
            netguard.check_address(address, port, allow_private=allow_private)
    except netguard.TargetNotAllowed as error:
        raise ChannelError(f"Not sent: {error}") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path, str(addresses[0])


def post(channel, body, headers):
    scheme, host, port, path, address = _target(channel)
    timeout = settings.ALERT_WEBHOOK_TIMEOUT
    if scheme == "https":
        context = ssl.create_default_context()
        if settings.SMTP_TLS_CA_FILE:
            context.load_verify_locations(settings.SMTP_TLS_CA_FILE)
        connection = _PinnedHTTPSConnection(host, port, address, timeout=timeout, context=context)
    else:
        connection = _PinnedHTTPConnection(host, port, address, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json",
                                                             "User-Agent": USER_AGENT, **headers})  # fmt: skip
        response = connection.getresponse()
        response.read(MAX_RESPONSE_READ)
    except (OSError, http.client.HTTPException) as error:
        raise ChannelError(f"The webhook could not be reached: {error}") from None
    finally:
        connection.close()
    if not 200 <= response.status < 300:
        raise ChannelError(f"The webhook answered HTTP {response.status}.")
    return f"HTTP {response.status}"
