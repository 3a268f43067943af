"""
Second factor (TOTP with recovery codes): enforcement decorators, "sudo mode", and the OTP verbs.

- `otp_required_for_change(view, include_get=False)`: owners, admins and superusers change configuration
  only from a session verified with their second factor; others pass. Safe methods pass unless
  `include_get` (or use `otp_required`, for pages that exist only to change configuration).
- `sudo_required(view)`: sensitive acts (disable 2FA, new recovery codes, export a private key) need a
  fresh code, entered within `OTP_SUDO_SECONDS`.
- `SecondFactorMiddleware`: a session whose password was accepted but whose second factor is still to
  come reaches only the verify page (and logout); an owner, admin or superuser without a verified second
  factor reaches only the enrolment and verify pages until they have one.
"""

import functools
import math
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django_otp import DEVICE_ID_SESSION_KEY, devices_for_user, user_has_device, verify_token
from django_otp import login as otp_login

from . import audit, throttle
from .constants import (
    OTP_RECOVERY_CODE_COUNT,
    OTP_RECOVERY_DEVICE_NAME,
    SESSION_OTP_PENDING_KEY,
    SESSION_OTP_SUDO_KEY,
)
from .forms_auth import OTPTokenForm
from .middleware import client_ip
from .models import EncryptedTOTPDevice, RecoveryCode, RecoveryCodeDevice
from .models.otp import new_recovery_code
from .permissions import Principal

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
OTP_ERROR = "Invalid code."
OTP_WAIT = "Too many wrong codes: wait {wait}, then enter the code your app shows now."
TOTP_DIGITS = EncryptedTOTPDevice._meta.get_field("digits").default  # what our enrolment issues
SUDO_CODE_FIELD = "sudo_code"  # the code field of the code page that carries a form's fields
CARRIED_EXCLUDED = frozenset({"csrfmiddlewaretoken", SUDO_CODE_FIELD})  # posted fields the code page does not carry

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
    """A sensitive act: the session must have entered a valid code within OTP_SUDO_SECONDS (any method).

    A POST without a fresh code is not thrown away: the answer is the code page, carrying the posted fields, and
    submitting it posts them again, with the code, to the same URL; a valid code then lets the original request
    through. So a form filled in before the code was asked for is never lost.
    """

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if sudo_is_fresh(request):
            return view(request, *args, **kwargs)
        if request.method != "POST" or request.headers.get("HX-Request") or not user_has_device(request.user):
            return second_factor_redirect(
                request, "otp-sudo", "Confirm it is you: enter a fresh code from your authenticator app."
            )
        error = None
        if SUDO_CODE_FIELD in request.POST:
            form = OTPTokenForm({"token": request.POST[SUDO_CODE_FIELD]})
            error = check_code(request, form.cleaned_data["token"], sudo=True) if form.is_valid() else OTP_ERROR
            if error is None:
                request.POST = request.POST.copy()
                del request.POST[SUDO_CODE_FIELD]
                return view(request, *args, **kwargs)
        carried = [(name, value) for name, values in request.POST.lists() if name not in CARRIED_EXCLUDED
                   for value in values]  # fmt: skip
        context = {
            "form": OTPTokenForm(), "sudo": True, "action": request.get_full_path(), "code_field": SUDO_CODE_FIELD,
            "carried": carried, "errors": [error] if error else [],
        }  # fmt: skip
        response = render(request, "account/otp_verify.html", context, status=403 if error else 200)
        response["Cache-Control"] = "no-store"  # it holds what the user typed
        return response

    return wrapped


# ---------------------------------------------------------------------------------------------------------------------
# Middleware
# ---------------------------------------------------------------------------------------------------------------------


class SecondFactorMiddleware:
    """A signed-in session reaches the panel only once its second factor is settled.

    - Password accepted, second factor still to come: only the verify page (and logout).
    - An owner, admin or superuser whose session is not verified (no device yet, or a device added in another
      session): only the enrolment and verify pages (and logout) — they set up 2FA before they open, let alone
      fill in, any page of the panel, so no half-filled form is lost to the detour. Other roles pass.
    Over the API a session in either state gets a JSON 403 `otp_required` (API keys are not sessions).
    """

    pending_names = ("otp-verify", "logout", "login")
    sessionless_names = ("healthz", "readyz", "metrics")  # never use the session: load balancers, Prometheus
    enrol_names = ("otp-enrol", "otp-verify", "logout", "login")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.user.is_authenticated or self.allowed(request.path, self.sessionless_names):
            return self.get_response(request)
        session = request.session
        if is_verified(request):
            session.pop(SESSION_OTP_PENDING_KEY, None)
            return self.get_response(request)
        if session.get(SESSION_OTP_PENDING_KEY):
            target, allowed = "otp-verify", self.pending_names
        elif request.principal.needs_otp():
            target, allowed = ("otp-verify" if user_has_device(request.user) else "otp-enrol"), self.enrol_names
        else:
            return self.get_response(request)
        if self.allowed(request.path, allowed):
            return self.get_response(request)
        if request.path.startswith("/api/"):
            where = reverse(target)
            body = {"code": "otp_required", "message": f"This session needs its second factor first: see {where}."}
            return JsonResponse({"error": {**body, "fields": {}}}, status=403)
        url = url_with_next(target, return_url(request))
        if request.headers.get("HX-Request"):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = url
            return response
        return HttpResponseRedirect(url)

    @staticmethod
    def allowed(path, names):
        if path.startswith("/" + settings.STATIC_URL.lstrip("/")):
            return True
        return path in {reverse(name) for name in names}


