"""
Sending one alert notification through one channel.

- Email: through the relay ALERT_SMTP_URL when set (independent of DeliveryHub's own delivery: the way to hear about
  it when the platform's delivery is what is broken), else through DeliveryHub itself as the tenant ALERT_EMAIL_TENANT
  (an ordinary transactional message from ALERT_EMAIL_FROM, on that tenant's transactional pool).
- Webhook: a JSON POST signed as Standard Webhooks specify (`webhook-id`, `webhook-timestamp`, `webhook-signature:
  v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the channel's `whsec_` secret; the `standardwebhooks` package).
- Slack-compatible webhook: a JSON `{"text": …}` POST (incoming webhooks of Slack, Mattermost, Rocket.Chat).

Webhooks go out through the events webhooks' guarded POST (queues.webhooks.http): the name resolved once, every
address checked with deliveryhub.netguard (public addresses unless the operator allows private ones, never the
platform's own ports), the connection made to the checked address with TLS verified for the name, no redirects.
Failures raise ChannelError with a message fit for the notification log.
"""

import json
from datetime import UTC, datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from standardwebhooks.webhooks import Webhook

from queues.webhooks import http as webhook_http

from .choices import ChannelKind


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
# Webhooks: the same guarded POST as the events webhooks (queues.webhooks.http)
# ---------------------------------------------------------------------------------------------------------------------


def post(channel, body, headers):
    result = webhook_http.post(channel.target.strip(), body, headers, timeout=settings.ALERT_WEBHOOK_TIMEOUT)
    if result.status is None:
        raise ChannelError(f"Not sent: {result.error}")
    if not 200 <= result.status < 300:
        raise ChannelError(f"The webhook answered HTTP {result.status}.")
    return f"HTTP {result.status}"
