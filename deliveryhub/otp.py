"""
Second factor (TOTP with recovery codes): enforcement decorators, "sudo mode", and the OTP verbs.

- `otp_required_for_change(view, include_get=False)`: owners, admins and superusers change configuration
  only from a session verified with their second factor; others pass. Safe methods pass unless
  `include_get` (or use `otp_required`, for pages that exist only to change configuration).
- `sudo_required(view)`: sensitive acts (disable 2FA, new recovery codes, export a private key) need a
  fresh code, entered within `OTP_SUDO_SECONDS`.
- `OTPPendingMiddleware`: a session whose password was accepted but whose second factor is still to
  come reaches only the verify page (and logout) until it is verified.
"""

import functools
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django_otp import DEVICE_ID_SESSION_KEY, user_has_device
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import audit
from .constants import (
    OTP_RECOVERY_CODE_COUNT,
    OTP_RECOVERY_DEVICE_NAME,
    SESSION_OTP_PENDING_KEY,
    SESSION_OTP_SUDO_KEY,
)
from .permissions import Principal

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# ---------------------------------------------------------------------------------------------------------------------
# Session state
# ---------------------------------------------------------------------------------------------------------------------


def is_verified(request):
    user = getattr(request, "user", None)
    return bool(user is not None and getattr(user, "is_verified", lambda: False)())


def mark_verified(request, device):
    """Persist `device` as this session's second factor and start the sudo period."""
    otp_login(request, device)
    request.session[SESSION_OTP_SUDO_KEY] = time.time()
    request.session.pop(SESSION_OTP_PENDING_KEY, None)
    request.session.cycle_key()  # more privilege, new session id


def sudo_is_fresh(request):
    """Whether this session entered a valid code within OTP_SUDO_SECONDS."""
    verified_at = request.session.get(SESSION_OTP_SUDO_KEY)
    if not is_verified(request) or not isinstance(verified_at, (int, float)):
        return False
    return 0 <= time.time() - verified_at <= settings.OTP_SUDO_SECONDS


def safe_next(request, default=""):
    """The `next` URL of the request (POST, then GET) if it stays on this site, else `default`."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def return_url(request):
    """Where to come back after a detour to verify: this page or, for a POST, its `next` or the page its form was on."""
    if request.method in SAFE_METHODS:
        return request.get_full_path()
    posted_next = safe_next(request)
    if posted_next:
        return posted_next
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(referer)
        return f"{parts.path}?{parts.query}" if parts.query else parts.path
    return request.get_full_path()


def url_with_next(name, next_url):
    url = reverse(name)
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


def second_factor_redirect(request, name, message):
    """Send the user to verify (or sudo) with a way back, or to enrolment if they have no device yet."""
    if not user_has_device(request.user):
        name, message = "otp-enrol", "Set up two-factor authentication first: this needs a code from your app."
    messages.info(request, message)
    target = url_with_next(name, return_url(request))
    if request.headers.get("HX-Request"):  # an htmx fragment request: make the browser navigate, not swap
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return HttpResponseRedirect(target)


# ---------------------------------------------------------------------------------------------------------------------
# Decorators
# ---------------------------------------------------------------------------------------------------------------------


def otp_required_for_change(view=None, *, include_get=False):
    """Refuse unverified owners/admins/superusers a change: redirect to enrolment or verification.

    Use as `@otp_required_for_change`, `@otp_required_for_change(include_get=True)` or
    `otp_required_for_change(view, include_get=True)`. Safe methods pass unless `include_get`.
    """
    if view is None:
        return functools.partial(otp_required_for_change, include_get=include_get)

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method in SAFE_METHODS and not include_get:
            return view(request, *args, **kwargs)
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        principal = getattr(request, "principal", None) or Principal.of(request.user)
        tenant_id = getattr(getattr(request, "tenant", None), "pk", None)
        if principal.needs_otp(tenant_id) and not is_verified(request):
            return second_factor_redirect(
                request, "otp-verify", "This change needs your second factor: enter a code from your authenticator app."
            )
        return view(request, *args, **kwargs)

    return wrapped


def otp_required(view):
    """`otp_required_for_change` for every method: for pages that exist only to change configuration."""
    return otp_required_for_change(view, include_get=True)


def sudo_required(view):
    """A sensitive act: the session must have entered a valid code within OTP_SUDO_SECONDS (any method)."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not sudo_is_fresh(request):
            return second_factor_redirect(
                request, "otp-sudo", "Confirm it is you: enter a fresh code from your authenticator app."
            )
        return view(request, *args, **kwargs)

    return wrapped


# ---------------------------------------------------------------------------------------------------------------------
# Middleware
# ---------------------------------------------------------------------------------------------------------------------


class OTPPendingMiddleware:
    """Between the password and the second factor, only the verify page and logout are reachable."""

    allowed_names = ("otp-verify", "logout", "login")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        if session is not None and session.get(SESSION_OTP_PENDING_KEY) and request.user.is_authenticated:
            if is_verified(request):
                session.pop(SESSION_OTP_PENDING_KEY, None)
            elif not self.allowed(request.path):
                if request.path.startswith("/api/"):
                    body = {"code": "otp_required", "message": "Verify your second factor at /account/2fa/verify/."}
                    return JsonResponse({"error": {**body, "fields": {}}}, status=403)
                return HttpResponseRedirect(url_with_next("otp-verify", request.get_full_path()))
        return self.get_response(request)

    def allowed(self, path):
        if path.startswith("/" + settings.STATIC_URL.lstrip("/")):
            return True
        return path in {reverse(name) for name in self.allowed_names}


# ---------------------------------------------------------------------------------------------------------------------
# Verbs
# ---------------------------------------------------------------------------------------------------------------------


def totp_device(user, confirmed=True):
    return TOTPDevice.objects.devices_for_user(user, confirmed=confirmed).order_by("pk").first()


def recovery_codes_left(user):
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def _user_audit_fields(user):
    return {"object_type": "auth.user", "object_id": str(user.pk), "object_repr": user.get_username()}


@transaction.atomic
def regenerate_recovery_codes(user, *, acting_user=None):
    """Replace the user's recovery codes with OTP_RECOVERY_CODE_COUNT new ones; return them (shown once)."""
    device, _ = StaticDevice.objects.get_or_create(
        user=user, name=OTP_RECOVERY_DEVICE_NAME, defaults={"confirmed": True}
    )
    StaticDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(OTP_RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    audit.record(
        "otp.recovery_codes",
        actor=acting_user,
        message=f"{len(codes)} new recovery codes; earlier codes no longer work",
        **_user_audit_fields(user),
    )
    return codes


@transaction.atomic
def confirm_totp_device(device, *, acting_user=None):
    """Mark a TOTP device whose first code was valid as confirmed, drop other pending ones, issue recovery codes."""
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=device.user, confirmed=False).delete()
    audit.record("otp.enrol", actor=acting_user, message="TOTP device confirmed", **_user_audit_fields(device.user))
    return regenerate_recovery_codes(device.user, acting_user=acting_user)


@transaction.atomic
def disable_otp(user, *, acting_user=None):
    """Remove every second-factor device of the user (authenticator and recovery codes)."""
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    audit.record(
        "otp.disable", actor=acting_user, message="two-factor authentication disabled", **_user_audit_fields(user)
    )


def clear_session_factor(request):
    for key in (DEVICE_ID_SESSION_KEY, SESSION_OTP_SUDO_KEY, SESSION_OTP_PENDING_KEY):
        request.session.pop(key, None)
