"""Sign-in, sign-out and second-factor pages (included at the site root by deliveryhub.ui_urls)."""

from django.urls import path

from . import auth_views

urlpatterns = [
    path("account/login/", auth_views.login_view, name="login"),
    path("account/logout/", auth_views.logout_view, name="logout"),
    path("account/2fa/", auth_views.otp_enrol, name="otp-enrol"),
    path("account/2fa/verify/", auth_views.otp_verify, name="otp-verify"),
    path("account/2fa/sudo/", auth_views.otp_sudo, name="otp-sudo"),
    path("account/2fa/disable/", auth_views.otp_disable, name="otp-disable"),
    path("account/2fa/recovery-codes/", auth_views.recovery_codes, name="recovery-codes"),
]
