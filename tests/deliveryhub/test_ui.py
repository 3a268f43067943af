"""The server-rendered UI of the core: dashboard, tenant switcher, API keys, members, audit log, jobs."""

import re
import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template import Context, Template
from django.test import RequestFactory, override_settings
from django.urls import reverse

from deliveryhub import audit, services
from deliveryhub.choices import JobStatus, Role
from deliveryhub.constants import SESSION_OTP_SUDO_KEY, SESSION_TENANT_KEY
from deliveryhub.models import ApiKey, AuditEntry, Job, Membership
from deliveryhub.permissions import Principal
from deliveryhub.testing.cases import PASSWORD, TenantTestCase, app_code, login_verified, make_user

NONCE = re.compile(r'name="nonce" value="([^"]+)"')


class UITestCase(TenantTestCase):
    def login_sudo(self, user):
        """An OTP-verified session that also entered a code just now (sudo mode)."""
        login_verified(self.client, user)
        session = self.client.session
        session[SESSION_OTP_SUDO_KEY] = time.time()
        session.save()

    def key_form_nonce(self):
        response = self.client.get(reverse("apikey-list"))
        self.assertEqual(response.status_code, 200)
        return NONCE.search(response.content.decode()).group(1)

    def key_data(self, nonce, **overrides):
        return {"nonce": nonce, "name": "ci", "role": Role.ADMIN, "scope": "role", "expires": "", **overrides}


class PagesTest(UITestCase):
    def test_pages_render_for_alice(self):
        login_verified(self.client, self.alice)
        for name in ("dashboard", "settings", "apikey-list", "member-list", "audit-log"):
            with self.subTest(name=name):
                response = self.client.get(reverse(name))
                self.assertEqual(response.status_code, 200)
                self.assertContains(response, "Tenant A")
        response = self.client.get(reverse("dashboard"))
        self.assertContains(response, f'href="{reverse("audit-log")}"')
        self.assertContains(response, 'id="member-count">2<')  # alice and bob
        self.assertContains(response, 'id="active-key-count">2<')

    def test_anonymous_is_sent_to_login(self):
        response = self.client.get(reverse("apikey-list"))
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response["Location"].startswith(reverse("login")))

    def test_dashboard_prompts_for_2fa_until_a_device_exists_saying_what_applies_to_the_role(self):
        for role in (Role.MARKETER, Role.COMPLIANCE, Role.VIEWER):
            with self.subTest(role=role):
                user = make_user(f"{role}@a.test", self.tenant_a, role)
                self.client.force_login(user)
                banner = self.client.get(reverse("dashboard"))
                self.assertContains(banner, 'id="setup-2fa"')
                self.assertContains(banner, f"It is optional for your role ({role})")
                self.assertNotContains(banner, "Owners and admins need it")
                enrol = self.client.get(reverse("otp-enrol"))
                self.assertContains(enrol, f"optional for your role ({role})")
                login_verified(self.client, user)
                self.assertNotContains(self.client.get(reverse("dashboard")), 'id="setup-2fa"')
        self.client.force_login(self.alice)  # an admin: the panel waits until 2FA is set up, and says why
        self.assertRedirects(self.client.get(reverse("dashboard")), "/account/2fa/?next=%2F")
        self.assertContains(self.client.get(reverse("otp-enrol")), "Your role (admin) needs two-factor authentication")

    def test_viewer_sees_dashboard_without_access_or_audit_cards(self):
        self.client.force_login(self.bob)
        response = self.client.get(reverse("dashboard"))
        self.assertEqual(response.status_code, 200)
        self.assertNotContains(response, 'id="member-count"')
        self.assertNotContains(response, "Latest changes")

    def test_nav_item_renders_nothing_for_an_unknown_url_name(self):
        template = Template(
            '{% load deliveryhub_ui %}{% nav_item "no-such-page" "Nope" %}{% nav_item "audit-log" "Audit" %}'
        )
        request = RequestFactory().get("/audit/")
        request.principal, request.tenant = Principal(is_platform=True), None
        html = template.render(Context({"request": request}))
        self.assertNotIn("Nope", html)
        self.assertIn('class="nav-link active" href="/audit/"', html)

    def test_user_without_tenant_gets_a_friendly_dashboard(self):
        loner = make_user("loner@x.test")
        self.client.force_login(loner)
        self.assertContains(self.client.get(reverse("dashboard")), "not a member of any tenant")
        response = self.client.get(reverse("apikey-list"))
        self.assertRedirects(response, reverse("dashboard"))


