"""Panel pages: webhooks (list, create with the secret shown once, edit, test event, rotation, delivery log,
redelivery), the event stream, feedback-loop reports, SMTP credentials (password shown once, rotate, revoke) and a
domain's DMARC aggregate reports ("who sends as you"). All through the generic views: `for_request()`, roles, OTP for
changes, audit by the models and services."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone

from deliveryhub.choices import Action
from deliveryhub.generic_views import ObjectDeleteView, ObjectEditView, ObjectListView, ObjectVerbView, PanelView
from domains.models import DmarcRecord, DmarcReport, SendingDomain

from .. import services as queue_services
from ..models import FeedbackReport, SmtpCredential, StreamEntry, Webhook, WebhookDelivery
from . import services, stream
from .filtersets import EventFilterSet, FeedbackReportFilterSet, SmtpCredentialFilterSet, WebhookFilterSet
from .forms import SmtpCredentialForm, WebhookForm
from .tables import EventTable, FeedbackReportTable, SmtpCredentialTable, WebhookTable

NAV = "queues/_nav.html"
DELIVERY_LOG_ROWS = 50
DMARC_DAYS = 30


# -- webhooks ----------------------------------------------------------------------------------------------------------


class WebhookListView(ObjectListView):
    model = Webhook
    table_class = WebhookTable
    filterset_class = WebhookFilterSet
    title = "Webhooks"
    nav_template = NAV
    nav_active = "webhooks"
    add_url_name = "webhook-add"
    description = (
        "Endpoints that receive this tenant's message events in signed batches (Standard Webhooks). A failing "
        "endpoint is retried with backoff for a day, then disabled; its events wait in the database."
    )
    empty_text = "No webhooks yet."


class WebhookEditView(ObjectEditView):
    model = Webhook
    form_class = WebhookForm
    nav_template = NAV
    nav_active = "webhooks"
    list_url_name = "webhook-list"
    secret = None

    def save(self, request, form):
        data = {name: form.cleaned_data[name] for name in services.EDITABLE}
        if form.instance.pk is None:
            self.created, self.secret = services.create_webhook(request.tenant, acting_user=request.user, **data)
            return self.created
        return services.update_webhook(Webhook.objects.get(pk=form.instance.pk), acting_user=request.user, **data)

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        if self.secret:  # created: the secret once, on this page (not in a redirect's URL)
            return secret_page(request, self.created, self.secret, "created")
        return response


def secret_page(request, webhook, secret, what):
    return render(request, "queues/webhook_secret.html", {"webhook": webhook, "secret": secret, "what": what})


class WebhookDetailView(PanelView):
    model = Webhook
    lookup_url_kwarg = "pk"

    def get(self, request, pk):
        webhook = get_object_or_404(self.get_queryset(request), pk=pk)
        deliveries = WebhookDelivery.objects.filter(webhook=webhook)[:DELIVERY_LOG_ROWS]
        waiting = StreamEntry.objects.filter(tenant_id=webhook.tenant_id, position__gt=webhook.cursor)
        return render(request, "queues/webhook_detail.html", {
            "webhook": webhook, "deliveries": deliveries, "may_change": self.may(request, Action.CHANGE),
            "may_delete": self.may(request, Action.DELETE), "waiting": waiting.count() if webhook.cursor else None,
            "head": stream.head(),
        })  # fmt: skip


class WebhookTestView(ObjectVerbView):
    model = Webhook

    def perform(self, request, obj):
        services.send_test_event(obj, acting_user=request.user)
        return "A test event is on its way: it appears in the delivery log below within seconds."


class WebhookRotateView(ObjectVerbView):
    model = Webhook
    sudo = True

    def post(self, request, pk):
        webhook = get_object_or_404(self.get_queryset(request), pk=pk)
        return secret_page(request, webhook, services.rotate_secret(webhook, acting_user=request.user), "rotated")


class WebhookRedeliverView(ObjectVerbView):
    model = Webhook
    lookup_url_kwarg = "pk"

    def post(self, request, pk, delivery_id):
        self.delivery = get_object_or_404(WebhookDelivery, webhook__in=self.get_queryset(request), webhook_id=pk,
                                          pk=delivery_id)  # fmt: skip
        return super().post(request, pk=pk)

    def perform(self, request, obj):
        services.redeliver(self.delivery, acting_user=request.user)
        return "Sent again in the background: the new delivery appears in the log below."


class WebhookDeleteView(ObjectDeleteView):
    model = Webhook
    list_url_name = "webhook-list"


# -- events and feedback reports ---------------------------------------------------------------------------------------


class EventListView(ObjectListView):
    model = StreamEntry
    table_class = EventTable
    filterset_class = EventFilterSet
    title = "Events"
    nav_template = NAV
    nav_active = "events"
    description = (
        "Every event of the tenant's messages in the order it was recorded: what the events API "
        "(GET /api/v1/events/) and webhooks deliver."
    )
    empty_text = "No events yet."

    def narrow(self, queryset):
        return queryset.select_related("event", "message").order_by("-position")


class FeedbackReportListView(ObjectListView):
    model = FeedbackReport
    table_class = FeedbackReportTable
    filterset_class = FeedbackReportFilterSet
    title = "Feedback-loop reports"
    nav_template = NAV
    nav_active = "feedback"
    description = (
        "Complaints receivers sent to a domain's feedback-loop address (by default fbl@<return-path host>). A matched "
        "report suppressed its recipient; unmatched ones are kept here."
    )
    empty_text = "No feedback-loop reports."

    def narrow(self, queryset):
        return queryset.select_related("sending_domain", "message").defer("raw")


# -- SMTP credentials --------------------------------------------------------------------------------------------------


class SmtpCredentialListView(ObjectListView):
    model = SmtpCredential
    table_class = SmtpCredentialTable
    filterset_class = SmtpCredentialFilterSet
    title = "SMTP credentials"
    nav_template = NAV
    nav_active = "smtp"
    add_url_name = "smtp-credential-add"
    description = (
        "Logins for SMTP submission (STARTTLS, then AUTH PLAIN or LOGIN). The password is generated and shown once; "
        "DeliveryHub keeps only a digest of it."
    )
    empty_text = "No SMTP credentials."

    def extra_context(self, request):
        return {"submission": f"{settings.SMTPD_HOSTNAME}:{settings.SMTPD_PORT}"}


class SmtpCredentialEditView(ObjectEditView):
    model = SmtpCredential
    form_class = SmtpCredentialForm
    nav_template = NAV
    nav_active = "smtp"
    list_url_name = "smtp-credential-list"
    noun = "SMTP credential"
    password = None

    def save(self, request, form):
        data = form.cleaned_data
        if form.instance.pk is None:
            self.created, self.password = queue_services.create_smtp_credential(
                request.tenant, data["username"], description=data["description"],
                allowed_from_domains=data["allowed_from_domains"], allowed_networks=data["allowed_networks"],
                acting_user=request.user,
            )  # fmt: skip
            return self.created
        credential = SmtpCredential.objects.get(pk=form.instance.pk)
        credential.description = data["description"]
        credential.allowed_from_domains, credential.allowed_networks = (data["allowed_from_domains"],
                                                                        data["allowed_networks"])  # fmt: skip
        credential.full_clean(exclude=["tenant", "password_digest"])
        credential.save()
        return credential

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        if self.password:  # created: the password once, on this page
            return password_page(request, self.created, self.password, "created")
        return response

    def success_url(self, obj):
        return reverse("smtp-credential-list")

    def cancel_url(self, instance):
        return reverse("smtp-credential-list")


def password_page(request, credential, password, what):
    return render(request, "queues/smtp_credential_password.html", {
        "credential": credential, "password": password, "what": what,
        "submission": f"{settings.SMTPD_HOSTNAME}:{settings.SMTPD_PORT}",
    })  # fmt: skip


class SmtpCredentialRotateView(ObjectVerbView):
    model = SmtpCredential
    sudo = True

    def post(self, request, pk):
        credential = get_object_or_404(self.get_queryset(request), pk=pk)
        password = queue_services.rotate_smtp_credential(credential, acting_user=request.user)
        return password_page(request, credential, password, "rotated")


class SmtpCredentialRevokeView(ObjectVerbView):
    model = SmtpCredential
    action = Action.DELETE

    def perform(self, request, obj):
        queue_services.revoke_smtp_credential(obj, acting_user=request.user)
        return f"{obj} revoked: it can no longer log in."

    def success_url(self, obj):
        return reverse("smtp-credential-list")

    failure_url = success_url


class SmtpCredentialDeleteView(ObjectDeleteView):
    model = SmtpCredential
    list_url_name = "smtp-credential-list"


# -- DMARC aggregate reports -------------------------------------------------------------------------------------------


class DmarcView(PanelView):
    """Who sends as a domain: the source IPs in its DMARC aggregate reports over the last days (ours marked), with
    their volumes and SPF/DKIM/DMARC results, and the reports themselves."""

    model = DmarcReport

    def get(self, request):
        domains = SendingDomain.objects.for_request(request).order_by("name")
        domain = None
        if request.GET.get("domain"):
            domain = get_object_or_404(domains, pk=request.GET["domain"]) if request.GET["domain"].isdigit() else None
        domain = domain or domains.first()
        since = timezone.now() - timedelta(days=DMARC_DAYS)
        reports = DmarcReport.objects.for_request(request).filter(sending_domain=domain, date_end__gte=since)
        sources = (
            DmarcRecord.objects.filter(report__in=reports).values("source_ip")
            .annotate(messages=Sum("count"), ours=Count("pk", filter=Q(ours=True)),
                      reporters=Count("report__org_name", distinct=True),
                      dkim_pass=Sum("count", filter=Q(dkim="pass")), spf_pass=Sum("count", filter=Q(spf="pass")),
                      dmarc_pass=Sum("count", filter=Q(dkim="pass") | Q(spf="pass")))
            .order_by("-messages")[:200]
        )  # fmt: skip
        return render(request, "queues/dmarc.html", {
            "domains": domains, "domain": domain, "sources": sources, "days": DMARC_DAYS,
            "reports": reports.order_by("-date_begin")[:100],
        })  # fmt: skip
