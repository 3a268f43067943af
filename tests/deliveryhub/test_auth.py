"""Sign-in, throttling, TOTP enrolment and verification, recovery codes, OTP enforcement, sudo mode, admin, CSRF."""

import re
import time
from base64 import b32encode
from datetime import timedelta
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import include, path, reverse
from django.utils import timezone

from deliveryhub import services, throttle
from deliveryhub.auth_views import LOGIN_ERROR
from deliveryhub.constants import OTP_RECOVERY_CODE_COUNT, SESSION_OTP_SUDO_KEY, SESSION_SEEN_KEY, SESSION_STARTED_KEY
from deliveryhub.models import ApiKey, AuditEntry, EncryptedTOTPDevice, LoginFailure, RecoveryCode, RecoveryCodeDevice
from deliveryhub.otp import OTP_ERROR, otp_required, otp_required_for_change, sudo_required
from deliveryhub.testing.cases import PASSWORD, TenantTestCase, app_code, login_verified


# A few tiny views behind the decorators, on top of the real URL map.
@otp_required_for_change
def change_view(request):
    return HttpResponse("changed" if request.method == "POST" else "form")


@otp_required
def config_page(request):
    return HttpResponse("config page")


@sudo_required
def sensitive_view(request):
    return HttpResponse("sensitive")


urlpatterns = [
    path("test/change/", change_view),
    path("test/config/", config_page),
    path("test/sensitive/", sensitive_view),
    path("", include("deliveryhub.urls")),
]

LOGIN_URL = "/account/login/"
VERIFY_URL = "/account/2fa/verify/"
ENROL_URL = "/account/2fa/"
SUDO_URL = "/account/2fa/sudo/"

THROTTLE = {
    "LOGIN_THROTTLE_DELAY": 60,  # the first wait, doubling per further failure
    "LOGIN_THROTTLE_MAX_DELAY": 900,
    "LOGIN_THROTTLE_SLOW_AFTER": 2,  # per (account, address)
    "LOGIN_THROTTLE_ADDRESS_SLOW_AFTER": 4,
    "LOGIN_THROTTLE_ACCOUNT_SLOW_AFTER": 4,
    "LOGIN_THROTTLE_WINDOW": 900,
    # django-otp's own per-device back-off (1 s, 2 s, …): off here, tested on its own in OTPDeviceThrottleTest.
    "OTP_TOTP_THROTTLE_FACTOR": 0,
    "OTP_STATIC_THROTTLE_FACTOR": 0,
}


def enrol_url(next_url):
    return f"{ENROL_URL}?next={quote(next_url, safe='')}"


def wrong_code(device):
    return "000000" if app_code(device) != "000000" else "111111"


@override_settings(ROOT_URLCONF=__name__, **THROTTLE)
class AuthTestCase(TenantTestCase):
    def login(self, username, password=PASSWORD, client=None, ip="127.0.0.1", next_url=None):
        data = {"username": username, "password": password}
        if next_url:
            data["next"] = next_url
        return (client or self.client).post(LOGIN_URL, data, REMOTE_ADDR=ip)

    def audit_actions(self):
        return list(AuditEntry.objects.order_by("seq").values_list("action", flat=True))

    def enrolled_device(self, user):
        return EncryptedTOTPDevice.objects.create(user=user, name="app", confirmed=True)

    def signed_in_user(self, client=None):
        return (client or self.client).session.get(SESSION_KEY)

    def verified(self, client=None):
        response = (client or self.client).get("/account/2fa/")
        return response.wsgi_request.user.is_verified()


