"""Retry timing: exponential backoff with jitter and a cap, receivers' hints, the retry horizon."""

import datetime

import pytest

from queues.delivery.backoff import is_expired, next_attempt_delay, parse_retry_hint


@pytest.fixture(autouse=True)
def _defaults(settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 300
    settings.DELIVERY_RETRY_MAX_SECONDS = 7200
    settings.DELIVERY_RETRY_HORIZON_SECONDS = 4 * 86400
    settings.DELIVERY_RETRY_JITTER = 0.1
    settings.DELIVERY_RETRY_HINT_MAX_SECONDS = 86400


@pytest.mark.parametrize(
    ("attempts", "expected"), [(1, 300), (2, 600), (3, 1200), (4, 2400), (5, 4800), (6, 7200), (20, 7200), (500, 7200)]
)
def test_grows_to_the_cap_with_jitter(attempts, expected):
    delays = [next_attempt_delay(attempts) for _ in range(200)]
    assert all(expected * 0.9 - 1 <= delay <= expected * 1.1 + 1 for delay in delays)
    assert len(set(delays)) > 1  # jittered


def test_without_jitter(settings):
    settings.DELIVERY_RETRY_JITTER = 0
    assert [next_attempt_delay(n) for n in (0, 1, 2, 3)] == [300, 300, 600, 1200]


def test_larger_hint_wins(settings):
    settings.DELIVERY_RETRY_JITTER = 0
    assert next_attempt_delay(1, hint=3600) == 3600
    assert next_attempt_delay(3, hint=60) == 1200


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("4.2.0 Greylisted, please try again in 300 seconds", 300),
        ("Please retry after 5 minutes", 300),
        ("try again in 2 hours", 7200),
        ("Too many connections, try again in 30s", 30),
        ("come back in 10 mins", 600),
        ("4.7.0 Try again later", None),
        ("421 4.7.0 [TSS04] Messages temporarily deferred due to user complaints - 4.16.55.1", None),
        ("Mailbox has 2 messages", None),
        ("", None),
        ("try again in 99999 hours", 86400),  # capped
    ],
)
def test_parse_retry_hint(text, seconds):
    assert parse_retry_hint(text) == seconds


def test_is_expired(settings):
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    assert not is_expired(start, start + datetime.timedelta(days=3, hours=23))
    assert is_expired(start, start + datetime.timedelta(days=4))
    settings.DELIVERY_RETRY_HORIZON_SECONDS = 3600
    assert is_expired(start, start + datetime.timedelta(hours=1, seconds=1))
