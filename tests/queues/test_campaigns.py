"""Campaigns without the delivery engine: the API's names, templates in the sandbox, fan-out, transitions and their
audit, the deliverability gate, one-click unsubscribe, tracking, pacing on a controlled clock, resend, tenancy."""

import datetime
from unittest import mock

from django.core.exceptions import ValidationError
from django.test import Client, override_settings
from django.utils import timezone

from deliveryhub import services as core
from deliveryhub.choices import Role
from deliveryhub.jobs import get_queue
from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase
from domains.choices import DNSCheckStatus, RecordKind
from domains.models import DnsCheck
from queues.campaigns import fanout, pacing, rendering, services, tokens
from queues.choices import CampaignState, EventKind, MessagePriority, MessageStatus, SubscriptionStatus
from queues.models import Campaign, Contact, Message, MessageContent, MessageEvent, Subscription, Suppression
from queues.testing import make_sending_domain

from .campaign_helpers import TEMPLATE_HTML, drain, make_campaign, make_list, make_marketer

URL = "/api/v1/campaigns/"


def started(campaign):
    """Start a campaign and run its fan-out (as the default queue's worker would)."""
    campaign = services.start_campaign(campaign)
    fanout.fan_out(campaign.pk)
    campaign.refresh_from_db()
    return campaign


def verified(domain):
    """Every record the gate looks at checks out."""
    now = timezone.now()
    for kind in (RecordKind.SPF, RecordKind.DKIM, RecordKind.DMARC, RecordKind.ALIGNMENT):
        DnsCheck.objects.update_or_create(
            domain=domain, kind=kind, subject="", defaults=dict(
                tenant_id=domain.tenant_id, name=domain.name, rdtype="TXT", status=DNSCheckStatus.OK, checked_at=now,
                status_since=now),
        )


