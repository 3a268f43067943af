"""
Sign-in, sign-out and the second factor: the login page (throttled, audited), TOTP enrolment with a QR
code and recovery codes, the verify and sudo pages, and the Django admin's way in.
"""

from base64 import b32encode

import segno
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_otp import user_has_device

from . import audit, otp, throttle
from .constants import OTP_TOTP_DEVICE_NAME, SESSION_OTP_PENDING_KEY
from .forms_auth import EnrolForm, LoginForm, OTPTokenForm
from .middleware import client_ip, start_session_clock
from .models import EncryptedTOTPDevice
from .otp import OTP_WAIT

LOGIN_ERROR = "Invalid email or password."
LOGIN_WAIT = "Too many failed sign-ins from your address: try again in {wait}."
ENROL_ERROR = "That code is not valid. Check the time on your phone and enter the code currently shown."
QR_SCALE = 4  # pixels per QR module
SECRET_GROUP = 4  # characters per group when showing the TOTP secret for manual entry


def _landing(request):
    return otp.safe_next(request) or resolve_url(settings.LOGIN_REDIRECT_URL)


def _user_fields(user):
    return {"object_type": "auth.user", "object_id": str(user.pk), "object_repr": user.get_username()}


# ---------------------------------------------------------------------------------------------------------------------
# Password step
# ---------------------------------------------------------------------------------------------------------------------


def sign_in(request, username, password):
    """Check a password sign-in under the throttle; log the session in and return (user, None), or (None, error).

    Unknown users, wrong passwords and inactive accounts look the same to the client; a throttled client is
    told how long to wait (whatever the account: that tells nothing about it). The audit log says which it was.
    """
    address = client_ip(request)
    verdict = throttle.check(throttle.LOGIN, username, address)
    if not verdict.allowed:
        audit.record("login.locked", actor=AnonymousUser(), actor_name=username, message=f"refused: {verdict.reason}")
        return None, LOGIN_WAIT.format(wait=otp.seconds_phrase(verdict.wait_seconds))
    known = get_user_model()._default_manager.filter(username__iexact=username).order_by("pk").first()
    user = authenticate(request, username=known.get_username() if known else username, password=password)
    if user is None:
        throttle.record_failure(throttle.LOGIN, username, address)
        if known is None:
            reason = "unknown user"
        elif not known.is_active:
            reason = "inactive account"
        else:
            reason = "wrong password"
        audit.record("login.failed", actor=AnonymousUser(), actor_name=username, message=reason)
        return None, LOGIN_ERROR
    throttle.reset(throttle.LOGIN, username, address)
    auth_login(request, user)
    start_session_clock(request)  # 12 hours from now at most, 30 minutes idle
    second = user_has_device(user)
    message = "password accepted; second factor pending" if second else "password accepted"
    audit.record("login.success", actor=user, message=message, **_user_fields(user))
    if second:
        request.session[SESSION_OTP_PENDING_KEY] = True
    return user, None


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def login_view(request):
    next_url = otp.safe_next(request)
    if request.method != "POST" and request.user.is_authenticated:
        return redirect(_landing(request))
    form = LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user, error = sign_in(request, form.cleaned_data["username"], form.cleaned_data["password"])
        if user is not None:
            landing = _landing(request)
            if request.session.get(SESSION_OTP_PENDING_KEY):
                return redirect(otp.url_with_next("otp-verify", landing))
            return redirect(landing)
        form.add_error(None, error)
    return render(request, "account/login.html", {"form": form, "next_url": next_url})


@require_POST
def logout_view(request, extra_context=None):
    if request.user.is_authenticated:
        audit.record("logout", actor=request.user, message="signed out", **_user_fields(request.user))
    auth_logout(request)
    return redirect(settings.LOGOUT_REDIRECT_URL)


@never_cache
def admin_login(request, extra_context=None):
    """The admin's login page: our sign-in and second-factor pages, then back to the admin."""
    next_url = otp.safe_next(request) or resolve_url("admin:index")
    if not request.user.is_authenticated:
        return redirect(otp.url_with_next("login", next_url))
    if not otp.is_verified(request):
        name = "otp-verify" if user_has_device(request.user) else "otp-enrol"
        return redirect(otp.url_with_next(name, next_url))
    if not admin.site.has_permission(request):
        raise PermissionDenied("Your account has no access to the administration site.")
    return redirect(next_url)


