"""The outcome of one delivery attempt as the wire gave it; what it means is the classifier's one decision."""

from __future__ import annotations

from dataclasses import dataclass

# Stages of a transaction an attempt can end at (the command a reply answers, or where the connection failed).
CONNECT = "connect"  # TCP connect
GREETING = "greeting"  # the server's 220
HANDSHAKE = "handshake"  # EHLO/HELO, STARTTLS, AUTH
ENVELOPE = "envelope"  # refused by us before anything went on the wire (an address we will not send)
MAIL_FROM = "MAIL FROM"
RCPT_TO = "RCPT TO"
DATA = "DATA"
END_OF_DATA = "end of data"


@dataclass
class SendResult:
    """One SMTP try for one message (one envelope recipient), unclassified.

    `code`, `enhanced` and `text` are the reply (RFC 5321 code, RFC 3463 enhanced status code, text with the lines
    of a multi-line reply joined), or no code and an error text when there was no reply to the command (refused, timed
    out, dropped, out of step: `connect_error`). `stage` says which command the reply answers or where the attempt
    failed. `outcome_unknown`: the connection was lost (or went out of step) after the data was sent, so the
    receiver may have taken the message. `retry_after`: seconds the sender itself knows to wait (a destination whose
    circuit breaker is open); the reply's own "try again in N" hints are read by the classifier. The category and
    action come from `classifier.classify_result()`.
    """

    code: int | None
    enhanced: str | None
    text: str
    stage: str = ""
    connect_error: bool = False
    outcome_unknown: bool = False
    tls_version: str | None = None
    tls_verified: bool = False
    mx_host: str = ""
    source_ip: str = ""
    duration: float = 0.0
    retry_after: int | None = None
    source_unusable: bool = False  # the source IP could not be bound on this host (EADDRNOTAVAIL)

    @property
    def accepted(self) -> bool:
        """The receiver took the message: a 2xx to the end of its own DATA, and nothing else."""
        return self.stage == END_OF_DATA and self.code is not None and 200 <= self.code < 300

    @property
    def smtp_output(self) -> str:
        """The reply as one line: `550 5.1.1 User unknown`, or the error text when there was no reply."""
        parts = [str(self.code) if self.code is not None else "", self.enhanced or "", self.text]
        return " ".join(part for part in parts if part)