class CampaignTestCase(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain = make_sending_domain(cls.tenant_a, "mail-a.test")
        make_sending_domain(cls.tenant_b, "mail-b.test")
        cls.marketer = make_marketer("mara@a.test", cls.tenant_a)
        cls.marketer_key_obj, cls.marketer_key = core.create_api_key(tenant=cls.tenant_a, name="mk",
                                                                     role=Role.MARKETER)

    def setUp(self):
        get_queue("default").connection.flushdb()
        self.list = make_list(self.tenant_a, "Customers", [
            ("ann@example.com", "Ann", {"city": "Lyon"}), ("bob@example.org", "", {}), "carol@example.net"])


class TemplateSandboxTest(CampaignTestCase):
    def test_python_internals_and_settings_are_out_of_reach(self):
        for source in ("{{ ''.__class__.__mro__ }}", "{{ contact.__class__ }}", "{{ cycler.__init__.__globals__ }}",
                       "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
                       "{{ range(10**6) | list }}"):
            with self.subTest(source=source), self.assertRaises(ValidationError) as caught:
                make_campaign(self.tenant_a, self.list, html=source)
            self.assertIn("html", caught.exception.message_dict)
            self.assertIn("Not allowed", caught.exception.message_dict["html"][0])
        with self.assertRaises(ValidationError) as caught:
            make_campaign(self.tenant_a, self.list, subject="Hi {{ contact.name ")
        self.assertIn("subject", caught.exception.message_dict)
        # Names that are not in the context render empty: no settings, no request, no secrets.
        campaign = make_campaign(self.tenant_a, self.list, html="[{{ settings.SECRET_KEY }}{{ request }}{{ config }}]")
        _, html, _ = services.preview(campaign)
        self.assertEqual(html, "[]")

    def test_variables_defaults_and_missing_values(self):
        campaign = make_campaign(self.tenant_a, self.list)
        ann, bob = (Contact.objects.get(email=e) for e in ("ann@example.com", "bob@example.org"))
        subject, html, text = services.preview(campaign, ann)
        self.assertEqual(subject, "Hi Ann")
        self.assertIn("Hello Ann from Lyon!", html)
        self.assertIn("Hello Ann from Lyon!", text)  # the text part is generated from the HTML
        self.assertIn("Sale (https://shop.example/sale?x=1&y=2)", text)
        subject, html, _ = services.preview(campaign, bob)
        self.assertEqual(subject, "Hi there")
        self.assertIn("Hello there from !", html)  # no city: empty, never an error
        # Contact data is escaped in HTML, and control characters never reach a header.
        ann.name = "<b>Ann</b>\r\nBcc: x@evil.test"
        subject, html, _ = services.preview(campaign, ann)
        self.assertNotIn("<b>Ann", html)
        self.assertNotIn("\n", subject)


class CampaignAPITest(CampaignTestCase):
    def payload(self, **extra):
        return {"name": "Spring", "subject": "Hi {{ contact.name }}", "from": "Shop <news@mail-a.test>",
                "html": TEMPLATE_HTML, "lists": [self.list.pk], "tag": "spring", **extra}

    def test_create_start_and_the_api_names(self):
        response = self.api(self.marketer_key).post(URL, self.payload(rate_per_hour=600, track_opens=True),
                                                    format="json")
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        for name in ("id", "name", "subject", "from", "reply_to", "html", "text", "lists", "pool", "send_at",
                     "rate_per_hour", "finish_by", "track_opens", "track_clicks", "tag", "state"):
            self.assertIn(name, body)
        self.assertEqual((body["state"], body["from"], body["lists"]), ("draft", "Shop <news@mail-a.test>",
                                                                         [self.list.pk]))
        detail = f"{URL}{body['id']}/"
        self.assertEqual(self.api(self.marketer_key).patch(detail, {"name": "Spring sale"}, format="json").status_code,
                         200)
        with self.captureOnCommitCallbacks(execute=True):
            response = self.api(self.marketer_key).post(f"{detail}start/")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["state"], "scheduled")
        drain("default")
        stats = self.api(self.marketer_key).get(f"{detail}stats/").json()
        for name in ("recipients", "queued", "sent", "delivered", "deferred", "bounced", "complained", "unsubscribed",
                     "opened", "clicked", "eta"):
            self.assertIn(name, stats)
        self.assertEqual((stats["state"], stats["recipients"], stats["queued"], stats["waiting"]),
                         ("sending", 3, 3, 3))
        # Content is frozen once started (pacing may change while paused only).
        response = self.api(self.marketer_key).patch(detail, {"subject": "changed"}, format="json")
        self.assertEqual(response.status_code, 409)
        # Pause, resume, cancel: each audited; a wrong order is a 409.
        self.assertEqual(self.api(self.marketer_key).post(f"{detail}resume/").status_code, 409)
        self.assertEqual(self.api(self.marketer_key).post(f"{detail}pause/").json()["state"], "paused")
        self.assertEqual(self.api(self.marketer_key).patch(detail, {"rate_per_hour": 100}, format="json").status_code,
                         200)
        self.assertEqual(self.api(self.marketer_key).post(f"{detail}resume/").json()["state"], "sending")
        with self.captureOnCommitCallbacks(execute=True):
            self.assertEqual(self.api(self.marketer_key).post(f"{detail}cancel/").json()["state"], "cancelled")
        drain("default")
        campaign = Campaign.objects.get(uuid=body["id"])
        actions = list(AuditEntry.objects.filter(object_id=str(campaign.pk)).values_list("action", flat=True))
        for verb in ("create", "campaign.start", "campaign.fanout", "campaign.pause", "campaign.resume",
                     "campaign.cancel"):
            self.assertIn(verb, actions)
        self.assertEqual(set(Message.objects.filter(content__campaign=campaign).values_list("status", flat=True)),
                         {MessageStatus.CANCELLED})

    def test_field_errors(self):
        cases = [
            ({"from": "Shop <news@elsewhere.test>"}, "from"),
            ({"html": "{{ ''.__class__ }}"}, "html"),
            ({"subject": "Hi\r\nBcc: x@evil.test"}, "subject"),
            ({"rate_per_hour": 10, "finish_by": (timezone.now() + datetime.timedelta(hours=2)).isoformat()},
             "rate_per_hour"),
            ({"lists": [999999]}, "lists"),
            ({"pool": "nope"}, "pool"),
            ({"html": "", "text": ""}, "html"),
        ]
        for change, field in cases:
            with self.subTest(field=field):
                response = self.api(self.marketer_key).post(URL, self.payload(**change), format="json")
                self.assertEqual(response.status_code, 400, response.content)
                self.assertIn(field, response.json()["error"]["fields"])
        self.assertFalse(Campaign.objects.exists())

    def test_preview_and_test_send(self):
        campaign = make_campaign(self.tenant_a, self.list)
        ann = Contact.objects.get(email="ann@example.com")
        detail = f"{URL}{campaign.uuid}/"
        preview = self.api(self.marketer_key).get(f"{detail}preview/", {"contact": ann.pk}).json()
        self.assertEqual(preview["subject"], "Hi Ann")
        response = self.api(self.marketer_key).post(f"{detail}test-send/", {"to": ["me@example.com"],
                                                                            "contact": ann.pk}, format="json")
        self.assertEqual(response.status_code, 202, response.content)
        [message] = Message.objects.filter(content__campaign=campaign)
        self.assertTrue(message.content.is_test)
        self.assertEqual((message.rcpt_to, message.contact, message.tag), ("me@example.com", ann, "test"))
        too_many = {"to": [f"t{i}@example.com" for i in range(6)]}
        self.assertEqual(self.api(self.marketer_key).post(f"{detail}test-send/", too_many, format="json").status_code,
                         400)
        # Test sends are not the campaign's figures.
        self.assertEqual(self.api(self.marketer_key).get(f"{detail}stats/").json()["recipients"], 0)

    def test_tenancy_and_roles(self):
        campaign = make_campaign(self.tenant_a, self.list)
        contact = Contact.objects.get(email="ann@example.com")
        for url in (f"{URL}{campaign.uuid}/", f"/api/v1/lists/{self.list.pk}/", f"/api/v1/contacts/{contact.pk}/"):
            with self.subTest(url=url):
                self.assertEqual(self.api(self.charlie_key).get(url).status_code, 404)
                self.assertEqual(self.api(self.bob_key).get(url).status_code, 200)
                self.assertEqual(self.api(self.bob_key).delete(url).status_code, 403)
        self.assertEqual(self.api(self.charlie_key).post(f"{URL}{campaign.uuid}/start/").status_code, 404)
        self.assertEqual(self.api(self.bob_key).post(f"{URL}{campaign.uuid}/start/").status_code, 403)
        self.assertEqual(self.api(self.bob_key).post(URL, self.payload(), format="json").status_code, 403)
        # Another tenant's list cannot be chosen.
        theirs = make_list(self.tenant_b, "Theirs")
        response = self.api(self.marketer_key).post(URL, self.payload(lists=[theirs.pk]), format="json")
        self.assertEqual(response.status_code, 400)
        # A marketer runs campaigns but does not change infrastructure.
        self.assertEqual(self.api(self.marketer_key).post(URL, self.payload(), format="json").status_code, 201)
        route = {"pattern": "*", "host": "relay.example.com", "port": 25}
        self.assertEqual(self.api(self.marketer_key).post("/api/v1/routes/", route, format="json").status_code, 403)
        self.assertEqual(self.api(self.marketer_key).post("/api/v1/domains/", {"name": "x.test"},
                                                          format="json").status_code, 403)
        # Contacts: search and create.
        found = self.api(self.marketer_key).get("/api/v1/contacts/", {"email": "ann@"}).json()
        self.assertEqual([c["email"] for c in found["results"]], ["ann@example.com"])
        self.assertEqual(found["results"][0]["lists"][0]["status"], "subscribed")
        new = {"email": "Dora@Example.com", "name": "Dora", "attributes": {"city": "Oslo"},
               "lists": [{"id": self.list.pk, "status": "subscribed"}]}
        response = self.api(self.marketer_key).post("/api/v1/contacts/", new, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["email"], "dora@example.com")
        self.assertEqual(self.api(self.marketer_key).post("/api/v1/contacts/", new, format="json").status_code, 400)


