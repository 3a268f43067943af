"""Models of the queues app: messages and their delivery record, and the sending configuration around them."""

from .config import BounceRule, Route, SmtpCredential, Suppression
from .messages import CapturedMessage, DeliveryAttempt, IdempotencyKey, Message, MessageContent, MessageEvent

__all__ = [
    "BounceRule",
    "CapturedMessage",
    "DeliveryAttempt",
    "IdempotencyKey",
    "Message",
    "MessageContent",
    "MessageEvent",
    "Route",
    "SmtpCredential",
    "Suppression",
]
