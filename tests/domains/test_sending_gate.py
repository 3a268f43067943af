"""A domain whose DKIM record has not verified cannot send — at intake and in the delivery engine — unless an admin
allows it, and the refusal says why. Verification runs against the loopback DNS server; delivery goes to an
aiosmtpd sink through a route."""

import django_rq
from django.test import override_settings
from django.utils import timezone

from deliveryhub.models import AuditEntry
from deliveryhub.testing.smtp import SMTPSink
from domains import services
from domains.choices import DomainStatus, RecordKind
from domains.testing import DNSTestCase
from queues.choices import MessageStatus
from queues.constants import SCHEDULED_LEASE_PREFIX
from queues.delivery import scheduler, state, worker
from queues.models import Message, Route
from queues.services import Submission, accept_messages
from queues.testing import make_sending_ips

URL = "/api/v1/messages/"


def deliver_now():
    """One scheduler run, then every batch it handed out delivered in this process."""
    scheduler.schedule()
    batches = {}
    for pk, owner in Message.objects.filter(lease_owner__startswith=SCHEDULED_LEASE_PREFIX).values_list(
        "id", "lease_owner"
    ):
        batches.setdefault(owner, []).append(pk)
    for token, ids in batches.items():
        worker.deliver_batch(token, ids)


@override_settings(DEMO_MODE=False)
class SendingGateTest(DNSTestCase):
    def setUp(self):
        super().setUp()
        self.domain = services.create_domain(self.tenant_a, "example.test")
        self.payload = {"from": "News <news@example.test>", "to": ["one@receiver.test"], "subject": "Hi", "text": "x"}

    def test_intake_refuses_an_unverified_domain_with_the_reason(self):
        key = self.domain.dkim_keys.get()
        response = self.api(self.alice_key).post(URL, self.payload, format="json")
        self.assertEqual(response.status_code, 400, response.content)
        reason = response.json()["error"]["fields"]["from"][0]
        self.assertIn("example.test cannot send yet: its DKIM record", reason)
        self.assertIn(key.dns_name, reason)
        self.assertIn("allow unverified sending", reason)
        self.assertEqual(Message.objects.count(), 0)
        # a viewer cannot lift the block; an admin can, and that is audited
        domain_url = f"/api/v1/domains/{self.domain.pk}/"
        patch = {"allow_unverified_sending": True}
        self.assertEqual(self.api(self.bob_key).patch(domain_url, patch, format="json").status_code, 403)
        self.assertEqual(self.api(self.alice_key).patch(domain_url, patch, format="json").status_code, 200)
        self.assertTrue(AuditEntry.objects.filter(action="update", postchange__allow_unverified_sending=True).exists())
        response = self.api(self.alice_key).post(URL, self.payload, format="json")
        self.assertEqual(response.status_code, 202, response.content)

    def test_internationalised_from_domain_finds_its_idna_domain(self):
        domain = services.create_domain(self.tenant_a, "bücher.example")
        self.publish(domain)
        services.verify_domain(domain)
        for sender in ("News <news@bücher.example>", "news@XN--BCHER-KVA.example"):
            response = self.api(self.alice_key).post(URL, {**self.payload, "from": sender}, format="json")
            self.assertEqual(response.status_code, 202, response.content)
        self.assertEqual(set(Message.objects.values_list("sending_domain", flat=True)), {domain.pk})

    def test_verified_domain_sends_and_stops_when_dkim_breaks(self):
        django_rq.get_connection("delivery").flushdb()
        self.addCleanup(state.close)
        make_sending_ips(("127.0.0.2",))
        sink = SMTPSink().start()
        self.addCleanup(sink.stop)
        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=sink.port)
        self.publish(self.domain)
        services.verify_domain(self.domain)
        self.domain.refresh_from_db()
        self.assertEqual(self.domain.status, DomainStatus.VERIFIED)

        [first] = accept_messages(
            self.tenant_a, Submission(sender="news@example.test", to=["a@r.test"], text="1")
        ).messages
        [second] = accept_messages(
            self.tenant_a, Submission(sender="news@example.test", to=["b@r.test"], text="2")
        ).messages
        Message.objects.filter(pk=second.pk).update(status=MessageStatus.HELD)  # queued while the domain could send
        deliver_now()
        first.refresh_from_db()
        self.assertEqual(first.status, MessageStatus.DELIVERED)
        self.assertIn(b"DKIM-Signature:", sink.messages[0].data)

        # the DKIM record disappears: the next check fails the domain, and queued mail is held back, not sent
        self.publish(self.domain, skip=(RecordKind.DKIM,))
        services.verify_domain(self.domain)
        self.domain.refresh_from_db()
        self.assertEqual(self.domain.status, DomainStatus.FAILING)
        Message.objects.filter(pk=second.pk).update(status=MessageStatus.QUEUED, next_attempt_at=timezone.now())
        deliver_now()
        second.refresh_from_db()
        self.assertNotEqual(second.status, MessageStatus.DELIVERED)
        self.assertEqual(len(sink.messages), 1)
        self.assertIn("Sending domain blocked", second.status_detail)
        self.assertIn("has not verified", second.status_detail)