class TenantSwitcherTest(UITestCase):
    def test_switch_to_a_tenant_of_mine(self):
        services.add_member(self.tenant_b, self.alice, Role.VIEWER)
        login_verified(self.client, self.alice)
        response = self.client.post(reverse("switch-tenant"), {"tenant": self.tenant_b.pk, "next": "/settings/"})
        self.assertRedirects(response, "/settings/", fetch_redirect_response=False)
        self.assertEqual(self.client.session[SESSION_TENANT_KEY], self.tenant_b.pk)
        self.assertContains(self.client.get(reverse("dashboard")), "Tenant B")

    def test_switch_refuses_a_tenant_i_am_not_member_of(self):
        login_verified(self.client, self.alice)
        before = AuditEntry.objects.count()
        response = self.client.post(reverse("switch-tenant"), {"tenant": self.tenant_b.pk})
        self.assertEqual(response.status_code, 404)
        self.assertNotIn(SESSION_TENANT_KEY, self.client.session)
        self.assertEqual(AuditEntry.objects.count(), before)  # switching audits nothing
        self.assertNotContains(self.client.get(reverse("dashboard")), "Tenant B")

    def test_switch_ignores_an_external_next(self):
        login_verified(self.client, self.alice)
        data = {"tenant": self.tenant_a.pk, "next": "https://evil.test/"}
        response = self.client.post(reverse("switch-tenant"), data)
        self.assertRedirects(response, reverse("dashboard"), fetch_redirect_response=False)

    def test_switch_is_post_only(self):
        login_verified(self.client, self.alice)
        self.assertEqual(self.client.get(reverse("switch-tenant")).status_code, 405)


