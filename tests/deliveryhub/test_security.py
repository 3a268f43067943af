"""Adversarial checks of the core's promises: tenant isolation, roles, OTP, API keys, audit, API errors."""

import json
import time
from unittest import mock

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import IntegrityError, transaction
from django.test import Client, override_settings

from deliveryhub import services
from deliveryhub.choices import Role
from deliveryhub.constants import SESSION_OTP_SUDO_KEY
from deliveryhub.models import ApiKey, AuditEntry, Membership, Tenant
from deliveryhub.services import authenticate_api_key
from deliveryhub.testing.cases import TenantTestCase, login_verified, make_user


def session_in(user, tenant=None, verified=True):
    """A test client signed in as `user` (OTP-verified or not) with `tenant` as the current tenant."""
    client = Client()
    if verified:
        login_verified(client, user)
    else:
        client.force_login(user)
    if tenant is not None:
        session = client.session
        session["deliveryhub.tenant_id"] = tenant.pk
        session.save()
    return client


class ForeignIdsInFiltersTest(TenantTestCase):
    """A model-choice filter answers the same for another tenant's object as for one that does not exist."""

    def test_filtering_by_a_foreign_user_is_an_invalid_choice_like_a_missing_one(self):
        missing = self.api(self.alice_key).get("/api/v1/memberships/", {"user": 999999})
        foreign = self.api(self.alice_key).get("/api/v1/memberships/", {"user": self.charlie.pk})
        self.assertEqual(missing.status_code, 400)
        self.assertEqual(foreign.status_code, missing.status_code)
        self.assertEqual(foreign.json(), missing.json())
        own = self.api(self.alice_key).get("/api/v1/memberships/", {"user": self.bob.pk})
        self.assertEqual(own.status_code, 200)
        self.assertEqual(own.json()["count"], 1)

    def test_browsable_api_filter_form_lists_no_other_tenant_user(self):
        client = session_in(self.alice, self.tenant_a)
        response = client.get("/api/v1/memberships/?format=api")
        self.assertEqual(response.status_code, 200)
        self.assertIn(b"bob@a.test", response.content)
        self.assertFalse(b"charlie@b.test" in response.content)


class OTPAcrossTenantsTest(TenantTestCase):
    def test_admin_elsewhere_needs_otp_to_change_that_tenant_from_another_current_tenant(self):
        services.add_member(self.tenant_b, self.alice, Role.VIEWER)  # alice: admin in A, viewer in B
        client = session_in(self.alice, self.tenant_b, verified=False)
        membership = Membership.objects.get(user=self.bob, tenant=self.tenant_a)
        response = client.patch(
            f"/api/v1/memberships/{membership.pk}/", json.dumps({"role": "marketer"}), content_type="application/json"
        )
        self.assertEqual(response.status_code, 403, response.content)
        self.assertEqual(response.json()["error"]["code"], "otp_required")
        membership.refresh_from_db()
        self.assertEqual(membership.role, Role.VIEWER)

        verified = session_in(self.alice, self.tenant_b, verified=True)
        response = verified.patch(
            f"/api/v1/memberships/{membership.pk}/", json.dumps({"role": "marketer"}), content_type="application/json"
        )
        self.assertEqual(response.status_code, 403, response.content)  # a role change needs a fresh code too
        self.assertEqual(response.json()["error"]["code"], "otp_sudo_required")
        session = verified.session
        session[SESSION_OTP_SUDO_KEY] = time.time()
        session.save()
        response = verified.patch(
            f"/api/v1/memberships/{membership.pk}/", json.dumps({"role": "marketer"}), content_type="application/json"
        )
        self.assertEqual(response.status_code, 200, response.content)


class ApiKeyNetworksTest(TenantTestCase):
    def test_network_restricted_key_is_refused_when_the_client_address_is_unknown(self):
        _, raw = services.create_api_key(
            tenant=self.tenant_a, name="net", role=Role.ADMIN, allowed_networks=["10.9.0.0/16"]
        )
        self.assertIsNone(authenticate_api_key(raw, None))
        self.assertIsNone(authenticate_api_key(raw, ""))
        self.assertIsNotNone(authenticate_api_key(raw, "10.9.1.2"))
        response = self.api(raw).get("/api/v1/api-keys/", REMOTE_ADDR="")
        self.assertEqual(response.status_code, 401)


class MembershipCreateTest(TenantTestCase):
    def test_role_may_be_omitted(self):
        response = self.api(self.alice_key).post("/api/v1/memberships/", {"email": "zed@a.test"}, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["role"], Role.VIEWER)


