"""End to end: API → database → scheduler → real RQ worker (in-process SimpleWorker, real Redis) → SMTP sink.

Through a route and through MX (the loopback DNS server), with DKIM verified by dkimpy against that DNS server,
the right source IP, states and attempts; injection attempts never add a header, a recipient or a message.
The crash and Redis-loss runs with separate worker processes are in test_e2e_crash.py.
"""

import email
import email.policy

import dkim
import dns.resolver
from django.test import Client, TransactionTestCase, override_settings

from deliveryhub import services as core
from deliveryhub.choices import Role
from deliveryhub.testing.cases import TenantTestCase, login_verified, make_user
from deliveryhub.testing.dns import DNSServer
from deliveryhub.testing.smtp import SMTPSink
from queues.choices import MessageStatus
from queues.delivery import mx, scheduler, state
from queues.models import CapturedMessage, Message, Route
from queues.testing import dkim_zone, make_sending_domain, make_sending_ips

from .helpers import flush_redis, run_once, work_queue

URL = "/api/v1/messages/"


def dkim_verifies(data, dns_address):
    host, port = dns_address.split(":")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = int(port)

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(name, "TXT")
        except dns.exception.DNSException:
            return None
        return b"".join(b"".join(r.strings) for r in answer)

    return dkim.verify(data, dnsfunc=dnsfunc)


