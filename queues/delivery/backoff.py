"""Retry timing (RFC 5321 4.5.4.1): back off from minutes to hours, honour "try again in N" hints, give up after
a horizon. Knobs: DELIVERY_RETRY_BASE_SECONDS, DELIVERY_RETRY_MAX_SECONDS, DELIVERY_RETRY_HORIZON_SECONDS,
DELIVERY_RETRY_JITTER, DELIVERY_RETRY_HINT_MAX_SECONDS."""

from __future__ import annotations

import datetime
import random
import re

from django.conf import settings

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hr": 3600, "hour": 3600}
_HINT_RE = re.compile(
    r"\b(?:try|retry|again|resend|back|wait|later|after|in)\b\D{0,20}?"  # "try again in", "retry after", "come back in"
    r"(\d{1,6})\s*(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?)\b",
    re.IGNORECASE,
)


def parse_retry_hint(text: str) -> int | None:
    """Seconds a reply asks us to wait ("try again in 5 minutes", "retry after 300 seconds"), or None."""
    if not text:
        return None
    match = _HINT_RE.search(text)
    if match is None:
        return None
    unit = match.group(2).lower().rstrip("s") or "s"
    seconds = int(match.group(1)) * _UNITS.get(unit, _UNITS.get(unit[0], 1))
    return min(seconds, settings.DELIVERY_RETRY_HINT_MAX_SECONDS) if seconds > 0 else None


def next_attempt_delay(attempts: int, *, hint: int | None = None) -> int:
    """Seconds to wait before the next try after `attempts` failed tries (1 = the first failure).

    base × 2^(attempts-1), capped at the maximum, with ±jitter so that a burst of deferrals does not return as one
    burst; a larger hint from the receiver wins.
    """
    base, cap = settings.DELIVERY_RETRY_BASE_SECONDS, settings.DELIVERY_RETRY_MAX_SECONDS
    exponent = max(0, attempts - 1)
    delay = cap if exponent >= 32 else min(cap, base * (2**exponent))
    jitter = settings.DELIVERY_RETRY_JITTER
    if jitter:
        delay = delay * random.uniform(1 - jitter, 1 + jitter)
    delay = max(1, round(delay))
    if hint is not None and hint > delay:
        return int(hint)
    return delay


def is_expired(first_attempt_or_created: datetime.datetime, now: datetime.datetime) -> bool:
    """Whether a message first tried (or accepted) at that time is past the retry horizon."""
    horizon = datetime.timedelta(seconds=settings.DELIVERY_RETRY_HORIZON_SECONDS)
    return now - first_attempt_or_created >= horizon