class ApiKeyPagesTest(UITestCase):
    def test_raw_key_is_shown_once_then_only_the_prefix(self):
        self.login_sudo(self.alice)
        nonce = self.key_form_nonce()
        data = self.key_data(nonce, allowed_networks="192.0.2.0/24\n\n2001:db8::/32", expires="2999-01-01")
        response = self.client.post(reverse("apikey-create"), data)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Cache-Control"], "no-store")
        raw = re.search(r'id="raw-key" value="([^"]+)"', response.content.decode()).group(1)
        key = services.authenticate_api_key(raw, "192.0.2.1")  # the key is limited to 192.0.2.0/24
        self.assertEqual((key.tenant, key.name, key.role), (self.tenant_a, "ci", Role.ADMIN))
        self.assertEqual(key.allowed_networks, ["192.0.2.0/24", "2001:db8::/32"])
        self.assertEqual(key.expires.year, 2999)
        self.assertNotIn(raw, str(dict(self.client.session)))  # never stored in the session
        listing = self.client.get(reverse("apikey-list"))
        self.assertNotContains(listing, raw)
        self.assertContains(listing, key.prefix)
        # Submitting the same form again (a reload of the POST) creates nothing and shows no key.
        again = self.client.post(reverse("apikey-create"), data)
        self.assertRedirects(again, reverse("apikey-list"))
        self.assertEqual(ApiKey.objects.filter(tenant=self.tenant_a, name="ci").count(), 1)
        self.assertTrue(AuditEntry.objects.filter(action="apikey.create", object_id=str(key.pk)).exists())

    def test_invalid_networks_and_past_expiry_are_field_errors(self):
        self.login_sudo(self.alice)
        data = self.key_data(self.key_form_nonce(), allowed_networks="not-a-net", expires="2001-01-01")
        response = self.client.post(reverse("apikey-create"), data)
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "is not an IP address or network", status_code=400)
        self.assertContains(response, "must be in the future", status_code=400)
        self.assertFalse(ApiKey.objects.filter(name="ci").exists())

    def test_admin_cannot_create_an_owner_key(self):
        self.login_sudo(self.alice)
        response = self.client.post(reverse("apikey-create"), self.key_data(self.key_form_nonce(), role=Role.OWNER))
        self.assertEqual(response.status_code, 400)
        self.assertFalse(ApiKey.objects.filter(name="ci").exists())

    def test_creation_needs_a_verified_session_and_a_fresh_code_and_keeps_the_form(self):
        self.client.force_login(self.alice)  # password only, no device
        response = self.client.post(reverse("apikey-create"), self.key_data("x"))
        self.assertTrue(response["Location"].startswith(reverse("otp-enrol")))
        device = login_verified(self.client, self.alice)  # verified, but no fresh code (sudo)
        data = self.key_data(self.key_form_nonce(), name="filled in before the code", allowed_networks="192.0.2.0/24")
        response = self.client.post(reverse("apikey-create"), data)
        # The code is asked for on the spot, and the form's fields travel with it (hidden), not lost in a redirect.
        self.assertContains(response, "Confirm it is you")
        self.assertContains(response, f'action="{reverse("apikey-create")}"')
        self.assertContains(response, 'type="hidden" name="name" value="filled in before the code"')
        self.assertContains(response, 'type="hidden" name="allowed_networks" value="192.0.2.0/24"')
        self.assertEqual(response["Cache-Control"], "no-store")
        self.assertFalse(ApiKey.objects.filter(name=data["name"]).exists())
        wrong_code = "000000" if app_code(device) != "000000" else "111111"
        wrong = self.client.post(reverse("apikey-create"), {**data, "sudo_code": wrong_code})
        self.assertContains(wrong, "Invalid code.", status_code=403)
        self.assertContains(wrong, 'type="hidden" name="name" value="filled in before the code"', status_code=403)
        device.throttle_reset()  # django-otp's back-off after the wrong code (tested in test_auth)
        response = self.client.post(reverse("apikey-create"), {**data, "sudo_code": app_code(device)})
        self.assertContains(response, 'id="raw-key"')
        key = ApiKey.objects.get(name="filled in before the code")
        self.assertEqual(key.allowed_networks, ["192.0.2.0/24"])

    def test_viewer_gets_403(self):
        self.client.force_login(self.bob)
        self.assertEqual(self.client.get(reverse("apikey-list")).status_code, 403)
        self.assertEqual(self.client.post(reverse("apikey-create"), self.key_data("x")).status_code, 403)
        response = self.client.post(reverse("apikey-revoke", args=[self.bob_key_obj.pk]))
        self.assertEqual(response.status_code, 403)
        self.assertContains(response, "Not allowed", status_code=403)
        self.assertFalse(ApiKey.objects.filter(name="ci").exists())
        self.bob_key_obj.refresh_from_db()
        self.assertIsNone(self.bob_key_obj.revoked)

    def test_revoke_own_key(self):
        login_verified(self.client, self.alice)
        response = self.client.post(reverse("apikey-revoke", args=[self.bob_key_obj.pk]))
        self.assertRedirects(response, reverse("apikey-list"))
        self.bob_key_obj.refresh_from_db()
        self.assertIsNotNone(self.bob_key_obj.revoked)
        self.assertIsNone(services.authenticate_api_key(self.bob_key))
        self.assertTrue(AuditEntry.objects.filter(action="apikey.revoke", object_id=str(self.bob_key_obj.pk)).exists())

    def test_revoke_needs_a_verified_session(self):
        self.client.force_login(self.alice)
        response = self.client.post(reverse("apikey-revoke", args=[self.bob_key_obj.pk]))
        self.assertEqual(response.status_code, 302)
        self.bob_key_obj.refresh_from_db()
        self.assertIsNone(self.bob_key_obj.revoked)

    def test_other_tenants_key_is_404(self):
        login_verified(self.client, self.alice)
        response = self.client.post(reverse("apikey-revoke", args=[self.charlie_key_obj.pk]))
        self.assertEqual(response.status_code, 404)
        self.charlie_key_obj.refresh_from_db()
        self.assertIsNone(self.charlie_key_obj.revoked)
        self.assertNotContains(self.client.get(reverse("apikey-list")), self.charlie_key_obj.prefix)


