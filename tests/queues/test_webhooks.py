"""Webhooks against a real HTTP receiver on loopback that verifies Standard Webhooks signatures; the SSRF guard."""

import json
from datetime import timedelta

from django.test import override_settings
from django.utils import timezone

from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase, login_verified
from deliveryhub.testing.dns import DNSServer
from queues.choices import DeliveryKind, EventKind
from queues.models import Message, MessageEvent, Webhook, WebhookDelivery
from queues.services import Submission, accept_messages
from queues.testing import make_sending_domain
from queues.webhooks import dispatch, http, services, stream
from queues.webhooks.testing import Receiver


@override_settings(OUTBOUND_ALLOW_PRIVATE_TARGETS=True, RQ_IS_ASYNC=False, WEBHOOK_BATCH_SIZE=3,
                   EVENT_STREAM_SETTLE_SECONDS=0)  # fmt: skip
class WebhookDeliveryTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")
        make_sending_domain(cls.tenant_b, "mail-b.test")

    def send(self, tenant, count, domain="mail-a.test", tag="t"):
        subs = [Submission(sender=f"app@{domain}", to=[f"r{i}@example.com"], subject="Hi", text="Hello", tag=tag)
                for i in range(count)]  # fmt: skip
        return accept_messages(tenant, subs).messages

    def deliver_all(self):
        """What the scheduler and workers do: run the dispatcher until no endpoint has work."""
        for _ in range(50):
            if not dispatch.dispatch():
                return
        raise AssertionError("the dispatcher never ran out of work")

    def test_batched_signed_every_event_once(self):
        with Receiver() as receiver:
            webhook, secret = services.create_webhook(self.tenant_a, url=receiver.url, events=["accepted"])
            receiver.secrets.append(secret)
            self.send(self.tenant_a, 7)
            self.send(self.tenant_b, 2, domain="mail-b.test")  # another tenant's: never sent here
            self.deliver_all()
        self.assertEqual(receiver.bad_signatures, 0)
        self.assertEqual([len(b["events"]) for b in receiver.bodies], [3, 3, 1])
        events = receiver.events()
        ids = [e["id"] for e in events]
        self.assertEqual(len(ids), 7)
        self.assertEqual(len(set(ids)), 7)
        mine = set(MessageEvent.objects.filter(message__tenant=self.tenant_a).values_list("id", flat=True))
        self.assertEqual(set(ids), mine)
        first = events[0]
        self.assertEqual(first["type"], "accepted")
        self.assertEqual(first["tag"], "t")
        message = Message.objects.get(uuid=first["message"])
        self.assertEqual(first["recipient"], message.rcpt_to)
        self.assertEqual(WebhookDelivery.objects.filter(webhook=webhook, succeeded=True).count(), 3)
        self.assertTrue(all(h["webhook-id"].startswith("msg_") for h in receiver.headers))

    def test_receiver_down_then_up_every_event_once(self):
        with Receiver() as receiver:
            webhook, secret = services.create_webhook(self.tenant_a, url=receiver.url)
            receiver.secrets.append(secret)
            self.send(self.tenant_a, 5)
            receiver.status = 503
            dispatch.dispatch()
            webhook.refresh_from_db()
            self.assertEqual(webhook.cursor, stream.head() - 5)
            self.assertEqual(webhook.batch_attempts, 1)
            self.assertIsNotNone(webhook.failing_since)
            failed = WebhookDelivery.objects.get(webhook=webhook)
            self.assertTrue(failed.will_retry)
            self.assertEqual(failed.status_code, 503)
            self.assertLessEqual(len(failed.response_excerpt), http.RESPONSE_EXCERPT_CHARS)
            # Not due yet: the backoff holds it.
            self.assertEqual(dispatch.dispatch(), [])
            Webhook.objects.filter(pk=webhook.pk).update(next_attempt_at=timezone.now())
            dispatch.dispatch()  # fails again: the same batch, the same webhook-id
            self.assertEqual(receiver.headers[0]["webhook-id"], receiver.headers[1]["webhook-id"])
            receiver.status = 200
            Webhook.objects.filter(pk=webhook.pk).update(next_attempt_at=timezone.now())
            self.deliver_all()
        delivered = [b for b, h in zip(receiver.bodies[2:], receiver.headers[2:], strict=True)]
        ids = [e["id"] for body in delivered for e in body["events"]]
        self.assertEqual(len(ids), 5)
        self.assertEqual(len(set(ids)), 5)
        webhook.refresh_from_db()
        self.assertIsNone(webhook.failing_since)
        self.assertEqual(webhook.cursor, stream.head())

    def test_gone_disables_and_4xx_drops_the_batch(self):
        with Receiver() as receiver:
            webhook, secret = services.create_webhook(self.tenant_a, url=receiver.url)
            receiver.secrets.append(secret)
            self.send(self.tenant_a, 4)
            receiver.status = 404
            dispatch.dispatch()
            delivery = WebhookDelivery.objects.get(webhook=webhook)
            self.assertFalse(delivery.will_retry)
            webhook.refresh_from_db()
            self.assertEqual(webhook.batch_end, None)  # dropped, not retried
            self.assertEqual(webhook.cursor, delivery.last_position)
            receiver.status = 410
            Webhook.objects.filter(pk=webhook.pk).update(next_attempt_at=timezone.now())
            dispatch.dispatch()
            webhook.refresh_from_db()
            self.assertFalse(webhook.enabled)
            self.assertIn("410", webhook.disabled_reason)
            audited = AuditEntry.objects.filter(action="webhook.auto_disable", object_id=str(webhook.pk))
            self.assertTrue(audited.exists())
            self.assertEqual(dispatch.dispatch(), [])  # disabled: nothing more is sent
            self.assertEqual(len(receiver.bodies), 2)

    def test_a_day_of_failures_disables(self):
        with Receiver() as receiver:
            webhook, _ = services.create_webhook(self.tenant_a, url=receiver.url)
            self.send(self.tenant_a, 1)
            receiver.status = 500
            Webhook.objects.filter(pk=webhook.pk).update(failing_since=timezone.now() - timedelta(days=1, seconds=1))
            dispatch.dispatch()
        webhook.refresh_from_db()
        self.assertFalse(webhook.enabled)
        self.assertEqual(webhook.state, "disabled")
        # Enabling again resumes from the cursor: the event still waits.
        services.update_webhook(webhook, enabled=True)
        self.assertEqual(len(dispatch.pending_entries(webhook)), 1)

    def test_backoff_gives_ten_retries_over_a_day(self):
        total, attempt = 0, 0
        with self.settings(WEBHOOK_RETRY_BASE_SECONDS=10, WEBHOOK_RETRY_MAX_SECONDS=4 * 3600):
            while total < 86400:
                attempt += 1
                total += dispatch.backoff_seconds(attempt)
        self.assertGreaterEqual(attempt, 10)
        self.assertFalse(dispatch.retryable(404))
        self.assertTrue(all(dispatch.retryable(s) for s in (None, 408, 429, 500, 503, 302)))

    def test_secret_rotation_signs_with_both_during_grace(self):
        with Receiver() as receiver:
            webhook, old = services.create_webhook(self.tenant_a, url=receiver.url)
            new = services.rotate_secret(webhook)
            receiver.secrets.append(old)  # a receiver that has not switched yet still verifies
            self.send(self.tenant_a, 1)
            self.deliver_all()
            self.assertEqual(receiver.bad_signatures, 0)
            self.assertEqual(len(receiver.headers[0]["webhook-signature"].split(" ")), 2)
            receiver.secrets = [new]
            Webhook.objects.filter(pk=webhook.pk).update(previous_secret_expires=timezone.now())
            self.send(self.tenant_a, 1)
            self.deliver_all()
            self.assertEqual(receiver.bad_signatures, 0)
            self.assertEqual(len(receiver.headers[1]["webhook-signature"].split(" ")), 1)
        self.assertTrue(AuditEntry.objects.filter(action="webhook.rotate_secret").exists())
        self.assertNotIn(new, json.dumps(list(AuditEntry.objects.values("prechange", "postchange"))))

    def test_test_event_and_redelivery(self):
        with Receiver() as receiver:
            webhook, secret = services.create_webhook(self.tenant_a, url=receiver.url)
            receiver.secrets.append(secret)
            with self.captureOnCommitCallbacks(execute=True):
                services.send_test_event(webhook)
            self.assertEqual(receiver.events()[0]["type"], "test")
            self.send(self.tenant_a, 2)
            self.deliver_all()
            delivery = WebhookDelivery.objects.get(webhook=webhook, kind=DeliveryKind.STREAM)
            with self.captureOnCommitCallbacks(execute=True):
                services.redeliver(delivery)
        self.assertEqual(receiver.bodies[1], receiver.bodies[2])
        self.assertEqual(receiver.headers[1]["webhook-id"], receiver.headers[2]["webhook-id"])
        self.assertEqual(receiver.bad_signatures, 0)
        self.assertEqual(WebhookDelivery.objects.filter(webhook=webhook, kind=DeliveryKind.REDELIVERY).count(), 1)

    def test_redirect_is_not_followed(self):
        with Receiver() as receiver:
            webhook, _ = services.create_webhook(self.tenant_a, url=receiver.url)
            self.send(self.tenant_a, 1)
            receiver.status = 302
            dispatch.dispatch()
        delivery = WebhookDelivery.objects.get(webhook=webhook)
        self.assertEqual(delivery.status_code, 302)
        self.assertTrue(delivery.will_retry)
        self.assertEqual(len(receiver.bodies), 1)  # the Location was never fetched