@override_settings(DEMO_MODE=False)
class EndToEndTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain = make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.node, cls.ips, cls.pool = make_sending_ips(("127.0.0.2", "127.0.0.3"))

    def setUp(self):
        flush_redis()
        mx.clear_cache()
        self.addCleanup(state.close)
        self.sink = SMTPSink(tls_cert="self-signed").start()
        self.addCleanup(self.sink.stop)
        self.dns = DNSServer().start()
        self.addCleanup(self.dns.stop)
        self.dns.set_zone("mail-a.test", dkim_zone(self.domain))
        self.dns.set_zone("example.test", "@ 300 IN MX 10 mx.example.test.\nmx 300 IN A 127.0.0.1")
        self.dns.set_zone("nullmx.test", "@ 300 IN MX 0 .")

    def deliver_all(self, rounds=1):
        for _ in range(rounds):
            with self.captureOnCommitCallbacks(execute=True):
                scheduler.schedule()
            work_queue()

    def post(self, **payload):
        body = {"from": "App <app@mail-a.test>", "subject": "Hello", "text": "Hi there", **payload}
        response = self.api(self.alice_key).post(URL, body, format="json")
        self.assertEqual(response.status_code, 202, response.content)
        return [m["id"] for m in response.json()["messages"]]

    def test_via_mx_with_dkim_from_pool_ip(self):
        with override_settings(DNS_RESOLVERS=[self.dns.address], SMTP_PORT=self.sink.port):
            ids = self.post(to=[f"user{i}@example.test" for i in range(5)], html="<p>Hi</p>")
            self.deliver_all()
        received = self.sink.wait_for_messages(5)
        self.assertEqual(len(received), 5)
        for message in received:
            self.assertIn(message.peer[0], ("127.0.0.2", "127.0.0.3"))
            self.assertTrue(message.tls)
            self.assertTrue(dkim_verifies(message.data, self.dns.address), message.data[:400])
        for uuid in ids:
            detail = self.api(self.alice_key).get(f"{URL}{uuid}/").json()
            self.assertEqual(detail["status"], "delivered")
            [attempt] = detail["attempts_log"]
            self.assertEqual(attempt["mx_host"], "mx.example.test")
            self.assertIn(attempt["source_ip"], ("127.0.0.2", "127.0.0.3"))
            self.assertTrue(attempt["tls_version"].startswith("TLS"))
            self.assertEqual(attempt["code"], 250)
            self.assertEqual([e["kind"] for e in detail["events"]], ["accepted", "delivered"])
        # All of one batch leaves from one IP (batches are per source IP).
        self.assertEqual(len({m.peer[0] for m in received}), 1)

    def test_wire_format_verp_crlf_long_lines_and_signed_list_unsubscribe(self):
        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=self.sink.port)
        headers = {"List-Unsubscribe": "<mailto:unsub@mail-a.test>, <https://mail-a.test/u/1>",
                   "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}  # fmt: skip
        [uuid] = self.post(to=["reader@example.com"], headers=headers, html="<p>" + "w" * 3000 + "</p>",
                           text="line one\nline two\rline three\n" + "z" * 2000)  # fmt: skip
        self.deliver_all()
        [received] = self.sink.wait_for_messages(1)
        message = Message.objects.get(uuid=uuid)
        # VERP: the envelope sender is on the return-path subdomain and identifies the message.
        self.assertEqual(received.mail_from, message.mail_from)
        self.assertTrue(received.mail_from.endswith("@bounces.mail-a.test"), received.mail_from)
        self.assertEqual(Message.uuid_from_verp(received.mail_from), message.uuid)
        # CRLF only, no line over 998 octets, Date and Message-ID added.
        self.assertNotRegex(received.data, rb"(?<!\r)\n")
        self.assertNotRegex(received.data, rb"\r(?!\n)")
        self.assertTrue(all(len(line) <= 998 for line in received.data.split(b"\r\n")))
        parsed = received.parse()
        self.assertTrue(parsed["Date"] and parsed["Message-ID"])
        self.assertEqual(parsed.get_body(("plain",)).get_content().count("z"), 2000)
        # DKIM covers List-Unsubscribe and List-Unsubscribe-Post, and verifies.
        signature = parsed["DKIM-Signature"].replace("\r\n", "").replace(" ", "").replace("\t", "")
        signed = signature.split("h=")[1].split(";")[0].lower().split(":")
        for name in ("from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"):
            self.assertIn(name, signed)
        self.assertEqual(signed.count("from"), 2)  # over-signed
        with override_settings(DNS_RESOLVERS=[self.dns.address]):
            self.assertTrue(dkim_verifies(received.data, self.dns.address))

    def test_domain_tls_policy_required_verifies_the_certificate(self):
        from domains.models import SendingDomain

        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=self.sink.port)
        SendingDomain.objects.filter(pk=self.domain.pk).update(tls_policy="required")
        [untrusted] = self.post(to=["strict@example.com"])
        self.deliver_all()
        message = Message.objects.get(uuid=untrusted)
        self.assertEqual(message.status, MessageStatus.DEFERRED)
        attempt = message.delivery_attempts.get()
        self.assertEqual(attempt.category, "tls_required")
        self.assertEqual(self.sink.messages, [])
        # Once the certificate chains to a trusted CA the same policy delivers, recorded as verified.
        with override_settings(SMTP_TLS_CA_FILE=self.sink.ca_cert_path):
            state.close()
            Message.objects.filter(uuid=untrusted).update(next_attempt_at=message.created)
            self.deliver_all()
        message.refresh_from_db()
        self.assertEqual(message.status, MessageStatus.DELIVERED)
        last = message.delivery_attempts.last()
        self.assertTrue(last.tls_verified)
        self.assertTrue(last.tls_version.startswith("TLS"))
        # Opportunistic (the default) delivers over the same self-signed certificate, recorded as unverified.
        SendingDomain.objects.filter(pk=self.domain.pk).update(tls_policy="opportunistic")
        state.close()
        [relaxed] = self.post(to=["relaxed@example.com"])
        self.deliver_all()
        attempt = Message.objects.get(uuid=relaxed).delivery_attempts.get()
        self.assertEqual((attempt.status, attempt.tls_verified), ("delivered", False))
        self.assertTrue(attempt.tls_version.startswith("TLS"))

    def test_null_mx_bounces_without_connecting(self):
        with override_settings(DNS_RESOLVERS=[self.dns.address], SMTP_PORT=self.sink.port):
            [uuid] = self.post(to=["x@nullmx.test"])
            self.deliver_all()
        message = Message.objects.get(uuid=uuid)
        self.assertEqual(message.status, MessageStatus.BOUNCED)
        self.assertEqual(self.sink.connections, 0)

    def test_via_route_greylisted_then_delivered(self):
        Route.objects.create(tenant=self.tenant_a, pattern="*.example.com", host="127.0.0.1", port=self.sink.port)
        self.sink.script("grey@sub.example.com", ["421 4.7.0 Try again later, greylisted", "250 OK"])
        [uuid] = self.post(to=["grey@sub.example.com"])
        self.deliver_all()
        Message.objects.filter(uuid=uuid).update(next_attempt_at=Message.objects.get(uuid=uuid).created)
        self.deliver_all()
        message = Message.objects.get(uuid=uuid)
        self.assertEqual((message.status, message.attempts), (MessageStatus.DELIVERED, 2))
        self.assertEqual(len(self.sink.messages), 1)

    def test_injection_attempts_add_nothing(self):
        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=self.sink.port)
        attempts = [
            {"to": ["victim@example.com"], "subject": "x\r\nBcc: evil@example.com"},
            {"to": ["victim@example.com\r\nRCPT TO:<evil@example.com>"]},
            {"to": ["victim@example.com"], "headers": {"X-A": "1\r\n\r\nbody"}},
        ]
        for payload in attempts:
            body = {"from": "app@mail-a.test", "text": "t", **payload}
            self.assertEqual(self.api(self.alice_key).post(URL, body, format="json").status_code, 400)
        # A body full of SMTP-looking lines and smuggling sequences is content, dot-stuffed, never commands.
        smuggle = "a\r\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<evil@example.com>\r\nDATA\r\nx\n.\r\nb\r.\r\n"
        self.post(to=["victim@example.com"], text=smuggle)
        raw = ("From: app@mail-a.test\nTo: victim@example.com\nSubject: raw\n\nline\n.\nMAIL FROM:<evil@example.com>\n"
               "RCPT TO:<evil@example.com>\nDATA\n\n.\r\n")  # fmt: skip
        response = self.api(self.alice_key).post(URL, {"raw": raw, "envelope": {"to": ["victim@example.com"]}},
                                                  format="json")  # fmt: skip
        self.assertEqual(response.status_code, 202, response.content)
        self.deliver_all()
        received = self.sink.wait_for_messages(2)
        self.assertEqual(len(received), 2)
        self.assertEqual(self.sink.transactions, 2)
        for message in received:
            self.assertEqual(message.rcpt_tos, ["victim@example.com"])
            self.assertNotIn("evil", message.mail_from)
            parsed = email.message_from_bytes(message.data, policy=email.policy.default)
            self.assertIsNone(parsed["Bcc"])
            self.assertEqual(len(parsed.get_all("From")), 1)
        self.assertEqual(Message.objects.filter(status=MessageStatus.DELIVERED).count(), 2)


