"""The events API (filters, a cursor stable while events arrive, pinned queries, tenancy) and the webhooks API."""

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import APIViewTestCases, TenantTestCase
from queues.choices import EventKind
from queues.models import MessageEvent, SmtpCredential, Webhook
from queues.services import Submission, accept_messages, create_smtp_credential
from queues.testing import make_sending_domain
from queues.webhooks import services, stream

EVENTS = "/api/v1/events/"
PUBLIC_URL = "https://93.184.215.14/hook"  # a public address literal: nothing is resolved, nothing is fetched


def send(tenant, count, domain, tag="t"):
    subs = [Submission(sender=f"app@{domain}", to=[f"{tag}{i}@example.com"], subject="Hi", text="x", tag=tag)
            for i in range(count)]  # fmt: skip
    return accept_messages(tenant, subs).messages


class EventsAPITest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")
        make_sending_domain(cls.tenant_b, "mail-b.test")

    def get(self, key=None, **params):
        response = self.api(key or self.alice_key).get(EVENTS, params)
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()

    def test_paging_while_events_arrive_has_no_gaps_or_duplicates(self):
        messages = send(self.tenant_a, 5, "mail-a.test")
        stream.sequence_events()
        seen, page = [], self.get(limit=2)
        rounds = 0
        while True:
            seen += [e["id"] for e in page["results"]]
            rounds += 1
            if rounds == 2:  # more events arrive mid-way, some with lower ids committing late is covered in
                for m in messages[:3]:  # test_webhooks.StreamTest
                    MessageEvent.objects.create(message=m, kind=EventKind.DELIVERED, data={"code": 250})
                stream.sequence_events()
            if not page["next"]:
                break
            page = self.api(self.alice_key).get(page["next"]).json()
        self.assertEqual(len(seen), 8)
        self.assertEqual(len(set(seen)), 8)
        # Caught up: polling with the cursor gives nothing new, then only what follows.
        caught_up = self.get(after=page["cursor"])
        self.assertEqual(caught_up["results"], [])
        MessageEvent.objects.create(message=messages[4], kind=EventKind.BOUNCED)
        stream.sequence_events()
        self.assertEqual([e["type"] for e in self.get(after=page["cursor"])["results"]], ["bounced"])

    def test_filters(self):
        a = send(self.tenant_a, 2, "mail-a.test", tag="welcome")
        send(self.tenant_a, 1, "mail-a.test", tag="other")
        MessageEvent.objects.create(message=a[0], kind=EventKind.DELIVERED, data={"code": 250})
        MessageEvent.objects.create(message=a[1], kind=EventKind.DSN, data={"category": "invalid_recipient"})
        stream.sequence_events()
        self.assertEqual(len(self.get(type="accepted")["results"]), 3)
        bounced = self.get(type="bounced")["results"]
        self.assertEqual([(e["type"], e["data"]["async"]) for e in bounced], [("bounced", True)])
        self.assertEqual(len(self.get(type="delivered,bounced")["results"]), 2)
        self.assertEqual(len(self.get(tag="welcome")["results"]), 4)
        self.assertEqual(len(self.get(recipient=a[0].rcpt_to.upper())["results"]), 2)
        self.assertEqual(len(self.get(message=str(a[1].uuid))["results"]), 2)
        future = (timezone.now() + timedelta(hours=1)).isoformat()
        self.assertEqual(self.get(since=future)["results"], [])
        self.assertEqual(len(self.get(until=future)["results"]), 5)
        for params in ({"type": "nope"}, {"since": "yesterday"}, {"message": "x"}, {"limit": 0}, {"after": "a"}):
            response = self.api(self.alice_key).get(EVENTS, params)
            self.assertEqual(response.status_code, 400, params)

    def test_tenancy_and_retrieve(self):
        mine = send(self.tenant_a, 1, "mail-a.test")[0]
        theirs = send(self.tenant_b, 1, "mail-b.test")[0]
        stream.sequence_events()
        self.assertEqual([e["message"] for e in self.get()["results"]], [str(mine.uuid)])
        their_event = MessageEvent.objects.get(message=theirs)
        self.assertEqual(self.api(self.alice_key).get(f"{EVENTS}{their_event.id}/").status_code, 404)
        self.assertEqual(self.api(self.charlie_key).get(f"{EVENTS}{their_event.id}/").status_code, 200)
        self.assertIn(self.api().get(EVENTS).status_code, (401, 403))

    def test_query_count_is_pinned(self):
        send(self.tenant_a, 3, "mail-a.test")
        stream.sequence_events()
        self.get()  # warm the key's caches
        with CaptureQueriesContext(connection) as small:
            self.get()
        send(self.tenant_a, 30, "mail-a.test")
        stream.sequence_events()
        with CaptureQueriesContext(connection) as large:
            self.assertEqual(len(self.get()["results"]), 33)
        self.assertEqual(len(small), len(large))
        self.assertLessEqual(len(large), 4)