class LoginTest(AuthTestCase):
    def test_login_page_renders_without_nav(self):
        response = self.client.get(LOGIN_URL)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, 'name="password"')
        self.assertContains(response, "vendor/bootstrap/bootstrap.min.css")
        self.assertNotContains(response, "navbar")

    def test_success_lands_on_dashboard_and_is_audited(self):
        response = self.login("alice@a.test")
        self.assertRedirects(response, reverse("dashboard"), fetch_redirect_response=False)
        self.assertEqual(str(self.signed_in_user()), str(self.alice.pk))
        entry = self.last_audit(action="login.success")
        self.assertEqual((entry.actor_type, entry.actor_name), ("user", "alice@a.test"))
        self.assertEqual(entry.client_ip, "127.0.0.1")
        self.assertEqual(entry.object_id, str(self.alice.pk))

    def test_email_is_case_insensitive_and_next_is_honoured_when_local(self):
        response = self.login("Alice@A.test", next_url="/audit/?page=2")
        self.assertRedirects(response, "/audit/?page=2", fetch_redirect_response=False)
        self.client.logout()
        response = self.login("alice@a.test", next_url="https://evil.test/")
        self.assertRedirects(response, reverse("dashboard"), fetch_redirect_response=False)

    def test_failures_are_audited_with_one_generic_answer(self):
        wrong = self.login("alice@a.test", "not the password")
        unknown = self.login("nobody@a.test", "whatever it is")
        for response in (wrong, unknown):
            self.assertEqual(response.status_code, 200)
            self.assertContains(response, LOGIN_ERROR)
            self.assertIsNone(response.wsgi_request.session.get(SESSION_KEY))
        failed = AuditEntry.objects.filter(action="login.failed").order_by("seq")
        self.assertEqual(
            [(e.actor_type, e.actor_name, e.message) for e in failed],
            [("anonymous", "alice@a.test", "wrong password"), ("anonymous", "nobody@a.test", "unknown user")],
        )
        self.assertEqual(LoginFailure.objects.count(), 2)

    def test_inactive_user_gets_the_same_answer(self):
        self.bob.is_active = False
        self.bob.save()
        response = self.login("bob@a.test")
        self.assertContains(response, LOGIN_ERROR)
        self.assertEqual(self.last_audit(action="login.failed").message, "inactive account")

    def test_logout_is_post_only_and_audited(self):
        self.login("alice@a.test")
        self.assertEqual(self.client.get("/account/logout/").status_code, 405)
        response = self.client.post("/account/logout/")
        self.assertRedirects(response, LOGIN_URL, fetch_redirect_response=False)
        self.assertIsNone(self.signed_in_user())
        entry = self.last_audit(action="logout")
        self.assertEqual(entry.actor_name, "alice@a.test")

    def test_anonymous_is_sent_to_login(self):
        response = self.client.get("/")
        self.assertRedirects(response, f"{LOGIN_URL}?next=/", fetch_redirect_response=False)