# ---------------------------------------------------------------------------------------------------------------------
# Verbs
# ---------------------------------------------------------------------------------------------------------------------


def totp_device(user, confirmed=True):
    return EncryptedTOTPDevice.objects.devices_for_user(user, confirmed=confirmed).order_by("pk").first()


def match_token(user, token):
    """(device, 0) for the confirmed device that accepts `token` — an app code (6 digits) or a recovery code (consumed
    on use) — else (None, seconds the device's throttle still refuses codes after wrong ones, 0 if it did not)."""
    wanted = EncryptedTOTPDevice if token.isdigit() and len(token) == TOTP_DIGITS else RecoveryCodeDevice
    wait = 0
    for device in devices_for_user(user):
        if not isinstance(device, wanted):
            continue
        wait = max(wait, device_wait_seconds(device))
        if not wait and verify_token(user, device.persistent_id, token) is not None:
            return device, 0
    return None, wait


def check_code(request, token, *, sudo):
    """Check a second-factor code of the signed-in user under both throttles (ours per user and address, and the
    device's own back-off); a valid one verifies the session and starts the sudo period. None, or the error."""
    user, address = request.user, client_ip(request)
    verdict = throttle.check(throttle.OTP, user.get_username(), address)
    if not verdict.allowed:
        audit.record("otp.verify_failed", message=f"refused: {verdict.reason}", **_user_audit_fields(user))
        return OTP_WAIT.format(wait=seconds_phrase(verdict.wait_seconds))
    device, wait = match_token(user, token)
    if device is None and wait:
        audit.record("otp.verify_failed", message=f"refused: device throttled for {wait} s", **_user_audit_fields(user))
        return OTP_WAIT.format(wait=seconds_phrase(wait))
    if device is None:
        throttle.record_failure(throttle.OTP, user.get_username(), address)
        audit.record("otp.verify_failed", message="invalid code", **_user_audit_fields(user))
        return OTP_ERROR
    throttle.reset(throttle.OTP, user.get_username(), address)
    mark_verified(request, device)
    if isinstance(device, RecoveryCodeDevice):
        what = f"recovery code used, {recovery_codes_left(user)} left"
    else:
        what = "authenticator code"
    audit.record("otp.verify", message=f"{what}{' (sudo)' if sudo else ''}", **_user_audit_fields(user))
    return None


def seconds_phrase(seconds):
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def device_wait_seconds(device):
    """Whole seconds django-otp's throttle of `device` still refuses codes after wrong ones (0: it takes codes)."""
    allowed, info = device.verify_is_allowed()
    if allowed or "locked_until" not in info:
        return 0
    return max(1, math.ceil((info["locked_until"] - timezone.now()).total_seconds()))


def recovery_codes_left(user):
    return RecoveryCode.objects.filter(device__user=user, device__confirmed=True).count()


def _user_audit_fields(user):
    return {"object_type": "auth.user", "object_id": str(user.pk), "object_repr": user.get_username()}


@transaction.atomic
def regenerate_recovery_codes(user, *, acting_user=None):
    """Replace the user's recovery codes with OTP_RECOVERY_CODE_COUNT new ones; return them (shown once)."""
    with audit.acting_as(acting_user):
        device, _ = RecoveryCodeDevice.objects.get_or_create(
            user=user, name=OTP_RECOVERY_DEVICE_NAME, defaults={"confirmed": True}
        )
        RecoveryCodeDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.codes.all().delete()
        codes = [new_recovery_code() for _ in range(OTP_RECOVERY_CODE_COUNT)]
        RecoveryCode.objects.bulk_create(RecoveryCode(device=device, code=code) for code in codes)
        audit.record(
            "otp.recovery_codes",
            message=f"{len(codes)} new recovery codes; earlier codes no longer work",
            **_user_audit_fields(user),
        )
        return codes


@transaction.atomic
def confirm_totp_device(device, *, acting_user=None):
    """Mark a TOTP device whose first code was valid as confirmed, drop other pending ones, issue recovery codes."""
    with audit.acting_as(acting_user):
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        EncryptedTOTPDevice.objects.filter(user=device.user, confirmed=False).delete()
        audit.record("otp.enrol", message="TOTP device confirmed", **_user_audit_fields(device.user))
        return regenerate_recovery_codes(device.user, acting_user=acting_user)


@transaction.atomic
def disable_otp(user, *, acting_user=None):
    """Remove every second-factor device of the user (authenticator and recovery codes)."""
    with audit.acting_as(acting_user):
        EncryptedTOTPDevice.objects.filter(user=user).delete()
        RecoveryCodeDevice.objects.filter(user=user).delete()
        audit.record(
            "otp.disable", message="two-factor authentication disabled", **_user_audit_fields(user)
        )


def clear_session_factor(request):
    for key in (DEVICE_ID_SESSION_KEY, SESSION_OTP_SUDO_KEY, SESSION_OTP_PENDING_KEY):
        request.session.pop(key, None)