class FanOutTest(CampaignTestCase):
    def test_recipients_deduplicated_minus_suppressed_one_content_marketing_priority(self):
        other = make_list(self.tenant_a, "Others", ["ann@example.com", "dave@example.com"])
        Suppression.objects.create(tenant=self.tenant_a, address="carol@example.net", reason="manual")
        unsubscribed = make_list(self.tenant_a, "Gone", ["erin@example.com"])
        Subscription.objects.filter(contact_list=unsubscribed).update(status=SubscriptionStatus.UNSUBSCRIBED)
        campaign = make_campaign(self.tenant_a, self.list)
        campaign.lists.add(other, unsubscribed)
        campaign = started(campaign)
        self.assertEqual(campaign.state, CampaignState.SENDING)
        messages = Message.objects.filter(content__campaign=campaign)
        self.assertEqual(sorted(messages.values_list("rcpt_to", flat=True)),
                         ["ann@example.com", "bob@example.org", "dave@example.com"])
        self.assertEqual(campaign.recipients, 3)
        self.assertEqual(MessageContent.objects.filter(campaign=campaign).count(), 1)
        for message in messages:
            self.assertEqual(message.priority, MessagePriority.MARKETING)
            self.assertEqual(message.contact.email, message.rcpt_to)
            self.assertEqual(Message.uuid_from_verp(message.mail_from), message.uuid)
            self.assertEqual(message.uuid.version, 7)  # time-ordered (fan-out.py)
            self.assertEqual(message.rcpt_domain, message.rcpt_to.rpartition("@")[2])
            self.assertFalse(message.events.exists())  # intake is the campaign's audit entry, not 1M events
        self.assertEqual(len(set(messages.values_list("uuid", flat=True))), 3)
        # A second fan-out run changes nothing.
        self.assertEqual(fanout.fan_out(campaign.pk), 0)
        self.assertEqual(messages.count(), 3)