class ThrottleTest(AuthTestCase):
    def fail(self, username, ip="127.0.0.1", times=1):
        for _ in range(times):
            response = self.login(username, "wrong password here", ip=ip)
            self.assertContains(response, LOGIN_ERROR)

    def age_failures(self, seconds):
        LoginFailure.objects.update(time=timezone.now() - timedelta(seconds=seconds))

    def test_failures_elsewhere_never_lock_out_the_right_password_from_a_client_that_has_not_failed(self):
        for n in range(12):  # 12 wrong passwords for alice from twelve addresses: more than any threshold
            self.fail("alice@a.test", ip=f"10.0.0.{n + 1}")
        response = self.login("alice@a.test", ip="10.0.0.99")
        self.assertRedirects(response, reverse("dashboard"), fetch_redirect_response=False)
        self.assertEqual(str(self.signed_in_user()), str(self.alice.pk))
        self.assertEqual(LoginFailure.objects.filter(username="alice@a.test").count(), 12, "theirs still count")

    def test_guessing_from_one_address_waits_and_the_wait_doubles(self):
        self.fail("alice@a.test", ip="10.0.0.1", times=2)
        response = self.login("alice@a.test", ip="10.0.0.1")  # the right password, but this client must wait
        self.assertContains(response, "Too many failed sign-ins from your address: try again in 60 seconds.")
        self.assertIsNone(self.signed_in_user())
        locked = self.last_audit(action="login.locked")
        self.assertEqual((locked.actor_type, locked.actor_name), ("anonymous", "alice@a.test"))
        self.assertIn("2 failures for this account from here", locked.message)
        self.assertEqual(LoginFailure.objects.count(), 2, "refused attempts are not counted again")
        self.age_failures(61)
        self.fail("alice@a.test", ip="10.0.0.1")  # allowed again, and wrong: the next wait is twice as long
        verdict = throttle.check(throttle.LOGIN, "alice@a.test", "10.0.0.1")
        self.assertEqual((verdict.pair_failures, verdict.allowed, verdict.wait_seconds), (3, False, 120))
        with override_settings(LOGIN_THROTTLE_MAX_DELAY=90):
            self.assertEqual(throttle.check(throttle.LOGIN, "alice@a.test", "10.0.0.1").wait_seconds, 90)

    def test_spraying_from_one_address_waits_whatever_the_account(self):
        for n in range(4):
            self.fail(f"user{n}@spray.test", ip="10.1.1.1")
        response = self.login("alice@a.test", ip="10.1.1.1")
        self.assertContains(response, "try again in 60 seconds")
        self.assertIn("from 10.1.1.1", self.last_audit(action="login.locked").message)
        self.assertEqual(self.login("alice@a.test", ip="10.1.1.2").status_code, 302)

    def test_distributed_guessing_holds_back_only_the_addresses_that_failed_for_the_account(self):
        for n in range(4):  # one guess each from four addresses: no address reaches its own threshold
            self.fail("alice@a.test", ip=f"10.2.0.{n + 1}")
        response = self.login("alice@a.test", ip="10.2.0.1")
        self.assertContains(response, "try again in")
        self.assertIn("for this account from any address", self.last_audit(action="login.locked").message)
        self.assertEqual(self.login("alice@a.test", ip="10.2.0.99").status_code, 302)

    def test_unknown_accounts_are_throttled_the_same_way(self):
        self.fail("ghost@a.test", ip="10.3.0.1", times=2)
        self.assertContains(self.login("ghost@a.test", "wrong password here", ip="10.3.0.1"), "try again in")
        self.assertEqual(self.last_audit(action="login.locked").actor_name, "ghost@a.test")

    def test_waits_end_after_the_window_and_old_rows_are_pruned(self):
        self.fail("alice@a.test", times=2)
        self.assertContains(self.login("alice@a.test"), "try again in")
        self.age_failures(901)
        self.fail("bob@a.test")  # any new failure prunes rows that left the window
        self.assertEqual(list(LoginFailure.objects.values_list("username", flat=True)), ["bob@a.test"])
        self.assertEqual(self.login("alice@a.test").status_code, 302)

    def test_success_forgets_this_addresses_failures_for_the_account_only(self):
        self.fail("alice@a.test", ip="10.4.0.1")
        self.fail("alice@a.test", ip="10.4.0.2")
        self.assertEqual(self.login("alice@a.test", ip="10.4.0.1").status_code, 302)
        remaining = LoginFailure.objects.filter(username="alice@a.test").values_list("client_ip", flat=True)
        self.assertEqual(list(remaining), ["10.4.0.2"])

    def test_odd_client_addresses_count_per_account(self):
        self.assertIsNone(throttle.valid_ip("unix:"))
        throttle.record_failure(throttle.LOGIN, "alice@a.test", "")
        verdict = throttle.check(throttle.LOGIN, "alice@a.test", "not an ip")
        self.assertEqual((verdict.pair_failures, verdict.address_failures), (1, 0))

    def test_otp_and_smtp_failures_are_counted_apart_from_password_failures_but_by_the_same_address(self):
        throttle.record_failure(throttle.OTP, "alice@a.test", "10.3.3.3")
        throttle.record_failure(throttle.SMTP, "alice@a.test", "10.3.3.3")
        self.assertEqual(throttle.check(throttle.LOGIN, "alice@a.test", None).account_failures, 0)
        self.assertEqual(throttle.check(throttle.OTP, "alice@a.test", None).account_failures, 1)
        self.assertEqual(throttle.check(throttle.LOGIN, "x@y.test", "10.3.3.3").address_failures, 2)


