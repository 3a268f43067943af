"""The SMTP listener: STARTTLS before AUTH, credentials, 250 only after commit, no relay, no smuggling, reports."""

import base64
import smtplib
import socket
import ssl

from django.test import TransactionTestCase, override_settings

from deliveryhub import services as core
from deliveryhub.models import LoginFailure
from deliveryhub.testing.smtp import self_signed_certificate
from queues.choices import EventKind, MessageStatus
from queues.models import Message, MessageEvent, Suppression
from queues.services import Submission, accept_messages, create_smtp_credential
from queues.smtpd.listener import Listener, tls_context
from queues.testing import make_sending_domain

MESSAGE = b"From: App <app@mail-a.test>\r\nTo: rcpt@example.com\r\nSubject: via smtp\r\n\r\nHello\r\n"


def client_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class ListenerTest(TransactionTestCase):
    def setUp(self):
        self.tenant = core.create_tenant("smtp-a", "SMTP A")
        self.other = core.create_tenant("smtp-b", "SMTP B")
        make_sending_domain(self.tenant, "mail-a.test")
        make_sending_domain(self.other, "mail-b.test")
        self.credential, self.password = create_smtp_credential(self.tenant, "app-a")
        cert, key, _ = self_signed_certificate()
        self.listener = Listener("127.0.0.1", 0, context=tls_context(cert, key)).start()
        self.addCleanup(self.listener.stop)

    def connect(self, tls=True, login=True):
        smtp = smtplib.SMTP("127.0.0.1", self.listener.port, timeout=10)
        self.addCleanup(smtp.close)
        smtp.ehlo("client.test")
        if tls:
            smtp.starttls(context=client_context())
            smtp.ehlo("client.test")
        if login:
            smtp.login("app-a", self.password)
        return smtp

    def test_submission_accepted_after_commit(self):
        smtp = self.connect()
        smtp.mail("whatever@client.test")
        smtp.rcpt("rcpt@example.com")
        smtp.rcpt("second@example.org")
        code, reply = smtp.data(MESSAGE)
        self.assertEqual(code, 250, reply)
        self.assertIn(b"queued as", reply)
        # The 250 came after the commit: the rows are there for anyone to read.
        rows = Message.objects.filter(tenant=self.tenant)
        self.assertEqual(sorted(rows.values_list("rcpt_to", flat=True)), ["rcpt@example.com", "second@example.org"])
        self.assertTrue(any(str(m.uuid).encode() in reply for m in rows), reply)
        self.assertEqual(rows.first().status, MessageStatus.QUEUED)

    def test_starttls_required_and_auth_only_after_it(self):
        smtp = smtplib.SMTP("127.0.0.1", self.listener.port, timeout=10)
        self.addCleanup(smtp.close)
        smtp.ehlo("client.test")
        self.assertNotIn("auth", smtp.esmtp_features)
        code, _ = smtp.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0app-a\0" + self.password.encode()).decode())
        self.assertEqual(code, 530)
        code, _ = smtp.docmd("MAIL", "FROM:<a@mail-a.test>")
        self.assertEqual(code, 530)

    def test_wrong_password_and_unknown_user(self):
        smtp = self.connect(login=False)
        with self.assertRaises(smtplib.SMTPAuthenticationError):
            smtp.login("app-a", "wrong")
        with self.assertRaises(smtplib.SMTPAuthenticationError):
            smtp.login("nobody", self.password)
        smtp.login("app-a", self.password)  # LOGIN or PLAIN: both work
        # Stored hashed: the password itself is nowhere in the credential's row.
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM queues_smtpcredential")
            row = str(cursor.fetchall())
        self.assertIn(self.credential.password_digest, row)
        self.assertNotIn(self.password, row)

    @override_settings(LOGIN_THROTTLE_DELAY=60, LOGIN_THROTTLE_SLOW_AFTER=3, LOGIN_THROTTLE_ADDRESS_SLOW_AFTER=6)
    def test_auth_failures_are_throttled_per_address_and_user_name_with_454(self):
        def auth(smtp, username, password):
            token = base64.b64encode(b"\0" + username.encode() + b"\0" + password.encode()).decode()
            return smtp.docmd("AUTH", "PLAIN " + token)

        guesses = []
        for _ in range(8):  # 40 guesses in 8 connections, as an attacker would
            smtp = self.connect(login=False)
            guesses += [auth(smtp, "app-a", f"guess-{n}") for n in range(5)]
            smtp.close()
        self.assertEqual([code for code, _ in guesses[:3]], [535, 535, 535])
        self.assertEqual({code for code, _ in guesses[3:]}, {454})
        self.assertRegex(guesses[-1][1].decode(), r"^4\.7\.0 Too many failed authentications: try again in \d+ s")
        code, _ = auth(self.connect(login=False), "app-a", self.password)
        self.assertEqual(code, 454, "the right password does not get through while this client must wait")
        self.assertEqual(LoginFailure.objects.filter(username="smtp:app-a").count(), 3, "refusals are not counted")

        # The application on another address, which has not been failing, logs in at once.
        other = smtplib.SMTP("127.0.0.1", self.listener.port, timeout=10, source_address=("127.0.0.2", 0))
        self.addCleanup(other.close)
        other.ehlo("app.test")
        other.starttls(context=client_context())
        other.ehlo("app.test")
        self.assertEqual(auth(other, "app-a", self.password)[0], 235)

        # Spraying user names from one address: the address itself waits after 6 failures, whatever the name.
        spray = smtplib.SMTP("127.0.0.1", self.listener.port, timeout=10, source_address=("127.0.0.3", 0))
        self.addCleanup(spray.close)
        spray.ehlo("spray.test")
        spray.starttls(context=client_context())
        spray.ehlo("spray.test")
        codes = [auth(spray, f"user-{n}", "password")[0] for n in range(7)]
        self.assertEqual(codes, [535] * 6 + [454])

    def test_no_open_relay(self):
        smtp = self.connect(login=False)
        smtp.mail("a@client.test")
        code, reply = smtp.rcpt("victim@example.com")
        self.assertEqual(code, 550)
        self.assertIn(b"5.7.1", reply)

    def test_other_tenants_domain_refused(self):
        smtp = self.connect()
        smtp.mail("a@client.test")
        smtp.rcpt("x@example.com")
        code, reply = smtp.data(MESSAGE.replace(b"mail-a.test", b"mail-b.test"))
        self.assertEqual(code, 550)
        self.assertFalse(Message.objects.exists())

    def raw_session(self):
        """A TLS socket, authenticated, in the middle of a transaction waiting for DATA."""
        sock = socket.create_connection(("127.0.0.1", self.listener.port), timeout=10)
        self.addCleanup(sock.close)
        reader = sock.makefile("rb")

        def cmd(line):
            sock.sendall(line + b"\r\n")
            return read_reply(reader)

        read_reply(reader)
        cmd(b"EHLO client.test")
        self.assertEqual(cmd(b"STARTTLS")[:3], b"220")
        sock = client_context().wrap_socket(sock)
        reader = sock.makefile("rb")

        def cmd_tls(line):
            sock.sendall(line + b"\r\n")
            return read_reply(reader)

        cmd_tls(b"EHLO client.test")
        auth = base64.b64encode(b"\0app-a\0" + self.password.encode())
        self.assertEqual(cmd_tls(b"AUTH PLAIN " + auth)[:3], b"235")
        return sock, reader, cmd_tls

    def test_smuggling_variants_refused_not_split(self):
        for end in [b"\n.\r\n", b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r"]:
            with self.subTest(end=end):
                sock, reader, cmd = self.raw_session()
                self.assertEqual(cmd(b"MAIL FROM:<a@client.test>")[:3], b"250")
                self.assertEqual(cmd(b"RCPT TO:<rcpt@example.com>")[:3], b"250")
                self.assertEqual(cmd(b"DATA")[:3], b"354")
                smuggled = (MESSAGE + b"first" + end + b"MAIL FROM:<evil@mail-a.test>\r\nRCPT TO:<evil@example.com>\r\n"
                            b"DATA\r\nFrom: evil@mail-a.test\r\n\r\nsmuggled\r\n")  # fmt: skip
                sock.sendall(smuggled + b".\r\n")
                reply = read_reply(reader)
                self.assertEqual(reply[:3], b"554", reply)
                self.assertEqual(cmd(b"QUIT")[:3], b"221")
        self.assertFalse(Message.objects.exists())

    def test_dsn_marks_bounced_and_arf_complaint_suppresses(self):
        [m1, m2] = accept_messages(self.tenant, Submission(sender="app@mail-a.test", to=["gone@example.com",
                                                                                        "angry@example.com"],
                                                           text="t")).messages  # fmt: skip
        Message.objects.filter(pk__in=[m1.pk, m2.pk]).update(status=MessageStatus.DELIVERED)
        dsn = (
            f"From: MAILER-DAEMON@example.com\r\nTo: {m1.mail_from}\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
            "Final-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n--b--\r\n"
        )
        arf = (
            f"From: fbl@example.com\r\nTo: {m2.mail_from}\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
            "--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n\r\n--b--\r\n"
        )
        for report, rcpt in ((dsn, m1.mail_from), (arf, m2.mail_from)):
            smtp = self.connect(login=False)
            smtp.mail("")
            self.assertEqual(smtp.rcpt(rcpt)[0], 250)
            self.assertEqual(smtp.data(report.encode())[0], 250)
        m1.refresh_from_db()
        self.assertEqual(m1.status, MessageStatus.BOUNCED)
        self.assertTrue(MessageEvent.objects.filter(message=m1, kind=EventKind.DSN).exists())
        self.assertTrue(MessageEvent.objects.filter(message=m2, kind=EventKind.COMPLAINED).exists())
        self.assertEqual(
            set(Suppression.objects.values_list("address", "reason")),
            {("gone@example.com", "hard_bounce"), ("angry@example.com", "complaint")},
        )

    def test_a_slow_credential_check_does_not_stall_other_sessions(self):
        """Checking credentials is a database round trip (slow when the database is): it runs in the database
        thread while the event loop goes on serving every other session."""
        import threading
        from unittest import mock

        from queues.smtpd import listener as module

        entered, go_on = threading.Event(), threading.Event()

        def held_authenticate(username, password, client_ip):
            entered.set()
            go_on.wait(10)
            return real_authenticate(username, password, client_ip)

        real_authenticate = module._authenticate
        outcome = {}

        def first_client():
            try:
                self.connect()
                outcome["first"] = "logged in"
            except Exception as error:
                outcome["first"] = repr(error)

        with mock.patch.object(module, "_authenticate", held_authenticate):
            thread = threading.Thread(target=first_client)
            thread.start()
            try:
                self.assertTrue(entered.wait(5))
                other = smtplib.SMTP("127.0.0.1", self.listener.port, timeout=3)  # answered while AUTH waits
                self.addCleanup(other.close)
                self.assertEqual(other.ehlo("second.test")[0], 250)
            finally:
                go_on.set()
                thread.join(10)
        self.assertEqual(outcome["first"], "logged in")

    def test_inbound_port_takes_reports_in_plain_text_and_offers_no_submission(self):
        """The MX of the return-path hosts: RFC 3207 forbids a public MX to require TLS, so bounces from servers
        without it still arrive; submission (AUTH) has no place there."""
        cert, key, _ = self_signed_certificate()
        inbound = Listener("127.0.0.1", 0, context=tls_context(cert, key), inbound=True).start()
        self.addCleanup(inbound.stop)
        [message] = accept_messages(self.tenant, Submission(sender="app@mail-a.test", to=["gone@example.com"],
                                                            text="t")).messages  # fmt: skip
        Message.objects.filter(pk=message.pk).update(status=MessageStatus.DELIVERED)
        smtp = smtplib.SMTP("127.0.0.1", inbound.port, timeout=10)
        self.addCleanup(smtp.close)
        smtp.ehlo("mx.example.com")
        self.assertIn("starttls", smtp.esmtp_features)
        self.assertNotIn("auth", smtp.esmtp_features)
        smtp.mail("")
        self.assertEqual(smtp.rcpt("someone@elsewhere.test")[0], 550)
        self.assertEqual(smtp.rcpt(message.mail_from)[0], 250)
        dsn = (
            f"From: MAILER-DAEMON@example.com\r\nTo: {message.mail_from}\r\nSubject: Undelivered\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
            "Final-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n"
        )
        self.assertEqual(smtp.data(dsn.encode())[0], 250)
        message.refresh_from_db()
        self.assertEqual(message.status, MessageStatus.BOUNCED)
        # With TLS either: no AUTH on offer, and AUTH is refused however it is tried.
        secure = smtplib.SMTP("127.0.0.1", inbound.port, timeout=10)
        self.addCleanup(secure.close)
        secure.starttls(context=client_context())
        code, features = secure.ehlo("mx.example.com")
        self.assertEqual(code, 250)
        self.assertNotIn(b"AUTH", features)
        token = base64.b64encode(b"\0app-a\0" + self.password.encode()).decode()
        self.assertEqual(secure.docmd("AUTH", "PLAIN " + token)[0], 504)
        self.assertEqual(secure.docmd("AUTH", "LOGIN")[0], 504)
        secure.mail("app@mail-a.test")
        self.assertEqual(secure.rcpt("rcpt@example.com")[0], 550)


def read_reply(reader):
    lines = []
    while True:
        line = reader.readline()
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)
