"""Feedback loops at registered addresses, async bounces with the tenant's rules, DMARC aggregate reports — all sent
over real SMTP to the inbound listener."""

import gzip
import io
import re
import smtplib
import zipfile
from email.message import EmailMessage

from django.test import TransactionTestCase

from deliveryhub import services as core
from deliveryhub.testing.smtp import self_signed_certificate
from domains.models import DmarcRecord, DmarcReport
from queues.choices import EventKind, MessageStatus, RuleAction
from queues.models import BounceRule, FeedbackReport, Message, MessageEvent, Suppression
from queues.services import Submission, accept_messages
from queues.smtpd.listener import Listener, tls_context
from queues.testing import make_sending_domain, make_sending_ips


def crlf(data):
    return re.sub(rb"\r?\n", b"\r\n", data)


def arf(original, *, headers_only=False, rcpt="", feedback_type="abuse"):
    """An RFC 5965 report about `original` (bytes), as receivers send them (7bit parts)."""
    fields = f"Feedback-Type: {feedback_type}\r\nUser-Agent: ISP-FBL/1.0\r\nVersion: 1\r\nSource-IP: 127.0.0.2\r\n"
    if rcpt:
        fields += f"Original-Rcpt-To: {rcpt}\r\n"
    if headers_only:
        third = b"Content-Type: text/rfc822-headers\r\n\r\n" + original.split(b"\r\n\r\n")[0] + b"\r\n"
    else:
        third = b"Content-Type: message/rfc822\r\n\r\n" + original
    return crlf(
        b"From: fbl@isp.example\r\nTo: fbl@bounces.mail-a.test\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="arf"\r\n\r\n'
        b"--arf\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n"
        b"--arf\r\nContent-Type: message/feedback-report\r\n\r\n" + fields.encode() + b"\r\n"
        b"--arf\r\n" + third + b"\r\n--arf--\r\n"
    )


DMARC_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>google.com</org_name><email>noreply-dmarc@google.com</email>
    <report_id>{rid}</report_id><date_range><begin>1767225600</begin><end>1767311999</end></date_range>
  </report_metadata>
  <policy_published><domain>mail-a.test</domain><p>none</p></policy_published>
  <record><row><source_ip>127.0.0.2</source_ip><count>120</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>mail-a.test</header_from></identifiers>
    <auth_results><dkim><domain>mail-a.test</domain><result>pass</result></dkim>
      <spf><domain>bounces.mail-a.test</domain><result>pass</result></spf></auth_results></record>
  <record><row><source_ip>203.0.113.9</source_ip><count>7</count>
      <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>mail-a.test</header_from></identifiers></record>
</feedback>"""

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<feedback><report_metadata><org_name>&lol3;</org_name></report_metadata></feedback>"""


def dmarc_mail(data, filename, maintype, subtype):
    mail = EmailMessage()
    mail["From"] = "noreply-dmarc@google.com"
    mail["To"] = "dmarc@bounces.mail-a.test"
    mail["Subject"] = "Report domain: mail-a.test"
    mail.set_content("DMARC aggregate report.")
    mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return crlf(mail.as_bytes())