class EnrolmentTest(AuthTestCase):
    def test_enrol_shows_qr_and_secret_then_confirms_with_a_real_code(self):
        self.client.force_login(self.alice)
        response = self.client.get(ENROL_URL)
        self.assertEqual(response.status_code, 200)
        device = EncryptedTOTPDevice.objects.get(user=self.alice, confirmed=False)
        self.assertRegex(response.content.decode(), r'<svg[^>]*class="segno"')  # inline, works offline
        secret = b32encode(device.bin_key).decode()
        shown = re.search(r'id="otp-secret">([A-Z2-7 ]+)<', response.content.decode()).group(1)
        self.assertEqual(shown.replace(" ", ""), secret)
        self.assertEqual(self.client.get(ENROL_URL).status_code, 200)
        self.assertEqual(EncryptedTOTPDevice.objects.filter(user=self.alice).count(), 1, "reloading keeps the secret")

        response = self.client.post(ENROL_URL, {"token": "000000" if app_code(device) != "000000" else "111111"})
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "not valid")
        device.refresh_from_db()
        self.assertFalse(device.confirmed)

        response = self.client.post(ENROL_URL, {"token": app_code(device), "next": "/audit/"})
        self.assertEqual(response.status_code, 200)
        device.refresh_from_db()
        self.assertTrue(device.confirmed)
        codes = re.findall(r'<li class="list-group-item">([a-z2-7]+)</li>', response.content.decode())
        self.assertEqual(len(codes), OTP_RECOVERY_CODE_COUNT)
        stored = {code.code for code in RecoveryCode.objects.filter(device__user=self.alice)}
        self.assertEqual(stored, set(codes))
        self.assertContains(response, 'href="/audit/"')
        self.assertTrue(self.verified())
        self.assertIsNotNone(self.client.session.get(SESSION_OTP_SUDO_KEY))
        actions = self.audit_actions()
        self.assertIn("otp.enrol", actions)
        self.assertIn("otp.recovery_codes", actions)
        self.assertEqual(self.last_audit(action="otp.enrol").actor_name, "alice@a.test")

        # The codes were shown once: the page now shows the state, never the codes.
        response = self.client.get(ENROL_URL)
        self.assertContains(response, f'id="recovery-codes-left">{OTP_RECOVERY_CODE_COUNT}<')
        for code in codes:
            self.assertNotContains(response, code)

    def test_unverified_session_of_a_user_with_a_device_cannot_enrol_another(self):
        self.enrolled_device(self.alice)
        self.client.force_login(self.alice)
        response = self.client.get(ENROL_URL)
        self.assertRedirects(response, f"{VERIFY_URL}?next=%2Faccount%2F2fa%2F", fetch_redirect_response=False)
        self.assertEqual(EncryptedTOTPDevice.objects.filter(user=self.alice).count(), 1)


class TwoStepLoginTest(AuthTestCase):
    def setUp(self):
        self.device = self.enrolled_device(self.alice)
        static = RecoveryCodeDevice.objects.create(user=self.alice, name="Recovery codes", confirmed=True)
        static.codes.create(code="abcd2345")
        static.codes.create(code="efgh6723")

    def password_step(self, next_url=None):
        response = self.login("alice@a.test", next_url=next_url)
        self.assertEqual(response.status_code, 302)
        return response

    def test_password_then_code(self):
        response = self.password_step(next_url="/audit/")
        self.assertRedirects(response, f"{VERIFY_URL}?next=%2Faudit%2F", fetch_redirect_response=False)
        self.assertIn("second factor pending", self.last_audit(action="login.success").message)
        self.assertIsNotNone(self.signed_in_user())
        self.assertFalse(self.verified())
        # Half signed in: every other page sends back to the verify step; the session API answers 403.
        response = self.client.get("/")
        self.assertRedirects(response, f"{VERIFY_URL}?next=%2F", fetch_redirect_response=False)
        self.assertEqual(self.client.get("/api/v1/api-keys/").status_code, 403)

        response = self.client.post(VERIFY_URL, {"token": "123 456", "next": "/audit/"})
        if app_code(self.device) != "123456":
            self.assertContains(response, OTP_ERROR)
            self.assertEqual(self.last_audit(action="otp.verify_failed").message, "invalid code")

        response = self.client.post(VERIFY_URL, {"token": app_code(self.device), "next": "/audit/"})
        self.assertRedirects(response, "/audit/", fetch_redirect_response=False)
        self.assertTrue(self.verified())
        self.assertEqual(self.client.get("/").status_code, 200)
        entry = self.last_audit(action="otp.verify")
        self.assertEqual((entry.actor_name, entry.message), ("alice@a.test", "authenticator code"))
        self.assertFalse(LoginFailure.objects.filter(username="otp:alice@a.test").exists())

    def test_recovery_code_works_once(self):
        self.password_step()
        response = self.client.post(VERIFY_URL, {"token": "ABCD-2345"})
        self.assertRedirects(response, reverse("dashboard"), fetch_redirect_response=False)
        self.assertTrue(self.verified())
        self.assertIn("recovery code used, 1 left", self.last_audit(action="otp.verify").message)
        self.assertEqual([code.code for code in RecoveryCode.objects.all()], ["efgh6723"])

        self.client.post("/account/logout/")
        self.password_step()
        response = self.client.post(VERIFY_URL, {"token": "abcd2345"})
        self.assertContains(response, OTP_ERROR)
        self.assertFalse(self.verified())

    def test_verify_is_throttled_like_the_password(self):
        self.password_step()
        for _ in range(2):
            self.assertContains(self.client.post(VERIFY_URL, {"token": wrong_code(self.device)}), OTP_ERROR)
        response = self.client.post(VERIFY_URL, {"token": app_code(self.device)})
        self.assertContains(response, "Too many wrong codes: wait 60 seconds")
        self.assertFalse(self.verified())
        self.assertIn("refused", self.last_audit(action="otp.verify_failed").message)
        LoginFailure.objects.update(time=timezone.now() - timedelta(seconds=61))
        response = self.client.post(VERIFY_URL, {"token": app_code(self.device)})
        self.assertEqual(response.status_code, 302)
        self.assertTrue(self.verified())

    def test_user_without_device_lands_directly(self):
        response = self.login("bob@a.test")
        self.assertRedirects(response, reverse("dashboard"), fetch_redirect_response=False)
        self.assertEqual(self.client.get("/").status_code, 200)


