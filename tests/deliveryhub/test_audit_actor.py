"""Services name their actor in the audit log: `acting_user` when given, else the context's (request, job, system)."""

from deliveryhub import audit, otp
from deliveryhub import services as core_services
from deliveryhub.choices import ActorType, Role
from deliveryhub.models import AuditEntry, Membership
from deliveryhub.testing.cases import TenantTestCase
from domains import services as domain_services
from ippools import services as ip_services
from ippools.testing import make_ip, make_node, make_pool
from queues import services as queue_services
from queues.services import Submission
from queues.testing import make_sending_domain
from queues.webhooks import services as webhook_services


class ActingUserTest(TenantTestCase):
    def test_acting_user_names_the_actor_of_verb_and_crud_entries(self):
        ip = make_ip("192.0.2.50", make_node("n1"))
        pool = make_pool("p", all_tenants=True)
        ip_services.pause_ip(ip, reason="maintenance", acting_user=self.alice)  # no request context: would be system
        ip_services.assign_ip(pool, ip, weight=5, acting_user=self.alice)  # a CRUD entry of the member row
        for entry in AuditEntry.objects.filter(object_id__in=[str(ip.pk)]).order_by("-seq")[:1]:
            self.assertEqual((entry.actor_type, entry.actor_id), (ActorType.USER, str(self.alice.pk)))
        member_entry = AuditEntry.objects.filter(object_type="ippools.ippoolmember").order_by("-seq").first()
        self.assertEqual((member_entry.actor_type, member_entry.actor_id), (ActorType.USER, str(self.alice.pk)))

    def test_without_acting_user_the_context_actor_is_kept(self):
        with audit.audit_context(principal=None):
            domain = domain_services.create_domain(self.tenant_a, "actor.test")
        entry = AuditEntry.objects.filter(object_type="domains.sendingdomain", object_id=str(domain.pk)).first()
        self.assertEqual(entry.actor_type, ActorType.SYSTEM)
        with audit.audit_context(principal=None):
            domain_services.update_domain(domain, acting_user=self.alice_key_obj, dmarc_rua="mailto:d@actor.test")
        entry = AuditEntry.objects.filter(object_id=str(domain.pk), action="update").order_by("-seq").first()
        self.assertEqual((entry.actor_type, entry.actor_id), (ActorType.API_KEY, str(self.alice_key_obj.pk)))


class ServicesOutsideARequestTest(TenantTestCase):
    """A service called outside any request (a command, a job, a shell) with `acting_user` records that actor, not
    "system", in every entry it writes: verb entries and the CRUD entries of the rows it saves."""

    def assertActor(self, entries, actor):
        entries = list(entries)
        self.assertTrue(entries)
        for entry in entries:
            self.assertEqual((entry.action, entry.actor_type, entry.actor_id), (entry.action, *actor))

    def newer_than(self, seq):
        return AuditEntry.objects.filter(seq__gt=seq).order_by("seq")

    def last_seq(self):
        return AuditEntry.objects.order_by("-seq").values_list("seq", flat=True).first() or 0

    def test_core_services(self):
        alice = (ActorType.USER, str(self.alice.pk))
        with audit.audit_context(principal=None):
            seq = self.last_seq()
            tenant = core_services.create_tenant("actor-c", "Actor C", acting_user=self.alice)
            core_services.create_user("dana@c.test", tenant=tenant, role=Role.ADMIN, acting_user=self.alice)
            self.assertActor(self.newer_than(seq), alice)

            seq = self.last_seq()
            key, _ = core_services.create_api_key(tenant=tenant, name="ci", acting_user=self.alice)
            core_services.revoke_api_key(key, acting_user=self.alice)
            self.assertActor(self.newer_than(seq), alice)

            seq = self.last_seq()
            membership = Membership.objects.get(tenant=tenant, user__username="dana@c.test")
            core_services.change_role(membership, Role.VIEWER, acting_user=self.alice_key_obj)
            core_services.remove_member(membership, acting_user=self.alice_key_obj)
            self.assertActor(self.newer_than(seq), (ActorType.API_KEY, str(self.alice_key_obj.pk)))

    def test_queue_services(self):
        alice = (ActorType.USER, str(self.alice.pk))
        make_sending_domain(self.tenant_a, "mail-a.test", dkim=False)
        with audit.audit_context(principal=None):
            [message] = queue_services.accept_messages(
                self.tenant_a, Submission(sender="a@mail-a.test", to=["x@example.com"], text="t")
            ).messages
            seq = self.last_seq()
            queue_services.cancel_message(message, acting_user=self.alice)
            queue_services.add_suppression(self.tenant_a, "gone@example.com", acting_user=self.alice)
            queue_services.create_smtp_credential(self.tenant_a, "app-login", acting_user=self.alice)
            self.assertActor(self.newer_than(seq), alice)

    def test_otp_services(self):
        with audit.audit_context(principal=None):
            seq = self.last_seq()
            otp.regenerate_recovery_codes(self.bob, acting_user=self.alice)
            otp.disable_otp(self.bob, acting_user=self.alice)
            self.assertActor(self.newer_than(seq), (ActorType.USER, str(self.alice.pk)))

    def test_webhook_services(self):
        with audit.audit_context(principal=None):
            seq = self.last_seq()
            webhook, _ = webhook_services.create_webhook(
                self.tenant_a, url="https://93.184.215.14/hook", acting_user=self.alice
            )  # a public address literal: nothing is resolved or fetched
            webhook_services.update_webhook(webhook, description="orders", acting_user=self.alice)
            webhook_services.rotate_secret(webhook, acting_user=self.alice)
            webhook_services.send_test_event(webhook, acting_user=self.alice)
            self.assertActor(self.newer_than(seq), (ActorType.USER, str(self.alice.pk)))