class InboundFeedbackTest(TransactionTestCase):
    def setUp(self):
        self.tenant = core.create_tenant("fb-a", "FB A")
        self.other = core.create_tenant("fb-b", "FB B")
        self.domain = make_sending_domain(self.tenant, "mail-a.test")
        make_sending_domain(self.other, "mail-b.test")
        cert, key, _ = self_signed_certificate()
        self.listener = Listener("127.0.0.1", 0, context=tls_context(cert, key), inbound=True).start()
        self.addCleanup(self.listener.stop)

    def send_mail(self, rcpt, content, sender="reports@isp.example"):
        with smtplib.SMTP("127.0.0.1", self.listener.port, timeout=10) as smtp:
            smtp.ehlo("isp.example")
            smtp.mail(sender)
            code, reply = smtp.rcpt(rcpt)
            if code != 250:
                return code, reply
            return smtp.data(content)

    def sent(self, to="person@example.com"):
        message = accept_messages(self.tenant, [Submission(sender="app@mail-a.test", to=[to], subject="Hi",
                                                           text="Hello")]).messages[0]  # fmt: skip
        Message.objects.filter(pk=message.pk).update(status=MessageStatus.DELIVERED)
        return message, bytes(message.content.raw)

    def test_arf_with_original_message_matched_suppressed_counted(self):
        message, raw = self.sent()
        code, _ = self.send_mail("fbl@bounces.mail-a.test", arf(raw))
        self.assertEqual(code, 250)
        report = FeedbackReport.objects.get()
        self.assertEqual((report.message, report.matched_by, report.feedback_type), (message, "message-id", "abuse"))
        self.assertTrue(MessageEvent.objects.filter(message=message, kind=EventKind.COMPLAINED).exists())
        self.assertTrue(Suppression.objects.filter(tenant=self.tenant, address="person@example.com").exists())

    def test_arf_headers_only_two_recipients_matched_by_original_rcpt(self):
        messages = accept_messages(self.tenant, [Submission(sender="app@mail-a.test", to=["one@example.com",
                                   "two@example.com"], subject="Hi", text="Hello")]).messages  # fmt: skip
        raw = bytes(messages[0].content.raw)
        code, _ = self.send_mail("FBL@bounces.mail-a.test", arf(raw, headers_only=True, rcpt="two@example.com"))
        self.assertEqual(code, 250)
        report = FeedbackReport.objects.get()
        self.assertEqual(report.message.rcpt_to, "two@example.com")
        self.assertTrue(Suppression.objects.filter(address="two@example.com").exists())
        self.assertFalse(Suppression.objects.filter(address="one@example.com").exists())

    def test_source_ip_complaints_counted(self):
        ip = make_sending_ips(("127.0.0.2",))[1][0]
        message, raw = self.sent()
        Message.objects.filter(pk=message.pk).update(source_ip=ip)
        self.send_mail("fbl@bounces.mail-a.test", arf(raw))
        self.assertTrue(MessageEvent.objects.filter(message=message, kind=EventKind.COMPLAINED).exists())

    def test_custom_fbl_address_and_unmatched_report_kept(self):
        self.domain.feedback_address = "abuse-loop@mail-a.test"
        self.domain.save()
        original = b"From: x@mail-a.test\r\nTo: y@example.com\r\nMessage-ID: <nope@elsewhere>\r\n\r\nbody\r\n"
        self.assertEqual(self.send_mail("fbl@bounces.mail-a.test", arf(original))[0], 550)  # no longer registered
        self.assertEqual(self.send_mail("abuse-loop@mail-a.test", arf(original))[0], 250)
        report = FeedbackReport.objects.get()
        self.assertIsNone(report.message)
        self.assertEqual(report.matched_by, "")
        self.assertEqual(report.tenant, self.tenant)
        self.assertFalse(Suppression.objects.exists())

    def test_dsn_uses_the_tenants_bounce_rules(self):
        message, _ = self.sent("mbox@example.com")
        BounceRule.objects.create(tenant=self.tenant, code="5xx", enhanced="5.2.2", category="mailbox_full_custom",
                                  action=RuleAction.BOUNCE_SUPPRESS)  # fmt: skip
        verp = message.mail_from
        dsn = (
            b"From: MAILER-DAEMON@example.com\r\nTo: " + verp.encode() + b"\r\nSubject: failure\r\n"
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
            b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
            b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
            b"Final-Recipient: rfc822; mbox@example.com\r\nAction: failed\r\nStatus: 5.2.2\r\n"
            b"Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\n--b--\r\n"
        )
        self.assertEqual(self.send_mail(verp, dsn, sender="")[0], 250)
        event = MessageEvent.objects.get(message=message, kind=EventKind.DSN)
        self.assertEqual(event.data["category"], "mailbox_full_custom")
        self.assertTrue(Suppression.objects.filter(address="mbox@example.com").exists())

    def test_dmarc_plain_gzip_zip_stored_once(self):
        make_sending_ips(("127.0.0.2",))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("google.com!mail-a.test!1!2.xml", DMARC_XML.replace(b"{rid}", b"r3"))
        mails = [
            dmarc_mail(DMARC_XML.replace(b"{rid}", b"r1"), "r1.xml", "text", "xml"),
            dmarc_mail(gzip.compress(DMARC_XML.replace(b"{rid}", b"r2")), "r2.xml.gz", "application", "gzip"),
            dmarc_mail(buffer.getvalue(), "r3.zip", "application", "zip"),
            dmarc_mail(DMARC_XML.replace(b"{rid}", b"r1"), "r1.xml", "text", "xml"),  # resent: stored once
        ]
        for mail in mails:
            self.assertEqual(self.send_mail("dmarc@bounces.mail-a.test", mail)[0], 250)
        self.assertEqual(sorted(DmarcReport.objects.values_list("report_id", flat=True)), ["r1", "r2", "r3"])
        report = DmarcReport.objects.get(report_id="r1")
        self.assertEqual((report.tenant, report.sending_domain, report.message_count), (self.tenant, self.domain, 127))
        rows = {r.source_ip: r for r in DmarcRecord.objects.filter(report=report)}
        self.assertTrue(rows["127.0.0.2"].ours)
        self.assertFalse(rows["203.0.113.9"].ours)
        self.assertFalse(rows["203.0.113.9"].dmarc_pass)

    def test_dmarc_malformed_bomb_and_other_domain_refused(self):
        cases = [
            dmarc_mail(b"<feedback><report_metadata>", "bad.xml", "text", "xml"),
            dmarc_mail(BOMB, "bomb.xml", "text", "xml"),
            dmarc_mail(gzip.compress(b"<a>" + b" " * (25 * 1024 * 1024) + b"</a>"), "big.xml.gz", "application",
                       "gzip"),  # fmt: skip
            dmarc_mail(DMARC_XML.replace(b"{rid}", b"x").replace(b"<domain>mail-a.test</domain>",
                                                                 b"<domain>mail-b.test</domain>"), "o.xml", "text",
                       "xml"),  # fmt: skip
        ]
        for mail in cases:
            code, reply = self.send_mail("dmarc@bounces.mail-a.test", mail)
            self.assertEqual(code, 554, reply)
        self.assertFalse(DmarcReport.objects.exists())
        # Our rua address as the domain lists it in DMARC is taken too.
        self.domain.dmarc_rua = "mailto:reports@mail-a.test"
        self.domain.save()
        mail = dmarc_mail(DMARC_XML.replace(b"{rid}", b"r9"), "r9.xml", "text", "xml")
        self.assertEqual(self.send_mail("reports@mail-a.test", mail)[0], 250)
        self.assertEqual(self.send_mail("random@mail-a.test", b"Subject: x\r\n\r\nx\r\n")[0], 550)