class GateTest(CampaignTestCase):
    def big_list(self, count=5000, domain="gmail.com"):
        contact_list = make_list(self.tenant_a, f"Big {domain}")
        now = timezone.now()
        contacts = Contact.objects.bulk_create([
            Contact(tenant=self.tenant_a, email=f"user{i}@{domain}", domain=domain, created=now, last_updated=now)
            for i in range(count)])
        Subscription.objects.bulk_create([Subscription(contact=c, contact_list=contact_list) for c in contacts])
        return contact_list

    def test_an_unaligned_domain_cannot_start_a_5000_gmail_campaign(self):
        campaign = make_campaign(self.tenant_a, self.big_list())
        response = self.api(self.marketer_key).post(f"{URL}{campaign.uuid}/start/")
        self.assertEqual(response.status_code, 409, response.content)
        message = response.json()["error"]["message"]
        for what in ("SPF of mail-a.test", "DKIM of mail-a.test", "DMARC of mail-a.test", "DMARC alignment",
                     "DELIVERYHUB_PUBLIC_URL"):
            self.assertIn(what, message)
        campaign.refresh_from_db()
        self.assertEqual(campaign.state, CampaignState.DRAFT)
        self.assertFalse(Message.objects.exists())
        self.assertTrue(campaign.gate_report["enforced"])
        # Fixed: SPF, DKIM, DMARC and alignment verified, an https public URL.
        verified(self.domain)
        DnsCheck.objects.filter(domain=self.domain, kind=RecordKind.ALIGNMENT).update(
            status=DNSCheckStatus.MISMATCH, explanation="The From domain is not aligned with the DKIM d= domain.")
        response = self.api(self.marketer_key).post(f"{URL}{campaign.uuid}/start/")
        self.assertEqual(response.status_code, 409)
        self.assertIn("not aligned", response.json()["error"]["message"])
        DnsCheck.objects.filter(domain=self.domain).update(status=DNSCheckStatus.OK)
        with override_settings(PUBLIC_URL="https://mail.example.com"):
            response = self.api(self.marketer_key).post(f"{URL}{campaign.uuid}/start/")
        self.assertEqual(response.status_code, 200, response.content)

    def test_below_the_threshold_it_warns(self):
        campaign = make_campaign(self.tenant_a, self.big_list(4999))
        campaign = services.start_campaign(campaign)
        self.assertEqual(campaign.state, CampaignState.SCHEDULED)
        self.assertFalse(campaign.gate_report["enforced"])
        self.assertTrue(campaign.gate_report["problems"])


