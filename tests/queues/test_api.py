"""The messages, routes and suppressions API: 202 intake, idempotency, field-level 400s, tenancy matrix."""

import base64
import os
from datetime import UTC

from django.conf import settings
from django.test import override_settings

from deliveryhub import services as core_services
from deliveryhub.choices import ApiKeyScope, Role
from deliveryhub.testing.cases import APIViewTestCases, TenantTestCase
from queues.choices import EventKind, MessageStatus
from queues.models import DeliveryAttempt, Message, MessageContent, MessageEvent, Route, Suppression
from queues.services import Submission, accept_messages
from queues.testing import make_sending_domain

URL = "/api/v1/messages/"


class MessageAPITest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")
        make_sending_domain(cls.tenant_b, "mail-b.test")
        _, cls.send_key = core_services.create_api_key(
            tenant=cls.tenant_a, name="app", role=Role.ADMIN, scope=ApiKeyScope.SEND
        )

    def payload(self, **extra):
        return {"from": "App <app@mail-a.test>", "to": ["one@example.com", "two@example.org"], "subject": "Hi",
                "text": "Hello", "tag": "welcome", "metadata": {"user": 7}, **extra}  # fmt: skip

    def test_post_202_one_id_per_recipient(self):
        response = self.api(self.send_key).post(URL, self.payload(), format="json")
        self.assertEqual(response.status_code, 202, response.content)
        ids = [m["id"] for m in response.json()["messages"]]
        self.assertEqual(len(ids), 2)
        self.assertEqual(set(map(str, Message.objects.values_list("uuid", flat=True))), set(ids))
        detail = self.api(self.send_key).get(f"{URL}{ids[0]}/")
        self.assertEqual(detail.status_code, 200)
        body = detail.json()
        self.assertEqual(body["status"], "queued")
        self.assertEqual(body["events"][0]["kind"], "accepted")
        self.assertEqual(body["attempts_log"], [])
        self.assertEqual(body["tag"], "welcome")

    def test_idempotency_key_returns_first_answer(self):
        headers = {"HTTP_IDEMPOTENCY_KEY": "order-42"}
        first = self.api(self.send_key).post(URL, self.payload(), format="json", **headers)
        second = self.api(self.send_key).post(URL, self.payload(), format="json", **headers)
        self.assertEqual(first.status_code, 202)
        self.assertEqual(second.status_code, 202)
        self.assertEqual(first.json(), second.json())
        self.assertEqual(second["Idempotent-Replayed"], "true")
        self.assertEqual(Message.objects.count(), 2)
        other = self.api(self.send_key).post(URL, self.payload(subject="other"), format="json", **headers)
        self.assertEqual(other.status_code, 409)
        # Another tenant's identical key is independent.
        make_b = self.payload(**{"from": "b@mail-b.test"})
        self.assertEqual(self.api(self.charlie_key).post(URL, make_b, format="json", **headers).status_code, 202)

    def test_field_level_400_and_nothing_stored(self):
        cases = [
            ({"to": ["not-an-address"]}, "to"),
            ({"from": "x@unknown.test"}, "from"),
            ({"subject": "a\r\nBcc: v@evil.example"}, "subject"),
            ({"headers": {"X-A": "b\nBcc: v@evil.example"}}, "headers"),
            ({"attachments": [{"filename": "a.txt", "content": "***"}]}, "attachments[0].content"),
            ({"to": []}, "to"),
        ]
        for extra, field in cases:
            with self.subTest(field=field):
                response = self.api(self.send_key).post(URL, self.payload(**extra), format="json")
                self.assertEqual(response.status_code, 400, response.content)
                self.assertIn(field, response.json()["error"]["fields"])
        self.assertEqual(Message.objects.count(), 0)
        self.assertEqual(MessageContent.objects.count(), 0)

    def test_body_above_django_default_limit_accepted(self):
        """A 2 MB attachment makes a request body above Django's default 2.5 MB (DATA_UPLOAD_MAX_MEMORY_SIZE): it
        answered 500. The limit is the message limit with base64's 4/3 and room for the JSON around it."""
        self.assertGreaterEqual(settings.DATA_UPLOAD_MAX_MEMORY_SIZE, settings.MESSAGE_MAX_BYTES * 4 // 3)
        attachment = {"filename": "big.bin", "content": base64.b64encode(os.urandom(2_000_000)).decode()}
        response = self.api(self.send_key).post(URL, self.payload(attachments=[attachment]), format="json")
        self.assertEqual(response.status_code, 202, response.content[:300])

    @override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100_000)
    def test_body_over_the_limit_is_413_json(self):
        attachment = {"filename": "big.bin", "content": base64.b64encode(os.urandom(100_000)).decode()}
        for url, body in [(URL, self.payload(attachments=[attachment])),
                          (f"{URL}batch/", {"messages": [self.payload(attachments=[attachment])]})]:  # fmt: skip
            with self.subTest(url=url):
                response = self.api(self.send_key).post(url, body, format="json")
                self.assertEqual(response.status_code, 413, response.content[:300])
                error = response.json()["error"]
                self.assertEqual(error["code"], "too_large")
                self.assertIn("100000 bytes", error["message"])
        self.assertFalse(Message.objects.exists())

    def test_deeply_nested_json_is_400(self):
        """1,000 levels of nesting raised RecursionError in the JSON parser (a 500)."""
        for body in ["[" * 1000 + "]" * 1000, '{"metadata": ' + '{"a": ' * 1000 + "1" + "}" * 1001,
                     '{"metadata": ' + '{"a": ' * 40 + "1" + "}" * 41]:  # fmt: skip
            with self.subTest(length=len(body)):
                response = self.api(self.send_key).post(URL, body, content_type="application/json")
                self.assertEqual(response.status_code, 400, response.content[:300])
                self.assertEqual(response.json()["error"]["code"], "parse_error")
        self.assertEqual(self.api(self.send_key).post(URL, "{", content_type="application/json").status_code, 400)
        self.assertEqual(self.api(self.send_key).post(URL, "NaN", content_type="application/json").status_code, 400)
        self.assertFalse(Message.objects.exists())

    def test_line_separators_are_field_errors(self):
        """U+2028, U+2029, U+0085 in a subject or header value answered 500 (the `email` package's ValueError)."""
        for char in ("\u2028", "\u2029", "\x85"):
            for extra, field in [({"subject": f"a{char}b"}, "subject"), ({"headers": {"X-A": f"a{char}b"}}, "headers")]:
                with self.subTest(char=repr(char), field=field):
                    response = self.api(self.send_key).post(URL, self.payload(**extra), format="json")
                    self.assertEqual(response.status_code, 400, response.content)
                    self.assertIn(field, response.json()["error"]["fields"])
            response = self.api(self.send_key).post(
                f"{URL}batch/", {"messages": [self.payload(), self.payload(subject=f"a{char}b")]}, format="json"
            )
            self.assertEqual(response.status_code, 400, response.content)
            self.assertIn("messages[1].subject", response.json()["error"]["fields"])
        self.assertFalse(Message.objects.exists())

    def test_shape_errors_keyed_like_service_errors(self):
        """The serializer checks types only; its errors and the service's are keyed alike (`messages[1].to`)."""
        response = self.api(self.send_key).post(
            f"{URL}batch/", {"messages": [self.payload(), self.payload(to="not-a-list")]}, format="json"
        )
        self.assertEqual(response.status_code, 400, response.content)
        self.assertEqual(list(response.json()["error"]["fields"]), ["messages[1].to"])
        response = self.api(self.send_key).post(URL, self.payload(attachments=[{"content": "aGk="}]), format="json")
        self.assertEqual(list(response.json()["error"]["fields"]), ["attachments[0].filename"])

    def test_query_counts_pinned(self):
        """A message costs a fixed number of queries, and a batch of 30 the same as a batch of 5: key, its tenant,
        sending domain, suppression list, one INSERT per table (rows in bulk). The key's last_used is written once a
        minute."""
        api = self.api(self.send_key)
        self.assertEqual(api.post(URL, self.payload(), format="json").status_code, 202)  # marks last_used
        # key; tenant; domain; then in one transaction (a savepoint inside the test's): suppressions, 3 INSERTs
        with self.assertNumQueries(9):
            self.assertEqual(api.post(URL, self.payload(), format="json").status_code, 202)
        for count in (5, 30):  # (SQLite takes 38 message rows an INSERT, PostgreSQL 500)
            batch = {"messages": [self.payload(to=[f"r{i}@example.com"]) for i in range(count)]}
            with self.subTest(count=count), self.assertNumQueries(9):
                self.assertEqual(api.post(f"{URL}batch/", batch, format="json").status_code, 202)

    def test_direct_shape_path_matches_drf(self):
        """The serializer's direct path for well-typed messages gives what DRF's field-by-field run gives; anything
        else (a number for a string, a blank address, a bad date…) is left to DRF, whose errors the client gets."""
        from rest_framework import serializers as drf

        from queues.api.serializers import MessageSubmitSerializer, _direct_shape

        def drf_shape(data):
            return plain(drf.Serializer.to_internal_value(MessageSubmitSerializer(), data))

        def plain(value):
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return [plain(v) for v in value] if isinstance(value, list) else value

        valid = [
            self.payload(),
            {"from": "a@mail-a.test", "to": ["x@example.com"]},
            self.payload(cc=["c@example.com"], bcc=["d@example.com"], reply_to=["r@example.com"], html="<p>h</p>",
                         headers={"X-A": "1", "X-B": ""}, priority="marketing", ip_pool="pool-1",
                         send_at="2030-01-02T03:04:05+02:00", extra_key="ignored", subject="",
                         attachments=[{"filename": "a.txt", "content": ""},
                                      {"filename": "b.csv", "content_type": "text/csv", "content": "aGk=", "x": 1}]),
            {"raw": "From: a@mail-a.test\r\n\r\nx", "raw_encoding": "base64", "envelope": {"to": []}},
        ]  # fmt: skip
        for data in valid:
            with self.subTest(data=str(data)[:80]):
                self.assertEqual(_direct_shape(data), drf_shape(data))
        for bad in [{"to": "x@example.com"}, {"to": [""]}, {"to": [5]}, {"subject": None}, {"subject": 5},
                    {"from": ""}, {"headers": {"X": 1}}, {"attachments": [{"content": "x"}]}, {"priority": "urgent"},
                    {"priority": []}, {"send_at": "soon"}, {"send_at": ""}, {"ip_pool": " pool "}, {"ip_pool": ""},
                    {"raw_encoding": "hex"}, {"envelope": {"to": "x"}}, {"metadata": []}, []]:  # fmt: skip
            with self.subTest(bad=bad):
                self.assertIsNone(_direct_shape(bad))

    def test_raw_mime_with_envelope(self):
        raw = "From: app@mail-a.test\r\nTo: x@example.com\r\nSubject: raw\r\n\r\nbody\r\n"
        response = self.api(self.send_key).post(URL, {"raw": raw, "envelope": {"to": ["x@example.com"]}},
                                                format="json")  # fmt: skip
        self.assertEqual(response.status_code, 202, response.content)

    def test_batch_endpoint(self):
        response = self.api(self.send_key).post(
            f"{URL}batch/", {"messages": [self.payload(to=["a@example.com"]), self.payload(to=["b@example.com"])]},
            format="json",
        )  # fmt: skip
        self.assertEqual(response.status_code, 202, response.content)
        self.assertEqual(len(response.json()["results"]), 2)
        self.assertEqual(Message.objects.count(), 2)

    def test_tenancy_and_roles(self):
        accepted = accept_messages(self.tenant_a, Submission(sender="a@mail-a.test", to=["x@example.com"], text="t"))
        uuid = accepted.messages[0].uuid
        self.assertEqual(self.api(self.alice_key).get(f"{URL}{uuid}/").status_code, 200)
        self.assertEqual(self.api(self.bob_key).get(f"{URL}{uuid}/").status_code, 200)
        self.assertEqual(self.api(self.charlie_key).get(f"{URL}{uuid}/").status_code, 404)
        self.assertEqual(self.api().get(f"{URL}{uuid}/").status_code, 401)
        self.assertEqual(self.api(self.bob_key).post(URL, self.payload(), format="json").status_code, 403)
        listed = self.api(self.charlie_key).get(URL).json()["results"]
        self.assertEqual(listed, [])
        # Charlie cannot send from tenant A's domain.
        response = self.api(self.charlie_key).post(URL, self.payload(), format="json")
        self.assertEqual(response.status_code, 400)
        # The send-scoped key cannot touch routes.
        self.assertEqual(self.api(self.send_key).get("/api/v1/routes/").status_code, 403)

    def test_list_filters(self):
        accept_messages(self.tenant_a, Submission(sender="a@mail-a.test", to=["x@one.example"], text="t", tag="t1"))
        accept_messages(self.tenant_a, Submission(sender="a@mail-a.test", to=["y@two.example"], text="t", tag="t2"))
        Message.objects.filter(rcpt_to="y@two.example").update(status=MessageStatus.DELIVERED)
        api = self.api(self.alice_key)
        self.assertEqual(len(api.get(URL, {"status": "delivered"}).json()["results"]), 1)
        self.assertEqual(api.get(URL, {"domain": "one.example"}).json()["results"][0]["rcpt_to"], "x@one.example")
        self.assertEqual(len(api.get(URL, {"tag": "t2"}).json()["results"]), 1)
        self.assertEqual(len(api.get(URL, {"recipient": "x@"}).json()["results"]), 1)
        self.assertEqual(len(api.get(URL, {"after": "2999-01-01T00:00:00Z"}).json()["results"]), 0)

    def test_detail_has_attempts(self):
        accepted = accept_messages(self.tenant_a, Submission(sender="a@mail-a.test", to=["x@example.com"], text="t"))
        m = accepted.messages[0]
        DeliveryAttempt.objects.create(message=m, status="deferred", node="n1", source_ip="127.0.0.2",
                                       mx_host="mx.example.com", tls_version="TLSv1.3", code=421,
                                       enhanced_code="4.7.0", text="try later", duration=0.2,
                                       category="transient")  # fmt: skip
        attempt = self.api(self.alice_key).get(f"{URL}{m.uuid}/").json()["attempts_log"][0]
        self.assertEqual((attempt["code"], attempt["enhanced_code"], attempt["source_ip"], attempt["tls_version"]),
                         (421, "4.7.0", "127.0.0.2", "TLSv1.3"))  # fmt: skip

    def test_detail_shows_every_attempt_field_in_api_and_ui(self):
        from datetime import datetime

        from django.test import Client

        from deliveryhub.testing.cases import login_verified

        submission = Submission(sender="a@mail-a.test", to=["x@example.com"], text="t")
        [m] = accept_messages(self.tenant_a, submission).messages
        when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
        DeliveryAttempt.objects.create(message=m, time=when, status="deferred", node="node-a", source_ip="127.0.0.2",
                                       mx_host="mx1.example.com", tls_version="TLSv1.3", tls_verified=True, code=452,
                                       enhanced_code="4.2.2", text="Mailbox over quota, try later", duration=1.25,
                                       category="mailbox_full", action="defer")  # fmt: skip
        [attempt] = self.api(self.alice_key).get(f"{URL}{m.uuid}/").json()["attempts_log"]
        self.assertEqual(attempt, {
            "time": "2026-03-04T05:06:07Z", "status": "deferred", "node": "node-a", "source_ip": "127.0.0.2",
            "mx_host": "mx1.example.com", "tls_version": "TLSv1.3", "tls_verified": True, "code": 452,
            "enhanced_code": "4.2.2", "text": "Mailbox over quota, try later", "duration": 1.25,
            "category": "mailbox_full", "action": "defer", "possible_duplicate": False,
        })  # fmt: skip
        client = Client()
        login_verified(client, self.bob)
        page = client.get(f"/messages/{m.uuid}/")
        for shown in ["2026-03-04 05:06:07", "node-a", "127.0.0.2", "mx1.example.com", "TLSv1.3", "verified", "452",
                      "4.2.2", "Mailbox over quota, try later", "1.25 s"]:  # fmt: skip
            self.assertContains(page, shown)

    def test_cc_bcc_idn_and_send_at_through_the_api(self):
        from datetime import timedelta

        from django.utils import timezone

        from queues.delivery import scheduler
        from queues.testing import make_sending_ips

        from .helpers import scheduled_batches

        send_at = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
        payload = self.payload(to=["one@bücher.example"], cc=["Copy <cc@example.com>"], bcc=["hidden@example.net"],
                               send_at=send_at.isoformat())  # fmt: skip
        response = self.api(self.send_key).post(URL, payload, format="json")
        self.assertEqual(response.status_code, 202, response.content)
        self.assertEqual(len(response.json()["messages"]), 3)
        rows = {m.rcpt_to: m for m in Message.objects.all()}
        self.assertEqual(set(rows), {"one@xn--bcher-kva.example", "cc@example.com", "hidden@example.net"})
        self.assertTrue(all(m.next_attempt_at == send_at for m in rows.values()))
        raw = bytes(MessageContent.objects.get().raw)
        self.assertIn(b"Cc: Copy <cc@example.com>", raw)
        self.assertNotIn(b"hidden@example.net", raw)
        self.assertNotIn(b"Bcc", raw)
        # Scheduled sending is honoured: nothing goes out before send_at, everything right after it.
        make_sending_ips(("127.0.0.2",))
        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=9)
        self.assertEqual(scheduler.schedule(), 0)
        self.assertEqual(scheduler.schedule(send_at - timedelta(seconds=1)), 0)
        self.assertGreater(scheduler.schedule(send_at + timedelta(seconds=1)), 0)
        self.assertEqual(sorted(i for ids in scheduled_batches().values() for i in ids),
                         sorted(m.pk for m in rows.values()))  # fmt: skip

    def test_limits_are_field_level_400s(self):
        from django.test import override_settings

        with override_settings(MESSAGE_MAX_RECIPIENTS=2):
            response = self.api(self.send_key).post(URL, self.payload(to=["a@x.example", "b@x.example"],
                                                                      cc=["c@x.example"]), format="json")  # fmt: skip
            self.assertEqual(response.status_code, 400)
            self.assertIn("to", response.json()["error"]["fields"])
        with override_settings(MESSAGE_MAX_BYTES=4000):
            response = self.api(self.send_key).post(URL, self.payload(text="y" * 5000), format="json")
            self.assertEqual(response.status_code, 400)
            self.assertIn("limit", str(response.json()["error"]))
        response = self.api(self.send_key).post(URL, self.payload(to=["a@" + "x" * 64 + ".example"]), format="json")
        self.assertEqual(response.status_code, 400)
        self.assertIn("to", response.json()["error"]["fields"])
        self.assertEqual(Message.objects.count(), 0)

    def test_cancel(self):
        accepted = accept_messages(self.tenant_a, Submission(sender="a@mail-a.test", to=["x@example.com"], text="t"))
        uuid = accepted.messages[0].uuid
        self.assertEqual(self.api(self.charlie_key).post(f"{URL}{uuid}/cancel/").status_code, 404)
        self.assertEqual(self.api(self.alice_key).post(f"{URL}{uuid}/cancel/").status_code, 200)
        self.assertEqual(self.api(self.alice_key).post(f"{URL}{uuid}/cancel/").status_code, 409)

    def test_send_at_bounded_and_shown(self):
        from datetime import timedelta

        from django.utils import timezone
        from django.utils.dateparse import parse_datetime

        too_far = (timezone.now() + timedelta(days=31)).isoformat()
        response = self.api(self.send_key).post(URL, self.payload(send_at=too_far), format="json")
        self.assertEqual(response.status_code, 400, response.content)
        self.assertIn("send_at", response.json()["error"]["fields"])
        response = self.api(self.send_key).post(
            f"{URL}batch/", {"messages": [self.payload(), self.payload(send_at=too_far)]}, format="json"
        )
        self.assertEqual(response.status_code, 400, response.content)
        self.assertIn("messages[1].send_at", response.json()["error"]["fields"])
        self.assertEqual((Message.objects.count(), MessageContent.objects.count()), (0, 0))
        send_at = (timezone.now() + timedelta(days=29)).replace(microsecond=0)
        response = self.api(self.send_key).post(URL, self.payload(send_at=send_at.isoformat()), format="json")
        self.assertEqual(response.status_code, 202, response.content)
        uuid = response.json()["messages"][0]["id"]
        detail = self.api(self.alice_key).get(f"{URL}{uuid}/").json()
        self.assertEqual(parse_datetime(detail["send_at"]), send_at)
        listed = self.api(self.alice_key).get(URL).json()["results"]
        self.assertEqual({parse_datetime(m["send_at"]) for m in listed}, {send_at})
        unscheduled = self.api(self.send_key).post(URL, self.payload(to=["x@example.com"]), format="json").json()
        self.assertIsNone(self.api(self.alice_key).get(f"{URL}{unscheduled['messages'][0]['id']}/").json()["send_at"])

    def test_release(self):
        from django.utils import timezone

        from deliveryhub.models import AuditEntry
        from queues.choices import EventKind
        from queues.models import MessageEvent

        accepted = accept_messages(self.tenant_a, Submission(sender="a@mail-a.test", to=["x@example.com"], text="t"))
        m = accepted.messages[0]
        self.assertEqual(self.api(self.alice_key).post(f"{URL}{m.uuid}/release/").status_code, 409)  # not held
        Message.objects.filter(pk=m.pk).update(status=MessageStatus.HELD, lease_reclaims=3, status_detail="Held.")
        self.assertEqual(self.api(self.charlie_key).post(f"{URL}{m.uuid}/release/").status_code, 404)
        self.assertEqual(self.api(self.bob_key).post(f"{URL}{m.uuid}/release/").status_code, 403)
        self.assertFalse(AuditEntry.objects.filter(action="message.release").exists())
        response = self.api(self.alice_key).post(f"{URL}{m.uuid}/release/")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["status"], "queued")
        m.refresh_from_db()
        # One short of the limit: it goes alone, and one more dead worker holds it again.
        self.assertEqual((m.status, m.lease_reclaims), (MessageStatus.QUEUED, settings.DELIVERY_MAX_LEASE_RECLAIMS - 1))
        self.assertLessEqual(m.next_attempt_at, timezone.now())
        self.assertTrue(MessageEvent.objects.filter(message=m, kind=EventKind.RELEASED).exists())
        entry = self.last_audit(action="message.release")
        self.assertEqual((entry.object_id, entry.tenant_id, entry.actor_type), (str(m.pk), self.tenant_a.pk, "apikey"))
        self.assertEqual(self.api(self.alice_key).post(f"{URL}{m.uuid}/release/").status_code, 409)  # released already


