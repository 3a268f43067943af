"""Models of the queues app: messages and their delivery record, and the sending configuration around them."""

from .campaigns import Campaign, CampaignMinute
from .config import BounceRule, Route, SmtpCredential, Suppression
from .contacts import Contact, ContactImport, ContactList, Subscription
from .messages import CapturedMessage, DeliveryAttempt, IdempotencyKey, Message, MessageContent, MessageEvent
from .webhooks import EventStream, FeedbackReport, StreamEntry, Webhook, WebhookDelivery

__all__ = [
    "BounceRule",
    "Campaign",
    "CampaignMinute",
    "CapturedMessage",
    "Contact",
    "ContactImport",
    "ContactList",
    "DeliveryAttempt",
    "EventStream",
    "FeedbackReport",
    "IdempotencyKey",
    "Message",
    "MessageContent",
    "MessageEvent",
    "Route",
    "StreamEntry",
    "SmtpCredential",
    "Subscription",
    "Suppression",
    "Webhook",
    "WebhookDelivery",
]