class EnforcementTest(AuthTestCase):
    def test_admin_without_2fa_is_sent_to_set_it_up_before_any_page_so_no_form_is_lost(self):
        response = self.login("alice@a.test")  # an admin without a device: enrolment comes first
        self.assertRedirects(response, reverse("dashboard"), fetch_redirect_response=False)
        for url in ("/", "/test/change/", "/settings/api-keys/", "/settings/members/", "/audit/", "/routes/"):
            with self.subTest(url=url):
                self.assertRedirects(self.client.get(url), enrol_url(url), fetch_redirect_response=False)
        self.assertEqual(self.client.get(ENROL_URL).status_code, 200)
        for url in ("/api/v1/api-keys/", "/api/v1/memberships/", "/api/v1/audit-log/", "/api/v1/domains/"):
            response = self.client.get(url)
            self.assertEqual((response.status_code, response.json()["error"]["code"]), (403, "otp_required"), url)
        viewer = Client()
        viewer.force_login(self.bob)  # a viewer's role does not need a second factor
        self.assertEqual(viewer.get("/").status_code, 200)
        self.assertContains(viewer.get("/test/change/"), "form")

    def test_reads_of_keys_members_and_audit_need_a_verified_session_in_the_views_too(self):
        """Without the middleware's gate (say, a grace period added one day), the views still refuse these reads."""
        middleware = [m for m in settings.MIDDLEWARE if m != "deliveryhub.otp.SecondFactorMiddleware"]
        with override_settings(MIDDLEWARE=middleware):
            self.client.force_login(self.alice)
            for url in ("/settings/api-keys/", "/settings/members/", "/audit/"):
                self.assertRedirects(self.client.get(url), enrol_url(url), fetch_redirect_response=False)
            for url in ("/api/v1/api-keys/", "/api/v1/memberships/", "/api/v1/audit-log/"):
                response = self.client.get(url)
                self.assertEqual((response.status_code, response.json()["error"]["code"]), (403, "otp_required"))
            self.assertEqual(self.client.get("/api/v1/domains/").status_code, 200)  # other reads stay open
            root = Client()
            root.force_login(services.create_user("root@ops.test", password=PASSWORD, is_superuser=True))
            self.assertEqual(root.get("/api/v1/audit-log/").status_code, 403)

    def test_posting_a_change_unverified_goes_to_enrolment_with_the_way_back(self):
        self.client.force_login(self.alice)
        response = self.client.post("/test/change/", HTTP_REFERER="http://testserver/test/change/")
        self.assertRedirects(response, f"{ENROL_URL}?next=%2Ftest%2Fchange%2F", fetch_redirect_response=False)

    def test_htmx_request_gets_a_client_side_redirect(self):
        self.client.force_login(self.alice)
        response = self.client.post("/test/change/", {"next": "/settings/"}, HTTP_HX_REQUEST="true")
        self.assertEqual(response.status_code, 204)
        self.assertEqual(response["HX-Redirect"], f"{ENROL_URL}?next=%2Fsettings%2F")

    def test_admin_with_device_but_unverified_session_is_sent_to_verify(self):
        self.enrolled_device(self.alice)
        self.client.force_login(self.alice)
        response = self.client.post("/test/change/")
        self.assertRedirects(response, f"{VERIFY_URL}?next=%2Ftest%2Fchange%2F", fetch_redirect_response=False)

    def test_verified_admin_and_viewer_may_post(self):
        login_verified(self.client, self.alice)
        self.assertContains(self.client.post("/test/change/"), "changed")
        self.assertContains(self.client.get("/test/config/"), "config page")
        viewer = Client()
        viewer.force_login(self.bob)
        self.assertContains(viewer.post("/test/change/"), "changed")

    def test_api_key_creation_over_session_needs_a_verified_session_and_a_fresh_code(self):
        self.client.force_login(self.alice)
        response = self.client.post(
            "/api/v1/api-keys/", {"name": "ci", "role": "viewer"}, content_type="application/json"
        )
        self.assertEqual(response.status_code, 403, response.content)
        self.assertEqual(response.json()["error"]["code"], "otp_required")
        client = Client()
        device = login_verified(client, self.alice)
        response = client.post("/api/v1/api-keys/", {"name": "ci", "role": "viewer"}, content_type="application/json")
        self.assertEqual(response.status_code, 403, response.content)
        self.assertEqual(response.json()["error"]["code"], "otp_sudo_required")
        client.post(SUDO_URL, {"token": app_code(device)})
        response = client.post("/api/v1/api-keys/", {"name": "ci", "role": "viewer"}, content_type="application/json")
        self.assertEqual(response.status_code, 201, response.content)
        self.assertTrue(ApiKey.objects.filter(name="ci").exists())

    def test_role_changes_need_a_fresh_code_in_the_ui_and_over_a_session_api(self):
        device = login_verified(self.client, self.alice)
        bobs = self.bob.memberships.get()
        response = self.client.post(reverse("member-role", args=[bobs.pk]), {"role": "admin"})
        self.assertContains(response, "Confirm it is you")  # up
        bobs.refresh_from_db()
        self.assertEqual(bobs.role, "viewer")
        response = self.client.patch(f"/api/v1/memberships/{bobs.pk}/", {"role": "admin"},
                                     content_type="application/json")  # fmt: skip
        self.assertEqual(response.json()["error"]["code"], "otp_sudo_required")
        response = self.client.post(reverse("member-role", args=[bobs.pk]), {"role": "admin", "sudo_code":
                                    app_code(device)})  # fmt: skip
        self.assertRedirects(response, reverse("member-list"))
        bobs.refresh_from_db()
        self.assertEqual(bobs.role, "admin")
        session = self.client.session
        session[SESSION_OTP_SUDO_KEY] = time.time() - 301  # the fresh-check window is 5 minutes by default
        session.save()
        response = self.client.patch(f"/api/v1/memberships/{bobs.pk}/", {"role": "viewer"},
                                     content_type="application/json")  # fmt: skip
        self.assertEqual(response.status_code, 403)  # down
        self.assertEqual(self.api(self.alice_key).patch(f"/api/v1/memberships/{bobs.pk}/", {"role": "viewer"},
                         format="json").status_code, 200)  # fmt: skip  (an API key is not a session)

    def test_sudo_asks_for_a_fresh_code(self):
        device = login_verified(self.client, self.alice)
        response = self.client.get("/test/sensitive/")
        self.assertRedirects(response, f"{SUDO_URL}?next=%2Ftest%2Fsensitive%2F", fetch_redirect_response=False)
        self.assertContains(self.client.get(SUDO_URL), "Confirm it is you")
        response = self.client.post(SUDO_URL, {"token": app_code(device), "next": "/test/sensitive/"})
        self.assertRedirects(response, "/test/sensitive/", fetch_redirect_response=False)
        self.assertContains(self.client.get("/test/sensitive/"), "sensitive")
        self.assertIn("(sudo)", self.last_audit(action="otp.verify").message)
        # Stale again after OTP_SUDO_SECONDS (5 minutes by default).
        self.assertEqual(settings.OTP_SUDO_SECONDS, 300)
        session = self.client.session
        session[SESSION_OTP_SUDO_KEY] = time.time() - 301
        session.save()
        self.assertEqual(self.client.get("/test/sensitive/").status_code, 302)

    def test_recovery_codes_regenerate_and_disable_need_sudo(self):
        device = login_verified(self.client, self.alice)
        response = self.client.post("/account/2fa/recovery-codes/", {"next": ENROL_URL})
        self.assertContains(response, "Confirm it is you")  # asked on the spot, the request kept
        first = self.client.post("/account/2fa/recovery-codes/", {"next": ENROL_URL, "sudo_code": app_code(device)})
        old = re.findall(r'<li class="list-group-item">([a-z2-7]+)</li>', first.content.decode())
        second = self.client.post("/account/2fa/recovery-codes/")
        new = re.findall(r'<li class="list-group-item">([a-z2-7]+)</li>', second.content.decode())
        self.assertEqual((len(old), len(new)), (OTP_RECOVERY_CODE_COUNT, OTP_RECOVERY_CODE_COUNT))
        stored = {code.code for code in RecoveryCode.objects.filter(device__user=self.alice)}
        self.assertEqual(stored, set(new))
        self.assertEqual(AuditEntry.objects.filter(action="otp.recovery_codes").count(), 2)

        response = self.client.post("/account/2fa/disable/")
        self.assertRedirects(response, ENROL_URL, fetch_redirect_response=False)
        self.assertFalse(EncryptedTOTPDevice.objects.filter(user=self.alice, confirmed=True).exists())
        self.assertFalse(RecoveryCodeDevice.objects.filter(user=self.alice).exists())
        self.assertEqual(self.last_audit(action="otp.disable").actor_name, "alice@a.test")
        self.assertContains(self.client.get(ENROL_URL), "Your role needs it: set it up again to continue.")
        self.assertFalse(self.verified())