class WebhookAPITest(APIViewTestCases.Full):
    url = "/api/v1/webhooks/"
    model = Webhook
    lookup = "uuid"
    create_data = {"url": PUBLIC_URL, "events": ["delivered", "bounced"], "description": "orders"}
    update_data = {"enabled": False}

    def make_object(self, tenant):
        return services.create_webhook(tenant, url=PUBLIC_URL)[0]

    def test_secret_once_encrypted_and_not_audited(self):
        response = self.api(self.alice_key).post(self.url, self.create_data, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        secret = response.json()["secret"]
        self.assertTrue(secret.startswith("whsec_"))
        webhook_id = response.json()["id"]
        detail = self.api(self.alice_key).get(f"{self.url}{webhook_id}/").json()
        self.assertNotIn("secret", detail)
        self.assertEqual(detail["events"], ["delivered", "bounced"])
        with connection.cursor() as cursor:
            cursor.execute("SELECT secret FROM queues_webhook")
            self.assertNotIn(secret, cursor.fetchone()[0])
        audit_text = str(list(AuditEntry.objects.values_list("prechange", "postchange")))
        self.assertNotIn(secret, audit_text)
        rotated = self.api(self.alice_key).post(f"{self.url}{webhook_id}/rotate-secret/").json()
        self.assertNotEqual(rotated["secret"], secret)

    def test_bad_event_type_400(self):
        response = self.api(self.alice_key).post(self.url, {"url": PUBLIC_URL, "events": ["nope"]}, format="json")
        self.assertEqual(response.status_code, 400)
        self.assertFalse(Webhook.objects.exists())

    def test_other_tenant_deliveries_and_verbs_404(self):
        mine = self.make_object(self.tenant_a)
        for path, method in (("deliveries/", "get"), ("test/", "post"), ("rotate-secret/", "post")):
            response = getattr(self.api(self.charlie_key), method)(f"{self.url}{mine.uuid}/{path}")
            self.assertEqual(response.status_code, 404, path)
        self.assertEqual(self.api(self.bob_key).post(f"{self.url}{mine.uuid}/test/").status_code, 403)
        self.assertEqual(self.api(self.alice_key).get(f"{self.url}{mine.uuid}/deliveries/").status_code, 200)


class SmtpCredentialAPITest(APIViewTestCases.Full):
    url = "/api/v1/smtp-credentials/"
    model = SmtpCredential
    create_data = {"name": "api-login", "description": "shop", "allowed_from_domains": ["mail-a.test"],
                   "allowed_networks": ["192.0.2.0/24"]}  # fmt: skip
    update_data = {"description": "changed"}

    def make_object(self, tenant):
        return create_smtp_credential(tenant, f"login-{tenant.slug}-{SmtpCredential.objects.count()}")[0]

    def test_password_once_digest_only_rotate_revoke(self):
        response = self.api(self.alice_key).post(self.url, self.create_data, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual(body["username"], "api-login")
        credential = SmtpCredential.objects.get(username="api-login")
        self.assertTrue(credential.check_password(body["password"]))
        self.assertNotIn(body["password"], str(list(AuditEntry.objects.values_list("prechange", "postchange"))))
        self.assertNotIn("password", self.api(self.alice_key).get(f"{self.url}{credential.pk}/").json())
        rotated = self.api(self.alice_key).post(f"{self.url}{credential.pk}/rotate/").json()
        credential.refresh_from_db()
        self.assertTrue(credential.check_password(rotated["password"]))
        self.assertFalse(credential.check_password(body["password"]))
        self.assertEqual(self.api(self.bob_key).post(f"{self.url}{credential.pk}/revoke/").status_code, 403)
        self.assertFalse(self.api(self.alice_key).post(f"{self.url}{credential.pk}/revoke/").json()["is_active"])

    def test_bad_limits_400_nothing_stored(self):
        for data in ({"name": "x1", "allowed_networks": ["not-a-net"]}, {"name": "x2", "allowed_from_domains": ["*"]},
                     {"name": "has space"}):  # fmt: skip
            response = self.api(self.alice_key).post(self.url, data, format="json")
            self.assertEqual(response.status_code, 400, data)
        self.assertFalse(SmtpCredential.objects.exists())