class RouteAPITest(APIViewTestCases.Full):
    url = "/api/v1/routes/"
    model = Route
    create_data = {"pattern": "*.example.com", "host": "93.184.215.14", "port": 2525, "username": "u",
                   "password": "secret-relay-pw", "tls_required": True}  # fmt: skip
    update_data = {"port": 587}

    def make_object(self, tenant):
        return Route.objects.create(tenant=tenant, pattern="example.org", host="93.184.215.14", port=25)

    def test_password_never_returned_and_encrypted(self):
        response = self.api(self.alice_key).post(self.url, self.create_data, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        self.assertNotIn("password", response.json())
        self.assertTrue(response.json()["has_password"])
        self.assertEqual((response.json()["username"], response.json()["tls_required"]), ("u", True))
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT password FROM queues_route")
            self.assertNotIn("secret-relay-pw", str(cursor.fetchall()))
        self.assertEqual(Route.objects.get().password, "secret-relay-pw")

    def test_bad_pattern_400(self):
        response = self.api(self.alice_key).post(self.url, {"pattern": "a b", "host": "x.example"}, format="json")
        self.assertEqual(response.status_code, 400)
        self.assertIn("pattern", response.json()["error"]["fields"])


class SuppressionAPITest(APIViewTestCases.List, APIViewTestCases.Retrieve, APIViewTestCases.Create,
                         APIViewTestCases.Delete):  # fmt: skip
    url = "/api/v1/suppressions/"
    model = Suppression
    create_data = {"address": "Someone@Example.com"}

    def make_object(self, tenant):
        return Suppression.objects.create(tenant=tenant, address=f"s{Suppression.objects.count()}@example.com")


class QueuesUITest(TenantTestCase):
    """The UI pages go through restrict(): another tenant's message is a 404, a viewer cannot add routes."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")

    def client_for(self, user):
        from django.test import Client

        from deliveryhub.testing.cases import login_verified

        client = Client()
        login_verified(client, user)
        return client

    def test_pages(self):
        [m] = accept_messages(
            self.tenant_a, Submission(sender="a@mail-a.test", to=["x@example.com"], text="t")
        ).messages
        alice, bob, charlie = self.client_for(self.alice), self.client_for(self.bob), self.client_for(self.charlie)
        self.assertContains(alice.get("/messages/?status=queued"), "x@example.com")
        self.assertContains(bob.get(f"/messages/{m.uuid}/"), "x@example.com")
        self.assertEqual(charlie.get(f"/messages/{m.uuid}/").status_code, 404)
        self.assertNotContains(charlie.get("/messages/"), "x@example.com")
        self.assertEqual(alice.get("/routes/").status_code, 200)
        data = {"pattern": "example.com", "host": "93.184.215.14", "port": 587, "priority": 100, "enabled": "on",
                "username": "relay-user", "password": "relay-pw", "tls_required": "on"}  # fmt: skip
        self.assertEqual(bob.post("/routes/new/", data).status_code, 403)
        self.assertEqual(alice.post("/routes/new/", data).status_code, 302)
        route = Route.objects.get()
        self.assertEqual((route.username, route.password, route.tls_required), ("relay-user", "relay-pw", True))
        listing = alice.get("/routes/")
        self.assertContains(listing, "93.184.215.14")
        self.assertNotContains(listing, "relay-pw")
        self.assertEqual(bob.post("/test-inbox/", {"sender": "a@mail-a.test", "to": "y@example.com"}).status_code, 403)
        alice.post(f"/routes/{route.pk}/edit/", {**data, "password": ""})  # an empty password keeps the stored one
        self.assertEqual(Route.objects.get().password, "relay-pw")
        self.assertEqual(charlie.post(f"/routes/{route.pk}/delete/").status_code, 404)
        self.assertEqual(alice.post(f"/routes/{route.pk}/delete/").status_code, 302)
        self.assertEqual(alice.get("/test-inbox/").status_code, 200)

    def test_test_inbox_form_refuses_line_separators(self):
        """U+2028 in the Test inbox subject answered 500; it is an error on the field, and nothing is queued."""
        alice = self.client_for(self.alice)
        for char in ("\u2028", "\u2029", "\x85"):
            with self.subTest(char=repr(char)):
                data = {"sender": "a@mail-a.test", "to": "y@example.com", "subject": f"Hi{char}there", "text": "t"}
                response = alice.post("/test-inbox/", data)
                self.assertEqual(response.status_code, 400)
                self.assertIn("line separator", response.context["form"].errors["subject"][0])
        response = alice.post("/test-inbox/", {"sender": "a@elsewhere.test", "to": "y@example.com", "subject": "s",
                                               "text": "t"})  # fmt: skip
        self.assertIn("not a sending domain", response.context["form"].errors["sender"][0])  # `from` is `sender` here
        self.assertFalse(Message.objects.exists())
        response = alice.post("/test-inbox/", {"sender": "a@mail-a.test", "to": "y@example.com", "subject": "Hi",
                                               "text": "t"})  # fmt: skip
        self.assertEqual(response.status_code, 302)
        self.assertEqual(Message.objects.get().rcpt_to, "y@example.com")

    def test_held_message_released_in_the_ui(self):
        [m] = accept_messages(
            self.tenant_a, Submission(sender="a@mail-a.test", to=["x@example.com"], text="t")
        ).messages
        alice, bob, charlie = self.client_for(self.alice), self.client_for(self.bob), self.client_for(self.charlie)
        release_url = f"/messages/{m.uuid}/release/"
        self.assertNotContains(alice.get(f"/messages/{m.uuid}/"), release_url)  # queued: nothing to release
        Message.objects.filter(pk=m.pk).update(status=MessageStatus.HELD, lease_reclaims=3)
        self.assertContains(alice.get(f"/messages/{m.uuid}/"), release_url)
        self.assertNotContains(bob.get(f"/messages/{m.uuid}/"), release_url)
        self.assertEqual(bob.post(release_url).status_code, 403)
        self.assertEqual(charlie.post(release_url).status_code, 404)
        self.assertRedirects(alice.post(release_url), f"/messages/{m.uuid}/", fetch_redirect_response=False)
        m.refresh_from_db()
        self.assertEqual(m.status, MessageStatus.QUEUED)
        self.assertTrue(self.last_audit(action="message.release"))

    def test_cancel_in_the_ui(self):
        [m] = accept_messages(
            self.tenant_a, Submission(sender="a@mail-a.test", to=["x@example.com"], text="t")
        ).messages
        alice = self.client_for(self.alice)
        cancel_url = f"/messages/{m.uuid}/cancel/"
        self.assertContains(alice.get(f"/messages/{m.uuid}/"), cancel_url)
        self.assertEqual(self.client_for(self.bob).post(cancel_url).status_code, 403)
        self.assertEqual(self.client_for(self.charlie).post(cancel_url).status_code, 404)
        page = alice.post(cancel_url, follow=True)
        self.assertContains(page, "The message is cancelled.")
        page = alice.post(cancel_url, follow=True)  # twice: the conflict is a message on the page, nothing changes
        self.assertContains(page, "can no longer be cancelled")
        m.refresh_from_db()
        self.assertEqual(m.status, MessageStatus.CANCELLED)
        self.assertEqual(MessageEvent.objects.filter(message=m, kind=EventKind.CANCELLED).count(), 1)

    def test_send_at_on_the_detail_page(self):
        from datetime import datetime, timedelta

        send_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
        [m] = accept_messages(
            self.tenant_a, Submission(sender="a@mail-a.test", to=["x@example.com"], text="t", send_at=send_at)
        ).messages
        self.assertContains(self.client_for(self.bob).get(f"/messages/{m.uuid}/"), f"{send_at:%Y-%m-%d %H:%M:%S}")

    def test_list_filters_in_the_ui(self):
        for rcpt, tag in [("x@one.example", "welcome"), ("y@two.example", "digest")]:
            accept_messages(self.tenant_a, Submission(sender="a@mail-a.test", to=[rcpt], text="t", tag=tag))
        Message.objects.filter(rcpt_to="y@two.example").update(status=MessageStatus.DELIVERED)
        alice = self.client_for(self.alice)

        def shown(query):
            page = alice.get("/messages/", query)
            self.assertEqual(page.status_code, 200)
            return {r for r in ("x@one.example", "y@two.example") if r in page.content.decode()}

        self.assertEqual(shown({}), {"x@one.example", "y@two.example"})
        self.assertEqual(shown({"status": "delivered"}), {"y@two.example"})
        self.assertEqual(shown({"recipient": "x@"}), {"x@one.example"})
        self.assertEqual(shown({"domain": "two.example"}), {"y@two.example"})
        self.assertEqual(shown({"tag": "welcome"}), {"x@one.example"})
        self.assertEqual(shown({"after": "2999-01-01T00:00"}), set())  # the form's datetime-local format
        self.assertEqual(shown({"before": "2999-01-01T00:00"}), {"x@one.example", "y@two.example"})
        self.assertEqual(shown({"before": "2000-01-01T00:00"}), set())
        form = alice.get("/messages/").content.decode()
        for name in ("status", "recipient", "domain", "tag", "after", "before"):
            self.assertIn(f'name="{name}"', form)  # every filter has its input
