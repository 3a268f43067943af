"""Services name their actor in the audit log: `acting_user` when given, else the context's (request, job, system)."""

from deliveryhub import audit
from deliveryhub.choices import ActorType
from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase
from domains import services as domain_services
from ippools import services as ip_services
from ippools.testing import make_ip, make_node, make_pool


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