def test_worker_killed_and_redis_flushed_lose_nothing(tmp_path):
    """Two real `rqworker` processes; one is SIGKILLed mid-batch, Redis is flushed mid-run: all mail arrives."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'crash.sqlite3'}",
        "DELIVERYHUB_VAR_DIR": str(tmp_path),
        "DELIVERYHUB_NODE": "crash-node",
        "DELIVERYHUB_DEMO_MODE": "false",
        "DELIVERYHUB_BATCH_SIZE": "10",
        "DELIVERYHUB_LEASE_SECONDS": "8",
        "DELIVERYHUB_SCHEDULE_LEASE_SECONDS": "3",
        "DELIVERYHUB_BATCH_CONCURRENCY": "5",
    }
    script = Path(__file__).with_name("crash_scenario.py")
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=script.parents[2])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["killed"] and result["flushed"], result
    assert result["statuses"] == {"delivered": 300}, result
    assert result["sink_unique"] == result["delivered"] == 300, result
    assert result["sink_matches_db"], result
    # Duplicates only from what the killed worker had in flight (docs/delivery.md): at most one batch.
    assert result["sink_total"] - result["sink_unique"] <= result["batch_size"], result


def test_two_nodes_send_only_from_their_own_ips(tmp_path):
    """Two nodes on one machine (node-a owns 127.0.0.2, node-b 127.0.0.3, one shared pool), one real `rqworker
    delivery-<node>` process each: everything arrives from both addresses, and each node sent only from its own."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'nodes.sqlite3'}",
        "DELIVERYHUB_VAR_DIR": str(tmp_path),
        "DELIVERYHUB_NODE": "scheduler-node",
        "DELIVERYHUB_DEMO_MODE": "false",
        "DELIVERYHUB_BATCH_SIZE": "10",
        "DELIVERYHUB_BATCH_CONCURRENCY": "5",
    }
    script = Path(__file__).with_name("multinode_scenario.py")
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=120, cwd=script.parents[2])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["statuses"] == {"delivered": 200}, result
    assert result["sink_total"] == 200, result
    assert result["sink_sources"] == ["127.0.0.2", "127.0.0.3"], result
    owned = {f"{node} {address}" for node, address in result["ownership"].items()}
    assert set(result["attempt_pairs"]) == owned, result  # node-a only ever sent from 127.0.0.2, node-b from .3
    assert sum(result["attempt_pairs"].values()) == 200, result