@override_settings(OTP_TOTP_THROTTLE_FACTOR=1)
class OTPDeviceThrottleTest(AuthTestCase):
    """django-otp backs off after a wrong code (1 s, 2 s, …): a right code in that time is told to wait, not that it
    is wrong or that the phone's clock is off."""

    def test_enrolment_right_code_just_after_a_wrong_one_says_wait(self):
        self.client.force_login(self.alice)
        self.client.get(ENROL_URL)
        device = EncryptedTOTPDevice.objects.get(user=self.alice, confirmed=False)
        self.assertContains(self.client.post(ENROL_URL, {"token": wrong_code(device)}), "Check the time on your phone")
        response = self.client.post(ENROL_URL, {"token": app_code(device)})
        self.assertContains(response, "Too many wrong codes: wait 1 second, then enter the code your app shows now.")
        self.assertNotContains(response, "Check the time")
        EncryptedTOTPDevice.objects.filter(pk=device.pk).update(
            throttling_failure_timestamp=timezone.now() - timedelta(seconds=2)
        )
        response = self.client.post(ENROL_URL, {"token": app_code(device)})
        self.assertContains(response, 'id="recovery-codes"')
        self.assertTrue(EncryptedTOTPDevice.objects.get(pk=device.pk).confirmed)

    def test_verify_right_code_just_after_a_wrong_one_says_wait(self):
        device = self.enrolled_device(self.alice)
        self.login("alice@a.test")
        self.assertContains(self.client.post(VERIFY_URL, {"token": wrong_code(device)}), OTP_ERROR)
        self.assertContains(self.client.post(VERIFY_URL, {"token": app_code(device)}), "wait 1 second")
        self.assertEqual(LoginFailure.objects.filter(username="otp:alice@a.test").count(), 1, "waits not counted")