class UnsubscribeTest(CampaignTestCase):
    def setUp(self):
        super().setUp()
        self.campaign = started(make_campaign(self.tenant_a, self.list, unsubscribe_suppresses=False))
        self.message = Message.objects.get(content__campaign=self.campaign, rcpt_to="ann@example.com")
        self.token = tokens.message_token(self.message.uuid)
        self.client = Client(enforce_csrf_checks=True)

    def test_get_changes_nothing_post_unsubscribes_next_campaign_skips(self):
        page = self.client.get(f"/u/{self.token}")
        self.assertEqual(page.status_code, 200)
        self.assertContains(page, "ann@example.com")
        self.assertEqual(Subscription.objects.get(contact__email="ann@example.com").status, "subscribed")
        response = self.client.post(f"/u/{self.token}", {"List-Unsubscribe": "One-Click"})
        self.assertEqual(response.status_code, 200)  # no redirect, no CSRF token needed
        self.assertEqual(Subscription.objects.get(contact__email="ann@example.com").status, "unsubscribed")
        self.assertEqual(self.message.events.filter(kind=EventKind.UNSUBSCRIBED).count(), 1)
        self.assertEqual(self.client.post(f"/u/{self.token}", {"List-Unsubscribe": "One-Click"}).status_code, 200)
        self.assertEqual(self.message.events.filter(kind=EventKind.UNSUBSCRIBED).count(), 1)  # idempotent
        self.assertFalse(Suppression.objects.exists())  # the marketer did not choose to suppress
        self.assertTrue(AuditEntry.objects.filter(action="contact.unsubscribe").exists())
        self.assertEqual(services.campaign_message(self.message.uuid) and
                         self.api(self.marketer_key).get(f"{URL}{self.campaign.uuid}/stats/").json()["unsubscribed"], 1)
        follow = started(make_campaign(self.tenant_a, self.list, name="Next"))
        self.assertEqual(sorted(Message.objects.filter(content__campaign=follow).values_list("rcpt_to", flat=True)),
                         ["bob@example.org", "carol@example.net"])

    def test_tampered_token_or_missing_body_changes_nothing(self):
        middle = len(self.token) // 2
        tampered = self.token[:middle] + ("a" if self.token[middle] != "a" else "b") + self.token[middle + 1 :]
        padding = self.token[:-1] + ("b" if self.token[-1] == "a" else chr(ord(self.token[-1]) ^ 1))
        self.assertEqual(self.client.get(f"/u/{padding}").status_code, 404)  # another spelling of the same bytes
        self.assertEqual(self.client.post(f"/u/{tampered}", {"List-Unsubscribe": "One-Click"}).status_code, 404)
        self.assertEqual(self.client.get(f"/u/{tampered}").status_code, 404)
        self.assertEqual(self.client.post("/u/garbage", {"List-Unsubscribe": "One-Click"}).status_code, 404)
        self.assertEqual(self.client.post(f"/u/{self.token}", {}).status_code, 400)
        self.assertEqual(Subscription.objects.filter(status="unsubscribed").count(), 0)

    def test_suppression_when_the_marketer_chose_so(self):
        Campaign.objects.filter(pk=self.campaign.pk).update(unsubscribe_suppresses=True)
        self.client.post(f"/u/{self.token}", {"List-Unsubscribe": "One-Click"})
        suppression = Suppression.objects.get(address="ann@example.com")
        self.assertEqual((suppression.reason, suppression.campaign_id, suppression.message_id),
                         ("unsubscribe", self.campaign.pk, self.message.pk))

    def test_tracking_open_pixel_privacy_proxy_and_signed_clicks(self):
        Campaign.objects.filter(pk=self.campaign.pk).update(track_opens=True, track_clicks=True)
        self.assertEqual(self.client.get(f"/t/o/{self.token}.gif", REMOTE_ADDR="203.0.113.9").status_code, 200)
        self.client.get(f"/t/o/{self.token}.gif", REMOTE_ADDR="17.58.1.2")  # Apple Mail Privacy Protection
        url = "https://shop.example/sale?x=1&y=2"
        signature = tokens.click_signature(self.token, url)
        response = self.client.get(f"/t/c/{self.token}/{signature}", {"u": url})
        self.assertEqual((response.status_code, response["Location"]), (302, url))
        self.assertEqual(self.client.get(f"/t/c/{self.token}/{signature}", {"u": "https://evil.test/"}).status_code,
                         404)  # no open redirect
        stats = self.api(self.marketer_key).get(f"{URL}{self.campaign.uuid}/stats/").json()
        self.assertEqual((stats["opened"], stats["opened_by_proxy"], stats["clicked"]), (1, 1, 1))


