"""The outcome of one delivery attempt, as the sender reports it and the processor records it."""

from __future__ import annotations

from dataclasses import dataclass

DELIVERED = "delivered"
DEFERRED = "deferred"
BOUNCED = "bounced"


@dataclass
class SendResult:
    """One SMTP try for one message (one envelope recipient).

    `status` is delivered, deferred or bounced; `category` and `action` come from the classifier
    (`queues.delivery.classifier`); `retry_after` is a hint in seconds from the reply text, if any.
    `connect_error` marks failures before or outside an SMTP reply (refused, timed out, dropped): the
    message may or may not have arrived when the drop came after the data was sent.
    """

    status: str  # "delivered" | "deferred" | "bounced"
    code: int | None
    enhanced: str | None
    text: str
    category: str
    action: str
    retry_after: int | None = None
    connect_error: bool = False
    tls_version: str | None = None
    tls_verified: bool = False
    mx_host: str = ""
    source_ip: str = ""
    duration: float = 0.0

    @property
    def delivered(self) -> bool:
        return self.status == DELIVERED

    @property
    def smtp_output(self) -> str:
        """The reply as one line: `550 5.1.1 User unknown`, or the error text when there was no reply."""
        parts = [str(self.code) if self.code is not None else "", self.enhanced or "", self.text]
        return " ".join(part for part in parts if part)