class SessionLimitsTest(AuthTestCase):
    def age_session(self, client, **ages):
        session = client.session
        for key, seconds in ages.items():
            session[key] = time.time() - seconds
        session.save()

    def test_idle_session_ends_after_30_minutes_and_polling_is_not_activity(self):
        self.assertEqual(settings.SESSION_IDLE_SECONDS, 1800)
        self.login("bob@a.test")
        self.assertEqual(self.client.get("/").status_code, 200)
        self.assertEqual(self.client.session.get_expiry_age(), 1800)
        self.age_session(self.client, **{SESSION_SEEN_KEY: 120})
        self.client.get("/", HTTP_HX_REQUEST="true")  # htmx polling: the idle timer is not refreshed
        self.assertLess(self.client.session[SESSION_SEEN_KEY], time.time() - 100)
        self.client.get("/")  # a page view is activity
        self.assertGreater(self.client.session[SESSION_SEEN_KEY], time.time() - 5)
        self.age_session(self.client, **{SESSION_SEEN_KEY: 1801})
        response = self.client.get("/settings/")
        self.assertRedirects(response, f"{LOGIN_URL}?next=/settings/", fetch_redirect_response=False)
        self.assertIsNone(self.signed_in_user())
        self.assertEqual(self.last_audit(action="session.expired").message,
                         "signed out after 30 minutes without activity")  # fmt: skip
        self.assertContains(self.client.get(LOGIN_URL), "Your session ended after 30 minutes without activity")

    def test_session_ends_12_hours_after_sign_in_however_active(self):
        self.assertEqual(settings.SESSION_COOKIE_AGE, 12 * 3600)
        self.login("bob@a.test")
        self.client.get("/")
        self.age_session(self.client, **{SESSION_STARTED_KEY: 12 * 3600 + 1, SESSION_SEEN_KEY: 10})
        response = self.client.get("/api/v1/domains/")
        self.assertIn(response.status_code, (401, 403))
        self.assertIsNone(self.signed_in_user())
        self.assertEqual(self.last_audit(action="session.expired").message, "signed out 12 hours after you signed in")


