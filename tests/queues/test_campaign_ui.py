"""Campaign pages: every page renders for a marketer, writes go through forms, viewers read only, another tenant's
objects are 404s, the progress fragments poll while work runs and stop when it is done."""

from django.test import Client

from deliveryhub.jobs import get_queue
from deliveryhub.testing.cases import TenantTestCase, login_verified
from queues.campaigns import fanout
from queues.choices import CampaignState
from queues.models import Campaign, Contact, ContactImport, Suppression
from queues.testing import make_sending_domain

from .campaign_helpers import TEMPLATE_HTML, drain, make_campaign, make_list, make_marketer, upload


class CampaignPagesTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.marketer = make_marketer("mara@a.test", cls.tenant_a)

    def setUp(self):
        get_queue("default").connection.flushdb()
        self.list = make_list(self.tenant_a, "Customers", [("ann@example.com", "Ann", {"city": "Lyon"})])
        self.client = Client()
        self.client.force_login(self.marketer)

    def test_the_marketers_path(self):
        self.assertContains(self.client.get("/campaigns/"), "No campaigns yet")
        response = self.client.post("/campaigns/lists/", {"name": "Fans", "description": "", "opt_in": "single"})
        self.assertEqual(response.status_code, 302)
        fans = self.list.__class__.objects.get(name="Fans")
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(f"/campaigns/lists/{fans.pk}/import/", {
                "file": upload("email,name,city\nzed@example.com,Zed,Oslo\nbroken,,\n"), "mode": "add",
                "email_column": "email", "mapping": ""})
        imp = ContactImport.objects.get()
        self.assertRedirects(response, f"/campaigns/imports/{imp.uuid}/")
        self.assertContains(self.client.get(f"/campaigns/imports/{imp.uuid}/"), 'hx-trigger="every 2s"')
        drain()
        fragment = self.client.get(f"/campaigns/imports/{imp.uuid}/progress/")
        self.assertContains(fragment, "Completed")
        self.assertNotContains(fragment, "hx-trigger")  # finished: the polling stops
        self.assertContains(fragment, "Validation report (1)")
        self.assertContains(self.client.get(f"/campaigns/imports/{imp.uuid}/report/"), "broken")
        self.assertContains(self.client.get(f"/campaigns/lists/{fans.pk}/"), "zed@example.com")
        self.assertEqual(self.client.get(f"/campaigns/lists/{fans.pk}/export/").status_code, 200)
        form = {"name": "Hello", "subject": "Hi {{ contact.name }}", "from_header": "Shop <news@mail-a.test>",
                "html": TEMPLATE_HTML, "lists": [fans.pk]}
        response = self.client.post("/campaigns/new/", form)
        campaign = Campaign.objects.get(name="Hello")
        self.assertRedirects(response, f"/campaigns/{campaign.uuid}/")
        page = self.client.get(f"/campaigns/{campaign.uuid}/")
        self.assertContains(page, "Would go to <strong>1</strong> recipient")
        preview = self.client.get(f"/campaigns/{campaign.uuid}/preview/", {"contact": "zed@example.com"})
        self.assertContains(preview, "Hi Zed")
        self.assertContains(preview, "Hello Zed from Oslo!")
        response = self.client.post(f"/campaigns/{campaign.uuid}/test-send/", {"to": "me@example.com"})
        self.assertRedirects(response, f"/campaigns/{campaign.uuid}/")
        with self.captureOnCommitCallbacks(execute=True):
            self.client.post(f"/campaigns/{campaign.uuid}/start/")
        drain("default")
        campaign.refresh_from_db()
        self.assertEqual(campaign.state, CampaignState.SENDING)
        progress = self.client.get(f"/campaigns/{campaign.uuid}/progress/")
        self.assertContains(progress, 'data-stat="recipients">1<')
        self.assertContains(progress, "hx-trigger")
        self.assertEqual(self.client.get(f"/campaigns/{campaign.uuid}/chart/").json(), {"per_minute": []})
        self.client.post(f"/campaigns/{campaign.uuid}/pause/")
        self.assertContains(self.client.get(f"/campaigns/{campaign.uuid}/"), "Resume")
        # Bad input: a field error on the form, nothing saved.
        response = self.client.post("/campaigns/new/", {**form, "name": "Bad", "html": "{{ ''.__class__ }}"})
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "Not allowed", status_code=400)
        self.assertFalse(Campaign.objects.filter(name="Bad").exists())

    def test_contacts_and_the_suppression_centre(self):
        self.assertContains(self.client.get("/campaigns/contacts/", {"email": "ann"}), "ann@example.com")
        ann = Contact.objects.get(email="ann@example.com")
        self.assertContains(self.client.get(f"/campaigns/contacts/{ann.pk}/"), "Lyon")
        self.client.post(f"/campaigns/contacts/{ann.pk}/", {"list": self.list.pk, "status": "unsubscribed"})
        self.assertEqual(ann.subscriptions.get().status, "unsubscribed")
        self.client.post("/campaigns/suppressions/add/", {"addresses": "x@example.com\nY@Example.com",
                                                          "reason": "manual"})
        self.assertEqual(sorted(Suppression.objects.values_list("address", flat=True)),
                         ["x@example.com", "y@example.com"])
        page = self.client.get("/campaigns/suppressions/")
        self.assertContains(page, "y@example.com")
        self.assertNotContains(page, ">Remove<")  # a marketer adds; removing is for admins
        self.assertEqual(self.client.get("/campaigns/suppressions/export/").status_code, 403)  # marketers: no export
        admin = Client()
        login_verified(admin, self.alice)  # admins use the panel with a second factor
        export = admin.get("/campaigns/suppressions/export/")
        self.assertIn(b"x@example.com", b"".join(export.streaming_content))
        suppression = Suppression.objects.get(address="x@example.com")
        self.assertEqual(self.client.post(f"/campaigns/suppressions/{suppression.pk}/delete/").status_code, 403)

    def test_viewers_read_and_other_tenants_see_nothing(self):
        campaign = make_campaign(self.tenant_a, self.list)
        viewer = Client()
        viewer.force_login(self.bob)
        self.assertEqual(viewer.get(f"/campaigns/{campaign.uuid}/").status_code, 200)
        self.assertEqual(viewer.post(f"/campaigns/{campaign.uuid}/start/").status_code, 403)
        self.assertEqual(viewer.post("/campaigns/lists/", {"name": "x", "opt_in": "single"}).status_code, 403)
        self.assertNotContains(viewer.get(f"/campaigns/{campaign.uuid}/"), "Start sending")
        other = Client()
        login_verified(other, self.charlie)
        for url in (f"/campaigns/{campaign.uuid}/", f"/campaigns/lists/{self.list.pk}/",
                    f"/campaigns/{campaign.uuid}/preview/"):
            self.assertEqual(other.get(url).status_code, 404, url)
        self.assertEqual(fanout.campaign_content(campaign), None)