class APIErrorFormatTest(TenantTestCase):
    def test_unexpected_exception_is_a_json_500(self):
        client = self.api(self.alice_key)
        client.raise_request_exception = False
        with mock.patch("deliveryhub.api.views.ApiKeyViewSet.list", side_effect=RuntimeError("boom secret detail")):
            response = client.get("/api/v1/api-keys/")
        self.assertEqual(response.status_code, 500)
        self.assertEqual(response["Content-Type"], "application/json")
        error = response.json()["error"]
        self.assertEqual(error["code"], "server_error")
        self.assertEqual(error["fields"], {})
        self.assertNotIn("boom", response.content.decode())

    def test_unknown_api_url_is_a_json_404(self):
        response = self.api(self.alice_key).get("/api/v1/no-such-things/")
        self.assertEqual(response.status_code, 404)
        self.assertEqual(response.json(), {"error": {"code": "not_found", "message": "Not found.", "fields": {}}})

    def test_ui_404_stays_html(self):
        client = session_in(self.alice, self.tenant_a)
        response = client.get("/no-such-page/")
        self.assertEqual(response.status_code, 404)
        self.assertTrue(response["Content-Type"].startswith("text/html"))


class AuditDeletesTest(TenantTestCase):
    def test_bulk_queryset_delete_is_audited_per_object(self):
        key_ids = list(ApiKey.objects.filter(tenant=self.tenant_a).values_list("pk", flat=True))
        ApiKey.objects.filter(pk__in=key_ids).delete()
        logged = set(
            AuditEntry.objects.filter(action="delete", object_type="deliveryhub.apikey").values_list(
                "object_id", flat=True
            )
        )
        self.assertEqual(logged, {str(pk) for pk in key_ids})

    def test_cascade_of_a_tenant_delete_is_audited(self):
        memberships = set(Membership.objects.filter(tenant=self.tenant_b).values_list("pk", flat=True))
        keys = set(ApiKey.objects.filter(tenant=self.tenant_b).values_list("pk", flat=True))
        tenant_pk = self.tenant_b.pk
        self.tenant_b.delete()
        deleted = AuditEntry.objects.filter(action="delete")
        self.assertEqual(
            set(deleted.filter(object_type="deliveryhub.membership").values_list("object_id", flat=True)),
            {str(pk) for pk in memberships},
        )
        self.assertEqual(
            set(deleted.filter(object_type="deliveryhub.apikey").values_list("object_id", flat=True)),
            {str(pk) for pk in keys},
        )
        self.assertEqual(deleted.filter(object_type="deliveryhub.tenant", object_id=str(tenant_pk)).count(), 1)

    def test_single_delete_is_logged_once_with_its_values(self):
        membership = Membership.objects.get(user=self.bob, tenant=self.tenant_a)
        pk = membership.pk
        membership.delete()
        entries = AuditEntry.objects.filter(action="delete", object_type="deliveryhub.membership", object_id=str(pk))
        self.assertEqual(entries.count(), 1)
        self.assertEqual(entries.get().prechange["role"], Role.VIEWER)

    def test_admin_bulk_delete_is_audited(self):
        root = make_user("root@ops.test", is_superuser=True)
        client = Client()
        login_verified(client, root)
        tenant = services.create_tenant("tenant-c", "Tenant C")
        response = client.post(
            "/admin/deliveryhub/tenant/", {"action": "delete_selected", "_selected_action": [tenant.pk], "post": "yes"}
        )
        self.assertEqual(response.status_code, 302)
        self.assertFalse(Tenant.objects.filter(pk=tenant.pk).exists())
        entry = AuditEntry.objects.get(action="delete", object_type="deliveryhub.tenant", object_id=str(tenant.pk))
        self.assertEqual(entry.actor_name, "root@ops.test")


class AuditRedactionTest(TenantTestCase):
    def test_change_of_a_redacted_field_is_logged_without_its_value(self):
        key = self.alice_key_obj
        with mock.patch.object(ApiKey, "audit_redact", frozenset({"name"})):
            key = ApiKey.objects.get(pk=key.pk)
            key.name = "very-secret-new-name"
            key.save()
        entry = self.last_audit(object_type="deliveryhub.apikey", object_id=str(key.pk), action="update")
        self.assertIsNotNone(entry, "a change of a redacted field must still be audited")
        self.assertIn("name", entry.postchange)
        self.assertNotIn("very-secret-new-name", json.dumps([entry.prechange, entry.postchange]))
        self.assertNotIn("alice", json.dumps([entry.prechange, entry.postchange]))

    def test_encrypted_fields_are_never_logged_in_clear_even_when_not_declared(self):
        from queues.models import Route

        with mock.patch.object(Route, "audit_redact", frozenset()):
            route = Route(tenant=self.tenant_a, pattern="*", host="relay.example.test", username="u",
                          password="hunter2-relay-password")  # fmt: skip
            route.save()
            route = Route.objects.get(pk=route.pk)
            route.password = "changed-relay-password-2"
            route.save()
            route.delete()
        entries = AuditEntry.objects.filter(object_type="queues.route")
        self.assertEqual(set(entries.values_list("action", flat=True)), {"create", "update", "delete"})
        dumped = json.dumps([[e.prechange, e.postchange] for e in entries])
        self.assertNotIn("hunter2", dumped)
        self.assertNotIn("changed-relay", dumped)


