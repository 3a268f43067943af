"""The List-Unsubscribe mailto: fallback through the real inbound SMTP listener: mail to `u-<token>@<return path>`
unsubscribes like the one-click POST; a tampered address is refused at RCPT and changes nothing."""

import smtplib

from django.test import TransactionTestCase

from deliveryhub import services as core
from deliveryhub.testing.smtp import self_signed_certificate
from queues.campaigns import fanout, services, tokens
from queues.choices import EventKind, SubscriptionStatus
from queues.models import Message, Subscription
from queues.smtpd.listener import Listener, tls_context
from queues.testing import make_sending_domain

from .campaign_helpers import make_campaign, make_list


class MailtoUnsubscribeTest(TransactionTestCase):
    def test_mail_to_the_unsubscribe_address_unsubscribes(self):
        tenant = core.create_tenant("mailto", "Mailto")
        make_sending_domain(tenant, "mail-a.test")
        contact_list = make_list(tenant, "News", ["ann@example.com", "bob@example.com"])
        campaign = services.start_campaign(make_campaign(tenant, contact_list))
        fanout.fan_out(campaign.pk)
        message = Message.objects.get(content__campaign=campaign, rcpt_to="ann@example.com")
        address = tokens.unsubscribe_address(tokens.message_token(message.uuid), "bounces.mail-a.test")
        cert, key, _ = self_signed_certificate()
        inbound = Listener("127.0.0.1", 0, context=tls_context(cert, key), inbound=True).start()
        self.addCleanup(inbound.stop)
        smtp = smtplib.SMTP("127.0.0.1", inbound.port, timeout=10)
        self.addCleanup(smtp.close)
        smtp.ehlo("mx.example.com")
        smtp.mail("ann@example.com")
        tampered = address.replace("@", "x@")
        self.assertEqual(smtp.rcpt(tampered)[0], 550)
        self.assertEqual(smtp.rcpt(address.upper())[0], 250)  # some MTAs upper-case local parts: still ours
        body = f"From: ann@example.com\r\nTo: {address}\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n"
        self.assertEqual(smtp.data(body.encode())[0], 250)
        self.assertEqual(Subscription.objects.get(contact__email="ann@example.com").status,
                         SubscriptionStatus.UNSUBSCRIBED)
        self.assertEqual(Subscription.objects.get(contact__email="bob@example.com").status,
                         SubscriptionStatus.SUBSCRIBED)
        self.assertEqual(message.events.filter(kind=EventKind.UNSUBSCRIBED).get().data, {"via": "mailto"})