class MemberPagesTest(UITestCase):
    def test_add_change_and_remove_a_member(self):
        self.login_sudo(self.alice)
        response = self.client.post(
            reverse("member-add"), {"email": "Dora@A.test", "role": Role.MARKETER, "password": PASSWORD}
        )
        self.assertRedirects(response, reverse("member-list"))
        membership = Membership.objects.get(tenant=self.tenant_a, user__email="dora@a.test")
        self.assertEqual(membership.role, Role.MARKETER)
        self.assertTrue(membership.user.check_password(PASSWORD))
        self.assertContains(self.client.get(reverse("member-list")), "dora@a.test")

        response = self.client.post(reverse("member-role", args=[membership.pk]), {"role": Role.COMPLIANCE})
        self.assertRedirects(response, reverse("member-list"))
        membership.refresh_from_db()
        self.assertEqual(membership.role, Role.COMPLIANCE)

        response = self.client.post(reverse("member-remove", args=[membership.pk]))
        self.assertRedirects(response, reverse("member-list"))
        self.assertFalse(Membership.objects.filter(pk=membership.pk).exists())
        self.assertTrue(AuditEntry.objects.filter(action="delete", object_type="deliveryhub.membership").exists())

    def test_adding_an_existing_member_is_a_form_error(self):
        self.login_sudo(self.alice)
        response = self.client.post(reverse("member-add"), {"email": "bob@a.test", "role": Role.ADMIN})
        self.assertContains(response, "already a member", status_code=400)
        self.assertEqual(Membership.objects.get(user=self.bob, tenant=self.tenant_a).role, Role.VIEWER)

    def test_viewer_gets_403(self):
        self.client.force_login(self.bob)
        bobs = Membership.objects.get(user=self.bob, tenant=self.tenant_a)
        self.assertEqual(self.client.get(reverse("member-list")).status_code, 403)
        response = self.client.post(reverse("member-add"), {"email": "x@a.test", "role": "viewer"})
        self.assertEqual(response.status_code, 403)
        self.assertEqual(self.client.post(reverse("member-role", args=[bobs.pk]), {"role": "admin"}).status_code, 403)
        self.assertEqual(self.client.post(reverse("member-remove", args=[bobs.pk])).status_code, 403)
        bobs.refresh_from_db()
        self.assertEqual(bobs.role, Role.VIEWER)

    def test_other_tenants_member_is_404(self):
        self.login_sudo(self.alice)
        charlies = Membership.objects.get(user=self.charlie)
        self.assertEqual(self.client.post(reverse("member-remove", args=[charlies.pk])).status_code, 404)
        response = self.client.post(reverse("member-role", args=[charlies.pk]), {"role": "viewer"})
        self.assertEqual(response.status_code, 404)
        self.assertTrue(Membership.objects.filter(pk=charlies.pk, role=Role.ADMIN).exists())

    def test_changes_need_a_verified_session(self):
        self.client.force_login(self.alice)
        bobs = Membership.objects.get(user=self.bob, tenant=self.tenant_a)
        response = self.client.post(reverse("member-role", args=[bobs.pk]), {"role": Role.ADMIN})
        self.assertEqual(response.status_code, 302)
        bobs.refresh_from_db()
        self.assertEqual(bobs.role, Role.VIEWER)

    def test_admin_cannot_grant_or_revoke_the_owner_role(self):
        owner = make_user("olga@a.test", self.tenant_a, Role.OWNER)
        self.login_sudo(self.alice)
        page = self.client.get(reverse("member-list"))
        self.assertNotContains(page, 'value="owner"')  # neither offered nor editable for an admin
        self.assertNotContains(page, reverse("member-remove", args=[Membership.objects.get(user=owner).pk]))
        bobs = Membership.objects.get(user=self.bob, tenant=self.tenant_a)
        response = self.client.post(reverse("member-role", args=[bobs.pk]), {"role": Role.OWNER}, follow=True)
        self.assertContains(response, "Only an owner can grant or revoke the owner role")
        olgas = Membership.objects.get(user=owner)
        self.client.post(reverse("member-role", args=[olgas.pk]), {"role": Role.VIEWER})
        self.client.post(reverse("member-remove", args=[olgas.pk]))
        self.assertEqual(Membership.objects.get(pk=olgas.pk).role, Role.OWNER)
        self.assertEqual(Membership.objects.get(pk=bobs.pk).role, Role.VIEWER)
        response = self.client.post(reverse("member-add"), {"email": "new@a.test", "role": Role.OWNER})
        self.assertEqual(response.status_code, 400)  # not a choice for an admin

    def test_last_owner_cannot_be_removed_or_demoted(self):
        owner = make_user("olga@a.test", self.tenant_a, Role.OWNER)
        olgas = Membership.objects.get(user=owner)
        self.login_sudo(owner)
        response = self.client.post(reverse("member-role", args=[olgas.pk]), {"role": Role.ADMIN}, follow=True)
        self.assertContains(response, "Cannot demote the last owner")
        response = self.client.post(reverse("member-remove", args=[olgas.pk]), follow=True)
        self.assertContains(response, "Cannot remove the last owner")
        self.assertEqual(Membership.objects.get(pk=olgas.pk).role, Role.OWNER)
        # With a second owner, the first may step down.
        bobs = Membership.objects.get(user=self.bob, tenant=self.tenant_a)
        self.client.post(reverse("member-role", args=[bobs.pk]), {"role": Role.OWNER})
        self.client.post(reverse("member-role", args=[olgas.pk]), {"role": Role.ADMIN})
        self.assertEqual(Membership.objects.get(pk=olgas.pk).role, Role.ADMIN)


