"""
Throttling of password sign-ins, second-factor checks and SMTP AUTH, counted in the `LoginFailure` table.

Failures within the last `LOGIN_THROTTLE_WINDOW` seconds are counted three ways, and each count past its
threshold makes the next attempt wait, the wait doubling with every further failure (`LOGIN_THROTTLE_DELAY`
seconds first, at most `LOGIN_THROTTLE_MAX_DELAY`), counted from the last failure:

- per (account, client address), after `LOGIN_THROTTLE_SLOW_AFTER` failures: someone guessing one password;
- per client address, after `LOGIN_THROTTLE_ADDRESS_SLOW_AFTER` failures whatever the account: password spraying;
- per account, after `LOGIN_THROTTLE_ACCOUNT_SLOW_AFTER` failures from anywhere: a distributed guess. This one
  holds back only addresses that have themselves failed for the account.

So a client that has not been failing is never refused: ten wrong passwords from elsewhere do not lock an
account out (the denial of service a per-account lock would be). An attempt made while it must wait is
refused without checking the password, and is not counted again.

Scopes keep the kinds apart: password sign-ins count under the typed user name, second-factor checks under
"otp:<user name>", SMTP AUTH under "smtp:<user name>". A client address counts every failure it made,
whatever the scope.
"""

import ipaddress
import math
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Max, Q
from django.utils import timezone

from .models import LoginFailure

LOGIN = "login"
OTP = "otp"
SMTP = "smtp"

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


def backoff(failures, threshold):
    """Seconds to wait after `failures` failures when waits start at `threshold`: 0, then DELAY doubling, capped."""
    if failures < threshold:
        return 0.0
    return min(settings.LOGIN_THROTTLE_DELAY * 2 ** (failures - threshold), settings.LOGIN_THROTTLE_MAX_DELAY)


@dataclass(frozen=True)
class Verdict:
    """What the counts say about the next attempt: go ahead, or wait `wait` more seconds (`reason` says why)."""

    pair_failures: int  # this account from this address
    address_failures: int  # this address, any account
    account_failures: int  # this account, any address
    wait: float
    reason: str

    @property
    def allowed(self):
        return self.wait <= 0

    @property
    def wait_seconds(self):
        """The wait as people read it: whole seconds, at least 1 when refused."""
        return max(1, math.ceil(self.wait)) if not self.allowed else 0


def check(scope, username, client_ip, *, now=None):
    """Count recent failures of this account and address (one query) and say whether an attempt may go ahead now."""
    now = now or timezone.now()
    key, client_ip = account_key(scope, username), valid_ip(client_ip)
    mine = Q(username=key)
    here = Q(client_ip=client_ip) if client_ip else Q(client_ip__isnull=True)
    pair = mine & here
    counts = LoginFailure.objects.filter(mine | here, time__gte=window_start(now)).aggregate(
        pair=Count("pk", filter=pair),
        pair_last=Max("time", filter=pair),
        address=Count("pk", filter=here),
        address_last=Max("time", filter=here),
        account=Count("pk", filter=mine),
        account_last=Max("time", filter=mine),
    )
    window = settings.LOGIN_THROTTLE_WINDOW
    rules = [(counts["pair"], counts["pair_last"], settings.LOGIN_THROTTLE_SLOW_AFTER, "for this account from here")]
    if client_ip:  # failures without a known address are not one client's
        rules.append(
            (counts["address"], counts["address_last"], settings.LOGIN_THROTTLE_ADDRESS_SLOW_AFTER, f"from {client_ip}")
        )
    if counts["pair"]:  # an account under attack holds back only the addresses that failed for it
        rules.append((counts["account"], counts["account_last"], settings.LOGIN_THROTTLE_ACCOUNT_SLOW_AFTER,
                      "for this account from any address"))  # fmt: skip
    wait, reason = 0.0, ""
    for failures, last, threshold, where in rules:
        if not failures or last is None:
            continue
        remaining = backoff(failures, threshold) - (now - last).total_seconds()
        if remaining > wait:
            wait, reason = remaining, f"{failures} failures {where} in the last {window} s"
    return Verdict(counts["pair"], counts["address"] if client_ip else 0, counts["account"], wait, reason)


def record_failure(scope, username, client_ip):
    """Count one failed attempt, and drop failures that have left the window (nobody reads them again)."""
    LoginFailure.objects.filter(time__lt=window_start()).delete()
    return LoginFailure.objects.create(username=account_key(scope, username), client_ip=valid_ip(client_ip))


def reset(scope, username, client_ip):
    """After a success, forget this account's failures from this address (those from elsewhere still count)."""
    client_ip = valid_ip(client_ip)
    here = Q(client_ip=client_ip) if client_ip else Q(client_ip__isnull=True)
    LoginFailure.objects.filter(here, username=account_key(scope, username)).delete()
