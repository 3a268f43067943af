"""
Throttling of sign-in and second-factor attempts, counted in the `LoginFailure` table.

Failures are counted per account and per client address over the last `LOGIN_THROTTLE_WINDOW`
seconds. From `LOGIN_THROTTLE_SLOW_AFTER` failures on, each attempt is slowed down by
`LOGIN_THROTTLE_DELAY` seconds per extra failure (at most `LOGIN_THROTTLE_MAX_SLEEP`); from
`LOGIN_THROTTLE_LOCK_AFTER` failures on, attempts are refused outright, even with the right
password, until enough failures have left the window. Refused attempts are not counted again, so
a lock lasts at most one window after the last failure.

Each kind of attempt has a scope: password sign-ins count under the typed user name, second-factor
checks under "otp:<user name>". A client address counts every failure it made, whatever the scope.
"""

import ipaddress
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .constants import LOGIN_THROTTLE_MAX_SLEEP
from .models import LoginFailure

LOGIN = "login"
OTP = "otp"

USERNAME_MAX_LENGTH = LoginFailure._meta.get_field("username").max_length


def account_key(scope, username):
    """The name failures of this account are counted under (case-insensitive, scoped)."""
    name = (username or "").strip().lower()
    return (name if scope == LOGIN else f"{scope}:{name}")[:USERNAME_MAX_LENGTH]


def valid_ip(client_ip):
    """The address if it is one (REMOTE_ADDR may be empty or odd behind some proxies), else None."""
    try:
        return str(ipaddress.ip_address(client_ip)) if client_ip else None
    except ValueError:
        return None


def window_start(now=None):
    return (now or timezone.now()) - timedelta(seconds=settings.LOGIN_THROTTLE_WINDOW)


@dataclass(frozen=True)
class Verdict:
    """What the counts say about the next attempt: refused (`locked`, with a reason) and/or slowed (`delay`)."""

    account_failures: int
    address_failures: int
    locked: bool
    reason: str
    delay: float


def check(scope, username, client_ip):
    """Count recent failures of this account and address and decide whether the next attempt may go ahead."""
    client_ip = valid_ip(client_ip)
    recent = LoginFailure.objects.filter(time__gte=window_start())
    account = recent.filter(username=account_key(scope, username)).count()
    address = recent.filter(client_ip=client_ip).count() if client_ip else 0
    lock_after = settings.LOGIN_THROTTLE_LOCK_AFTER
    if account >= lock_after:
        reason = f"{account} failures for this account in the last {settings.LOGIN_THROTTLE_WINDOW} s"
    elif address >= lock_after:
        reason = f"{address} failures from {client_ip} in the last {settings.LOGIN_THROTTLE_WINDOW} s"
    else:
        reason = ""
    extra = max(account, address) - settings.LOGIN_THROTTLE_SLOW_AFTER + 1
    delay = min(settings.LOGIN_THROTTLE_DELAY * extra, LOGIN_THROTTLE_MAX_SLEEP) if extra > 0 else 0.0
    return Verdict(account, address, bool(reason), reason, max(delay, 0.0))


def admit(scope, username, client_ip):
    """Slow down if the counts say so, then return the verdict; the caller refuses the attempt if `locked`."""
    verdict = check(scope, username, client_ip)
    if verdict.delay > 0 and not verdict.locked:
        time.sleep(verdict.delay)
    return verdict


def record_failure(scope, username, client_ip):
    """Count one failed attempt, and drop failures that have left the window (nobody reads them again)."""
    LoginFailure.objects.filter(time__lt=window_start()).delete()
    return LoginFailure.objects.create(username=account_key(scope, username), client_ip=valid_ip(client_ip))


def reset(scope, username):
    """Forget this account's failures after a success (the address keeps the failures it made elsewhere)."""
    LoginFailure.objects.filter(username=account_key(scope, username)).delete()