class MemberServicesTest(TenantTestCase):
    def test_change_role_and_remove_member_keep_one_owner(self):
        owner = make_user("olga@a.test", self.tenant_a, Role.OWNER)
        olgas = Membership.objects.get(user=owner)
        with self.assertRaisesMessage(ValidationError, "last owner"):
            services.change_role(olgas, Role.VIEWER, acting_user=owner)
        with self.assertRaisesMessage(ValidationError, "last owner"):
            services.remove_member(olgas, acting_user=None)
        with self.assertRaisesMessage(ValidationError, "Only an owner"):
            services.change_role(Membership.objects.get(user=self.bob), Role.OWNER, acting_user=self.alice)
        with self.assertRaisesMessage(ValidationError, "Unknown role"):
            services.change_role(olgas, "emperor", acting_user=owner)

    def test_add_member_by_email_creates_the_user_once(self):
        membership = services.add_member_by_email(self.tenant_b, "ALICE@a.test", Role.VIEWER, acting_user=self.charlie)
        self.assertEqual(membership.user, self.alice)
        with self.assertRaisesMessage(ValidationError, "already a member"):
            services.add_member_by_email(self.tenant_b, "alice@a.test", Role.VIEWER, acting_user=self.charlie)


class AuditLogPageTest(UITestCase):
    def test_shows_own_tenant_only_and_filters(self):
        audit.record("test.marker", tenant=self.tenant_a, object_repr="visible-a", object_type="test.thing")
        audit.record("test.marker", tenant=self.tenant_b, object_repr="secret-b", object_type="test.thing")
        login_verified(self.client, self.alice)
        response = self.client.get(reverse("audit-log"))
        self.assertContains(response, "visible-a")
        self.assertNotContains(response, "secret-b")
        self.assertNotContains(response, "charlie")
        self.assertContains(response, "apikey.create")
        filtered = self.client.get(reverse("audit-log"), {"action": "test.marker"})
        table = filtered.content.decode().split('id="audit-table"')[1]
        self.assertIn("visible-a", table)
        self.assertNotIn("apikey.create", table)  # (the action dropdown above still offers it)
        self.assertNotIn("secret-b", filtered.content.decode())

    def test_request_id_link_filters_one_request(self):
        with audit.audit_context(request_id="req-one-12345"):
            audit.record("test.marker", tenant=self.tenant_a, object_repr="marker-first")
        with audit.audit_context(request_id="req-two-12345"):
            audit.record("test.marker", tenant=self.tenant_a, object_repr="marker-second")
        login_verified(self.client, self.alice)
        response = self.client.get(reverse("audit-log"))
        self.assertContains(response, 'href="?request_id=req-one-12345"')
        response = self.client.get(reverse("audit-log"), {"request_id": "req-one-12345"})
        self.assertContains(response, "marker-first")
        self.assertNotContains(response, "marker-second")

    def test_paginated_by_50(self):
        for i in range(55):
            audit.record("test.bulk", tenant=self.tenant_a, object_repr=f"row-{i}")
        login_verified(self.client, self.alice)
        response = self.client.get(reverse("audit-log"), {"action": "test.bulk"})
        self.assertEqual(len(response.context["page"]), 50)
        self.assertContains(response, "Page 1 of 2")
        self.assertContains(response, "?action=test.bulk&amp;page=2")
        page2 = self.client.get(reverse("audit-log"), {"action": "test.bulk", "page": 2})
        self.assertEqual(len(page2.context["page"]), 5)

    def test_changes_render_per_field(self):
        login_verified(self.client, self.alice)
        services.revoke_api_key(self.bob_key_obj)
        response = self.client.get(reverse("audit-log"), {"action": "update", "object_id": str(self.bob_key_obj.pk)})
        row = response.content.decode().split('data-field="revoked"')[1].split("</tr>")[0]
        self.assertIn('<del class="text-danger">(none)</del> → <ins', row)  # the field that changed, before → after

    def test_viewer_and_marketer_get_403(self):
        self.client.force_login(self.bob)
        self.assertEqual(self.client.get(reverse("audit-log")).status_code, 403)
        marketer = make_user("mara@a.test", self.tenant_a, Role.MARKETER)
        self.client.force_login(marketer)
        self.assertEqual(self.client.get(reverse("audit-log")).status_code, 403)


