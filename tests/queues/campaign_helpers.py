"""Shared set-up of the campaign tests: a marketer, lists of contacts, CSV uploads, the default queue drained."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rq import SimpleWorker

from deliveryhub.choices import JobStatus, Role
from deliveryhub.jobs import get_queue
from deliveryhub.testing.cases import make_user
from queues.campaigns import contacts as contact_services
from queues.campaigns import services
from queues.choices import SubscriptionStatus
from queues.models import Contact, ContactList, Subscription

TEMPLATE_HTML = "<p>Hello {{ contact.name | default('there') }} from {{ contact.attributes.city }}!</p>" \
    '<p><a href="https://shop.example/sale?x=1&amp;y=2">Sale</a> <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'


def upload(text, name="contacts.csv", encoding="utf-8"):
    return SimpleUploadedFile(name, text.encode(encoding), content_type="text/csv")


def make_marketer(email, tenant):
    return make_user(email, tenant, Role.MARKETER)


def make_list(tenant, name="Newsletter", emails=(), **attributes):
    """A list with subscribed contacts (`emails`: addresses, or (address, name, attributes) tuples)."""
    contact_list = ContactList.objects.create(tenant=tenant, name=name)
    for item in emails:
        address, name_, attrs = (item, "", {}) if isinstance(item, str) else item
        contact = Contact.objects.filter(tenant=tenant, email=address).first()
        if contact is None:
            contact = contact_services.create_contact(tenant, email=address, name=name_, attributes=attrs)
        Subscription.objects.create(contact=contact, contact_list=contact_list, status=SubscriptionStatus.SUBSCRIBED)
    return contact_list


def make_campaign(tenant, contact_list, *, sender="Shop <news@mail-a.test>", **fields):
    fields.setdefault("name", "Spring sale")
    fields.setdefault("subject", "Hi {{ contact.name | default('there') }}")
    fields.setdefault("html", TEMPLATE_HTML)
    return services.create_campaign(tenant, from_header=sender, lists=[contact_list], **fields)


def drain(*names):
    """Run the queues' jobs with a real in-process RQ worker until they are empty."""
    queues = [get_queue(name) for name in names or ("default", "low")]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True)


def job_finished(imp):
    imp.refresh_from_db()
    imp.job.refresh_from_db()
    return imp.job.status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.ERRORED)


def is_postgres():
    return connection.vendor == "postgresql"
