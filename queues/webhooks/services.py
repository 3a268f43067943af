"""Verbs on webhooks: create (the secret shown once), change, rotate the secret, send a test event, redeliver."""

import base64
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from deliveryhub import audit
from deliveryhub.jobs import get_queue

from ..models import Webhook
from . import dispatch, stream

SECRET_BYTES = 24
SECRET_PREFIX = "whsec_"
EDITABLE = ("url", "events", "enabled", "description")


def new_secret():
    """A Standard Webhooks secret: `whsec_` + base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _enqueue(func, *args):
    transaction.on_commit(lambda: get_queue("default").enqueue(func, *args))


@transaction.atomic
def create_webhook(tenant, *, url, events=(), enabled=True, description="", acting_user=None):
    """A new endpoint that receives the events that follow (it starts at the stream's head). Returns (webhook,
    secret): the secret is shown once, stored encrypted."""
    with audit.acting_as(acting_user):
        secret = new_secret()
        webhook = Webhook(tenant=tenant, url=url, events=list(events), enabled=enabled, description=description,
                          secret=secret, cursor=stream.head())  # fmt: skip
        webhook.full_clean(exclude=["tenant", "secret"])
        webhook.save()
        return webhook, secret


@transaction.atomic
def update_webhook(webhook, *, acting_user=None, **changes):
    """Change url, events, enabled, description. Enabling a disabled endpoint clears its failure state (it resumes
    from its cursor: the events it missed are still sent); changing the event types drops a batch being retried (the
    next one is cut with the new types)."""
    with audit.acting_as(acting_user):
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise ValueError(f"Not editable: {', '.join(sorted(unknown))}")
        was_enabled, old_events = webhook.enabled, list(webhook.events)
        for name, value in changes.items():
            setattr(webhook, name, list(value) if name == "events" else value)
        webhook.full_clean(exclude=["tenant", "secret"])
        if webhook.enabled and not was_enabled:
            webhook.disabled_reason, webhook.failing_since, webhook.next_attempt_at = "", None, timezone.now()
        if webhook.events != old_events:
            webhook.batch_id, webhook.batch_end, webhook.batch_attempts = "", None, 0
        webhook.save()
        return webhook


@transaction.atomic
def rotate_secret(webhook, *, acting_user=None):
    """A new signing secret (returned, shown once); the old one keeps signing for WEBHOOK_SECRET_GRACE_SECONDS."""
    with audit.acting_as(acting_user):
        secret = new_secret()
        webhook.previous_secret = webhook.secret
        webhook.previous_secret_expires = timezone.now() + timedelta(seconds=settings.WEBHOOK_SECRET_GRACE_SECONDS)
        webhook.secret = secret
        webhook.save()
        until = f"{webhook.previous_secret_expires:%Y-%m-%d %H:%M} UTC"
        audit.record("webhook.rotate_secret", obj=webhook, message=f"Old secret signs until {until}.")
        return secret


@transaction.atomic
def send_test_event(webhook, *, acting_user=None):
    """POST a test event to the endpoint in the background (after commit); the delivery log shows how it went."""
    with audit.acting_as(acting_user):
        audit.record("webhook.test", obj=webhook)
        _enqueue(dispatch.send_test, webhook.pk)


@transaction.atomic
def redeliver(delivery, *, acting_user=None):
    """Send a logged delivery's events again, in the background (the cursor does not move)."""
    with audit.acting_as(acting_user):
        if delivery.first_position is None:
            raise ValidationError("Only deliveries of events can be sent again.")
        audit.record("webhook.redeliver", obj=delivery.webhook, message=f"Delivery {delivery.batch_id} sent again.")
        _enqueue(dispatch.redeliver, delivery.pk)