@override_settings(MEDIA_ROOT=Path(settings.VAR_DIR) / "test-media")
class JobPagesTest(UITestCase):
    def make_job(self, tenant, **fields):
        return Job.objects.create(tenant=tenant, user=self.alice, name="Audit export", runner="x.Y", **fields)

    def test_running_job_polls_its_fragment(self):
        job = self.make_job(self.tenant_a, status=JobStatus.RUNNING, progress=40, log="step 1\n")
        login_verified(self.client, self.alice)
        response = self.client.get(reverse("job-detail", args=[job.uuid]))
        self.assertContains(response, f'hx-get="{reverse("job-status", args=[job.uuid])}"')
        self.assertContains(response, 'hx-trigger="every 2s"')
        self.assertContains(response, "width: 40%")
        fragment = self.client.get(reverse("job-status", args=[job.uuid]))
        self.assertContains(fragment, "step 1")
        self.assertNotContains(fragment, "<html")

    def test_completed_job_offers_its_file(self):
        media = Path(settings.MEDIA_ROOT)
        (media / "exports").mkdir(parents=True, exist_ok=True)
        (media / "exports" / "audit.csv").write_text("seq,action\n1,create\n")
        job = self.make_job(self.tenant_a, status=JobStatus.COMPLETED, progress=100, result_file="exports/audit.csv")
        login_verified(self.client, self.alice)
        response = self.client.get(reverse("job-detail", args=[job.uuid]))
        self.assertNotContains(response, "hx-trigger")
        self.assertContains(response, reverse("job-download", args=[job.uuid]))
        download = self.client.get(reverse("job-download", args=[job.uuid]))
        self.assertEqual(b"".join(download.streaming_content), b"seq,action\n1,create\n")

    def test_file_outside_media_root_is_404(self):
        job = self.make_job(self.tenant_a, status=JobStatus.COMPLETED, result_file="../../../etc/passwd")
        login_verified(self.client, self.alice)
        self.assertEqual(self.client.get(reverse("job-download", args=[job.uuid])).status_code, 404)

    def test_other_tenants_job_is_404(self):
        job = self.make_job(self.tenant_b, status=JobStatus.RUNNING)
        login_verified(self.client, self.alice)
        for name in ("job-detail", "job-status", "job-download"):
            self.assertEqual(self.client.get(reverse(name, args=[job.uuid])).status_code, 404)


class NoExternalResourcesTest(TenantTestCase):
    EXTERNAL = re.compile(r"""(?:src|href|action|hx-\w+|url|@import)\s*[=(]?\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)

    def test_templates_and_our_static_files_reference_no_external_url(self):
        root = Path(settings.BASE_DIR)
        files = [*(root / "templates").rglob("*.html"), *root.glob("*/templates/**/*.html")]
        files += [*(root / "static/css").rglob("*"), *(root / "static/js").rglob("*")]
        offenders = [f"{path.relative_to(root)}: {m.group(0)}" for path in files if path.is_file()
                     for m in self.EXTERNAL.finditer(path.read_text(errors="replace"))]  # fmt: skip
        self.assertEqual(offenders, [])

    def test_pages_load_vendored_assets(self):
        login_verified(self.client, self.alice)
        response = self.client.get(reverse("dashboard"))
        for asset in ("bootstrap/bootstrap.min.css", "bootstrap/bootstrap.bundle.min.js", "htmx/htmx.min.js"):
            asset = "vendor/" + asset
            self.assertContains(response, settings.STATIC_URL + asset)
            self.assertTrue((Path(settings.BASE_DIR) / "static" / asset).is_file(), asset)