class PacingTest(CampaignTestCase):
    def setUp(self):
        super().setUp()
        now = timezone.now()
        contacts = Contact.objects.bulk_create([
            Contact(tenant=self.tenant_a, email=f"p{i}@example.com", domain="example.com", created=now,
                    last_updated=now) for i in range(400)])
        Subscription.objects.bulk_create([Subscription(contact=c, contact_list=self.list) for c in contacts])

    def test_rate_per_hour_on_a_controlled_clock(self):
        campaign = started(make_campaign(self.tenant_a, self.list, rate_per_hour=3600))  # one a second
        t0 = campaign.pace_checked
        per_minute = []
        for minute in range(3):
            released = 0
            for second in range(1, 61, 2):  # the scheduler every 2 s
                released += pacing.release(t0 + datetime.timedelta(seconds=60 * minute + second))
            per_minute.append(released)
        for count in per_minute:
            self.assertLessEqual(abs(count - 60), 2, per_minute)
        # A gap (the scheduler was down) is not caught up in a burst.
        later = t0 + datetime.timedelta(minutes=30)
        self.assertLessEqual(pacing.release(later), 2)
        # Released rows are due at once; the others stay unreleased.
        due = Message.objects.filter(content__campaign=campaign).exclude(next_attempt_at=fanout.UNRELEASED)
        self.assertEqual(due.count(), sum(per_minute) + Campaign.objects.get(pk=campaign.pk).released - sum(per_minute))

    def test_finish_by_spreads_to_end_on_time(self):
        start = timezone.now()
        campaign = started(make_campaign(self.tenant_a, self.list, finish_by=start + datetime.timedelta(minutes=20)))
        total, t, last = campaign.recipients, campaign.pace_checked, None
        while t < start + datetime.timedelta(minutes=25):
            t += datetime.timedelta(seconds=2)
            if pacing.release(t):
                last = t
        self.assertEqual(Campaign.objects.get(pk=campaign.pk).released, total)
        end = start + datetime.timedelta(minutes=20)
        self.assertLessEqual(abs((last - end).total_seconds()), 0.02 * 20 * 60, last)

    def test_paused_and_cancelled_campaigns_are_halted(self):
        campaign = started(make_campaign(self.tenant_a, self.list))
        content = fanout.campaign_content(campaign)
        self.assertNotIn(content.pk, pacing.halted_contents())
        services.pause_campaign(campaign)
        self.assertIn(content.pk, pacing.halted_contents())
        self.assertEqual(pacing.release(timezone.now() + datetime.timedelta(minutes=5)), 0)