class StreamTest(TenantTestCase):
    """Positions are gap-free and only grow, even when an event with a lower id commits after a higher one."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")

    def test_late_commit_gets_a_later_position(self):
        message = accept_messages(self.tenant_a, [Submission(sender="a@mail-a.test", to=["x@example.com"],
                                                             subject="s", text="t")]).messages[0]  # fmt: skip
        stream.sequence_events()
        head = stream.head()
        # Two events; pretend the lower id was still uncommitted at the first run by numbering only the higher one.
        low = MessageEvent.objects.create(message=message, kind=EventKind.DEFERRED)
        high = MessageEvent.objects.create(message=message, kind=EventKind.DELIVERED)
        low_data = {"message": low.message, "kind": low.kind}
        low.delete()
        stream.sequence_events()
        late = MessageEvent.objects.create(id=low.id, **low_data)
        stream.sequence_events()
        positions = dict(
            stream.entries().filter(position__gt=head).values_list("event_id", "position")
        )
        self.assertEqual(positions, {high.id: head + 1, late.id: head + 2})


class SSRFTest(TenantTestCase):
    """Targets a tenant may not make us connect to: refused on save and at send time, nothing fetched."""

    def refused(self, url):
        with self.assertRaises(Exception) as ctx:
            services.create_webhook(self.tenant_a, url=url)
        self.assertIn("url", getattr(ctx.exception, "message_dict", {}), ctx.exception)
        result = http.post(url, b"{}", {})
        self.assertIsNone(result.status)
        self.assertTrue(result.error)
        return result.error

    def test_private_metadata_and_loopback_refused(self):
        self.assertIn("link-local", self.refused("https://169.254.169.254/latest/meta-data/"))
        self.assertIn("private", self.refused("https://10.0.0.1/hook"))
        self.assertIn("loopback", self.refused("https://[::1]:8443/hook"))
        self.assertIn("loopback", self.refused("http://127.0.0.1:9/hook"))
        self.assertFalse(Webhook.objects.exists())

    def test_name_resolving_to_loopback_refused(self):
        with DNSServer() as dns, self.settings(DNS_RESOLVERS=[dns.address], DNS_TIMEOUT=0.5):
            dns.set_zone("evil.test", "hooks 300 IN A 127.0.0.1")
            self.assertIn("resolves to 127.0.0.1", self.refused("https://hooks.evil.test/hook"))

    @override_settings(OUTBOUND_ALLOW_PRIVATE_TARGETS=True)
    def test_http_only_to_loopback_even_when_private_allowed(self):
        self.assertIn("https", self.refused("http://10.0.0.1/hook"))

    def test_api_refuses_with_a_field_error(self):
        login_verified(self.client, self.alice)
        response = self.api(self.alice_key).post("/api/v1/webhooks/", {"url": "https://169.254.169.254/"},
                                                 format="json")  # fmt: skip
        self.assertEqual(response.status_code, 400)
        self.assertIn("url", response.json()["error"]["fields"])
        self.assertFalse(Webhook.objects.exists())