class DemoCaptureTest(TransactionTestCase):
    """Demo mode without routes: mail goes to the capture server and shows up in the Test inbox with DKIM."""

    def setUp(self):
        from queues.capture import capture_server_factory
        from queues.smtpd.listener import ThreadedServer

        flush_redis()
        server = ThreadedServer(capture_server_factory(), "127.0.0.1", 0).start()
        self.addCleanup(server.stop)
        self.addCleanup(state.close)  # runs first: QUIT while the server still answers
        self.port = server.port
        self.tenant = core.create_tenant("demo", "Demo")
        self.user = make_user("demo@demo.test", self.tenant, Role.ADMIN)
        make_sending_domain(self.tenant, "demo.test")
        make_sending_ips(("127.0.0.2",))

    def test_test_message_arrives_in_the_inbox(self):
        client = Client()
        login_verified(client, self.user)
        with override_settings(DEMO_MODE=True, CAPTURE_SMTP_PORT=self.port, DNS_RESOLVERS=["127.0.0.1:9"]):
            response = client.post("/test-inbox/", {"sender": "me@demo.test", "to": "friend@example.com",
                                                    "subject": "Demo!", "text": "hello from the demo"})  # fmt: skip
            self.assertEqual(response.status_code, 302, response.content[:500])
            run_once()
        captured = CapturedMessage.objects.get()
        self.assertEqual(captured.tenant, self.tenant)
        self.assertEqual(captured.rcpt_tos, ["friend@example.com"])
        self.assertEqual(captured.subject, "Demo!")
        self.assertTrue(captured.dkim_result.startswith("pass"), captured.dkim_result)
        self.assertEqual(Message.objects.get().status, MessageStatus.DELIVERED)
        page = client.get("/test-inbox/")
        self.assertContains(page, "Demo!")
        self.assertContains(page, captured.dkim_result)  # the DKIM result of each message
        shown = client.get(f"/test-inbox/?show={captured.pk}")
        for text in ["friend@example.com", "Subject: Demo!", "DKIM-Signature:", "Message-ID:", "hello from the demo"]:
            self.assertContains(shown, text)  # headers and body
        self.assertContains(client.get("/messages/"), "friend@example.com")
        self.assertContains(client.get(f"/messages/{Message.objects.get().uuid}/"), "Delivered")