class MonitorTest(CampaignTestCase):
    def test_complaints_pause_the_campaign_and_resend_targets_exactly_the_failed(self):
        campaign = started(make_campaign(self.tenant_a, self.list))
        messages = list(Message.objects.filter(content__campaign=campaign).order_by("rcpt_to"))
        now = timezone.now()
        Message.objects.filter(pk=messages[0].pk).update(status=MessageStatus.DELIVERED, delivered_at=now)
        Message.objects.filter(pk=messages[1].pk).update(status=MessageStatus.DEFERRED, attempts=1)
        Message.objects.filter(pk=messages[2].pk).update(status=MessageStatus.BOUNCED, attempts=1)
        self.assertEqual(services.pause_on_complaints(), 0)
        for _ in range(4):
            MessageEvent.objects.create(message=messages[0], kind=EventKind.COMPLAINED)
        with mock.patch.object(services, "COMPLAINT_WINDOW", 1000):
            self.assertEqual(services.pause_on_complaints(), 0)  # 1 distinct complaint out of 1,000: 0.1%
        Contact.objects.filter(email=messages[0].rcpt_to)
        with mock.patch.object(services, "COMPLAINT_WINDOW", 1):
            self.assertEqual(services.pause_on_complaints(), 1)
        campaign.refresh_from_db()
        self.assertEqual(campaign.state, CampaignState.PAUSED)
        self.assertIn("complaints", campaign.state_detail)
        self.assertTrue(AuditEntry.objects.filter(action="campaign.auto_pause", object_id=str(campaign.pk)).exists())
        # Resend: a follow-up of exactly the deferred and bounced recipients; the parent's deferred one is cancelled.
        follow_up = services.resend_campaign(campaign)
        follow_up = started(follow_up)
        self.assertEqual(sorted(Message.objects.filter(content__campaign=follow_up).values_list("rcpt_to", flat=True)),
                         sorted([messages[1].rcpt_to, messages[2].rcpt_to]))
        self.assertEqual(Message.objects.get(pk=messages[1].pk).status, MessageStatus.CANCELLED)

    def test_finished_campaign_becomes_sent(self):
        campaign = started(make_campaign(self.tenant_a, self.list))
        self.assertEqual(services.finish_sent(), 0)
        Message.objects.filter(content__campaign=campaign).update(status=MessageStatus.DELIVERED)
        self.assertEqual(services.finish_sent(), 1)
        self.assertEqual(Campaign.objects.get(pk=campaign.pk).state, CampaignState.SENT)

    def test_rendered_message_has_signed_one_click_headers(self):
        campaign = started(make_campaign(self.tenant_a, self.list, track_clicks=True))
        message = Message.objects.get(content__campaign=campaign, rcpt_to="ann@example.com")
        compiled = rendering.compile_campaign(campaign, is_test=False)
        data = rendering.render_message(compiled, message_uuid=message.uuid, rcpt_to=message.rcpt_to,
                                        contact=message.contact.template_context(), now=timezone.now())
        token = tokens.message_token(message.uuid)
        self.assertIn(f"List-Unsubscribe: <http://127.0.0.1:8000/u/{token}>, "
                      f"<mailto:u-{token}@bounces.mail-a.test>".encode(), data)
        self.assertIn(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", data)
        self.assertIn(b"/t/c/" + token.encode(), data)
        self.assertNotIn(b"\n", data.replace(b"\r\n", b""))
