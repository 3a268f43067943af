"""Models of the queues app: messages and their delivery record, and the sending configuration around them."""

from .campaigns import Campaign, CampaignMinute
from .config import BounceRule, Route, SmtpCredential, Suppression
from .contacts import Contact, ContactImport, ContactList, Subscription
from .messages import CapturedMessage, DeliveryAttempt, IdempotencyKey, Message, MessageContent, MessageEvent

__all__ = [
    "BounceRule",
    "Campaign",
    "CampaignMinute",
    "CapturedMessage",
    "Contact",
    "ContactImport",
    "ContactList",
    "DeliveryAttempt",
    "IdempotencyKey",
    "Message",
    "MessageContent",
    "MessageEvent",
    "Route",
    "SmtpCredential",
    "Subscription",
    "Suppression",
]