class PasswordPolicyTest(AuthTestCase):
    def test_passwords_need_12_characters_and_must_not_be_common(self):
        with self.assertRaisesMessage(ValidationError, "at least 12 characters"):
            services.create_user("short@a.test", password="Tr0ub4dor&3")  # 11
        with self.assertRaisesMessage(ValidationError, "too common"):
            services.create_user("common@a.test", password="password1234")
        self.assertTrue(services.create_user("long@a.test", password="Tr0ub4dor&3x").check_password("Tr0ub4dor&3x"))


class AdminSiteTest(AuthTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.root = services.create_user("root@ops.test", password=PASSWORD, is_superuser=True)

    def test_anonymous_goes_to_our_login(self):
        response = self.client.get("/admin/", follow=True)
        self.assertEqual(response.redirect_chain[-1][0], f"{LOGIN_URL}?next=%2Fadmin%2F")

    def test_superuser_without_verified_session_cannot_open_admin(self):
        self.client.force_login(self.root)
        response = self.client.get("/admin/", follow=True)
        self.assertEqual(response.redirect_chain[-1][0], f"{ENROL_URL}?next=%2Fadmin%2F")
        self.enrolled_device(self.root)
        response = self.client.get("/admin/", follow=True)
        self.assertEqual(response.redirect_chain[-1][0], f"{VERIFY_URL}?next=%2Fadmin%2F")
        self.assertEqual(self.client.get("/admin/deliveryhub/tenant/").status_code, 302)

    def test_verified_superuser_opens_admin(self):
        login_verified(self.client, self.root)
        self.assertEqual(self.client.get("/admin/").status_code, 200)
        response = self.client.get("/admin/login/?next=/admin/deliveryhub/tenant/")
        self.assertRedirects(response, "/admin/deliveryhub/tenant/", fetch_redirect_response=False)

    def test_verified_non_staff_gets_403_not_a_loop(self):
        login_verified(self.client, self.alice)
        self.assertEqual(self.client.get("/admin/login/?next=/admin/").status_code, 403)


class CSRFTest(AuthTestCase):
    def test_post_without_token_is_refused(self):
        client = Client(enforce_csrf_checks=True)
        response = client.post(LOGIN_URL, {"username": "alice@a.test", "password": PASSWORD})
        self.assertEqual(response.status_code, 403)
        self.assertIsNone(client.session.get(SESSION_KEY))
        login_verified(client, self.alice)
        self.assertEqual(client.post("/account/logout/").status_code, 403)
        self.assertEqual(client.post("/test/change/").status_code, 403)

    def test_post_with_token_is_accepted(self):
        client = Client(enforce_csrf_checks=True)
        page = client.get(LOGIN_URL)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
        response = client.post(
            LOGIN_URL, {"username": "alice@a.test", "password": PASSWORD, "csrfmiddlewaretoken": token}
        )
        self.assertEqual(response.status_code, 302)

    def test_session_cookie_flags(self):
        response = self.login("alice@a.test")
        cookie = response.cookies["sessionid"]
        self.assertTrue(cookie["httponly"])
        self.assertEqual(cookie["samesite"], "Lax")