# ---------------------------------------------------------------------------------------------------------------------
# Second factor
# ---------------------------------------------------------------------------------------------------------------------


def _check_second_factor(request, *, sudo):
    next_url = _landing(request)
    user = request.user
    if not user_has_device(user):
        return redirect(otp.url_with_next("otp-enrol", next_url))
    already = otp.sudo_is_fresh(request) if sudo else otp.is_verified(request)
    if request.method != "POST" and already:
        return redirect(next_url)
    form = OTPTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        error = otp.check_code(request, form.cleaned_data["token"], sudo=sudo)
        if error is None:
            return redirect(next_url)
        form.add_error(None, error)
    action = reverse("otp-sudo" if sudo else "otp-verify")
    context = {"form": form, "sudo": sudo, "next_url": next_url, "action": action, "code_field": "token"}
    return render(request, "account/otp_verify.html", context)


@never_cache
@login_required
def otp_verify(request):
    """The second step of signing in (or of reaching a change that needs it): a TOTP or recovery code."""
    return _check_second_factor(request, sudo=False)


@never_cache
@login_required
def otp_sudo(request):
    """A fresh code for a sensitive act, asked again once the last one is older than OTP_SUDO_SECONDS."""
    return _check_second_factor(request, sudo=True)


def _qr_svg(device):
    qr = segno.make(device.config_url, error="m")
    return mark_safe(
        qr.svg_inline(scale=QR_SCALE, title="QR code for your authenticator app")
    )  # segno escapes the title; the rest is path data


def _grouped_secret(device):
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + SECRET_GROUP] for i in range(0, len(secret), SECRET_GROUP))


@never_cache
@login_required
def otp_enrol(request):
    """Set up an authenticator app (QR code + secret, confirmed by a first code), or manage the one there is."""
    user = request.user
    next_url = otp.safe_next(request)
    if user_has_device(user) and not otp.is_verified(request):
        return redirect(otp.url_with_next("otp-verify", request.get_full_path()))
    if otp.totp_device(user) is not None:
        if request.method == "POST":
            return redirect("otp-enrol")
        context = {"recovery_codes_left": otp.recovery_codes_left(user), "device": otp.totp_device(user)}
        return render(request, "account/otp_manage.html", context)
    device = otp.totp_device(user, confirmed=False)
    if device is None:
        device = EncryptedTOTPDevice.objects.create(user=user, name=OTP_TOTP_DEVICE_NAME, confirmed=False)
    form = EnrolForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        wait = otp.device_wait_seconds(device)  # django-otp's back-off after a wrong code: say so, not "wrong code"
        if wait:
            form.add_error("token", OTP_WAIT.format(wait=otp.seconds_phrase(wait)))
        elif device.verify_token(form.cleaned_data["token"]):
            codes = otp.confirm_totp_device(device, acting_user=user)
            otp.mark_verified(request, device)
            return _show_recovery_codes(request, codes, next_url or resolve_url(settings.LOGIN_REDIRECT_URL))
        else:
            form.add_error("token", ENROL_ERROR)
    context = {"form": form, "qr_svg": _qr_svg(device), "secret": _grouped_secret(device), "next_url": next_url}
    return render(request, "account/otp_enrol.html", context)


def _show_recovery_codes(request, codes, continue_url):
    return render(request, "account/recovery_codes.html", {"codes": codes, "continue_url": continue_url})


@never_cache
@require_POST
@login_required
@otp.sudo_required
def recovery_codes(request):
    """Issue new recovery codes (the old ones stop working); they are shown this once."""
    if otp.totp_device(request.user) is None:
        return redirect("otp-enrol")
    codes = otp.regenerate_recovery_codes(request.user, acting_user=request.user)
    return _show_recovery_codes(request, codes, resolve_url("otp-enrol"))


@require_POST
@login_required
@otp.sudo_required
def otp_disable(request):
    """Remove the authenticator app and recovery codes; the session is no longer verified."""
    otp.disable_otp(request.user, acting_user=request.user)
    otp.clear_session_factor(request)
    if request.principal.needs_otp():
        messages.warning(request, "Two-factor authentication is off. Your role needs it: set it up again to continue.")
    else:
        messages.success(request, "Two-factor authentication is off.")
    return redirect("otp-enrol")