class AuditAppendOnlyTest(TenantTestCase):
    def test_saving_a_new_instance_with_an_existing_pk_does_not_overwrite(self):
        entry = AuditEntry.objects.order_by("seq").first()
        forged = AuditEntry(pk=entry.pk, seq=entry.seq, action="forged", actor_type="system", prev_hash="", hash="")
        with self.assertRaises(IntegrityError), transaction.atomic():
            forged.save()
        entry.refresh_from_db()
        self.assertNotEqual(entry.action, "forged")


class AdminIsForOperatorsTest(TenantTestCase):
    def test_staff_without_superuser_cannot_browse_tenants_in_admin(self):
        staff = make_user("staff@a.test", self.tenant_a, Role.ADMIN)
        staff.is_staff = True
        staff.save()
        staff.user_permissions.add(Permission.objects.get(codename="view_tenant"))
        client = Client()
        login_verified(client, staff)
        response = client.get("/admin/deliveryhub/tenant/")
        self.assertNotEqual(response.status_code, 200)
        self.assertNotIn(b"Tenant B", response.content)


class UserChangesAuditedTest(TenantTestCase):
    def test_promotion_to_superuser_in_admin_is_audited(self):
        root = make_user("root@ops.test", is_superuser=True)
        client = Client()
        login_verified(client, root)
        self.assertEqual(client.get(f"/admin/auth/user/{self.bob.pk}/change/").status_code, 200)
        joined = self.bob.date_joined
        data = {
            "username": self.bob.username, "email": self.bob.email, "first_name": "", "last_name": "",
            "is_active": "on", "is_staff": "on", "is_superuser": "on",
            "date_joined_0": joined.strftime("%Y-%m-%d"), "date_joined_1": joined.strftime("%H:%M:%S"),
        }  # fmt: skip
        response = client.post(f"/admin/auth/user/{self.bob.pk}/change/", data)
        self.assertEqual(response.status_code, 302)
        self.assertTrue(get_user_model().objects.get(pk=self.bob.pk).is_superuser)
        entry = self.last_audit(object_type="auth.user", object_id=str(self.bob.pk), action="user.update")
        self.assertIsNotNone(entry, "promoting a user is audited")
        self.assertEqual(entry.prechange["is_superuser"], False)
        self.assertEqual(entry.postchange["is_superuser"], True)
        self.assertEqual(entry.actor_name, "root@ops.test")

    @override_settings()
    def test_ensure_superuser_is_audited(self):
        from io import StringIO

        from django.core.management import call_command

        with mock.patch.dict("os.environ", {"DELIVERYHUB_ADMIN_EMAIL": "first@ops.test",
                                            "DELIVERYHUB_ADMIN_PASSWORD": "a long operator passphrase 42"}):
            call_command("ensure_superuser", stdout=StringIO())
        user = get_user_model().objects.get(username="first@ops.test")
        entry = self.last_audit(object_type="auth.user", object_id=str(user.pk))
        self.assertIsNotNone(entry)
        self.assertEqual(entry.action, "user.create")


class CollectionVerbsActInTheCurrentTenantTest(TenantTestCase):
    def test_role_elsewhere_does_not_allow_a_collection_verb_in_the_current_tenant(self):
        dave = make_user("dave@b.test", self.tenant_b, Role.MARKETER)  # may send in B
        services.add_member(self.tenant_a, dave, Role.VIEWER)  # but only reads in A
        client = session_in(dave, self.tenant_a, verified=False)
        response = client.post("/api/v1/messages/batch/", json.dumps({"messages": []}), content_type="application/json")
        self.assertEqual(response.status_code, 403, response.content)
        client = session_in(dave, self.tenant_b, verified=False)
        response = client.post("/api/v1/messages/batch/", json.dumps({"messages": []}), content_type="application/json")
        self.assertNotEqual(response.status_code, 403, response.content)
