"""API of campaigns: `/api/v1/lists/`, `/contacts/`, `/contact-imports/`, `/campaigns/` with their verbs.

Declarative viewsets on the policing base (tenant first, then role: Area.CAMPAIGNS); every write goes through
the services, which audit it.
"""

from django.http import HttpResponse, StreamingHttpResponse
from django.utils.text import slugify
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from deliveryhub.api.views import AnyAcceptNegotiation
from deliveryhub.api.viewsets import ReadOnlyTenantViewSet, TenantModelViewSet

from ...models import Campaign, Contact, ContactImport, ContactList
from .. import contacts as contact_services
from .. import imports, services, stats
from ..filtersets import CampaignFilterSet, ContactFilterSet, ContactImportFilterSet, ContactListFilterSet
from .serializers import (
    CampaignSerializer,
    ContactImportSerializer,
    ContactListSerializer,
    ContactSerializer,
    ImportRequestSerializer,
    TestSendSerializer,
    with_subscribed_count,
)


def csv_response(rows, filename):
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class ContactListViewSet(TenantModelViewSet):
    """Contact lists, with `imports` (CSV, as a job) and `export` (CSV, streamed)."""

    queryset = with_subscribed_count(ContactList.objects.all()).order_by("name", "pk")  # GROUP BY drops Meta.ordering
    serializer_class = ContactListSerializer
    filterset_class = ContactListFilterSet
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @action(detail=True, methods=["get", "post"], permission_action="add", serializer_class=ImportRequestSerializer)
    def imports(self, request, pk=None):
        """POST: import a CSV file into this list (multipart: `file`, `mode`, `email_column`, `mapping`); 202 + the
        import (its job's counts and progress). GET: this list's imports, newest first."""
        contact_list = self.get_object()
        if request.method == "GET":
            rows = ContactImport.objects.filter(contact_list=contact_list)[:100]
            return Response(ContactImportSerializer(rows, many=True).data)
        serializer = ImportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        imp = imports.start_import(
            contact_list.tenant,
            data["file"],
            contact_list=contact_list,
            mode=data["mode"],
            email_column=data["email_column"],
            mapping=data["mapping"],
            acting_user=request.user,
        )
        return Response(ContactImportSerializer(imp).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["get"], permission_action="export", content_negotiation_class=AnyAcceptNegotiation)
    def export(self, request, pk=None):
        """The list's contacts as CSV (email, name, status, subscribed, one column per custom field), streamed."""
        contact_list = self.get_object()
        return csv_response(contact_services.export_rows(contact_list), f"{slugify(contact_list.name) or 'list'}.csv")


class ContactViewSet(TenantModelViewSet):
    """Contacts: `?email=` searches by address, `?list=` and `?status=` filter by subscription."""

    queryset = Contact.objects.prefetch_related("subscriptions__contact_list").distinct()
    serializer_class = ContactSerializer
    filterset_class = ContactFilterSet

    def perform_destroy(self, instance):
        contact_services.delete_contacts([instance], acting_user=self.request.user)


class ContactImportViewSet(ReadOnlyTenantViewSet):
    """CSV imports: progress and counts while they run, `cancel`, and the validation `report` (CSV)."""

    queryset = ContactImport.objects.select_related("job")
    serializer_class = ContactImportSerializer
    filterset_class = ContactImportFilterSet
    lookup_field = "uuid"

    @action(detail=True, methods=["post"], permission_action="change")
    def cancel(self, request, uuid=None):
        imp = imports.cancel_import(self.get_object(), acting_user=request.user)
        return Response(ContactImportSerializer(imp).data)

    @action(detail=True, methods=["get"], content_negotiation_class=AnyAcceptNegotiation)
    def report(self, request, uuid=None):
        """The validation report: one line per skipped row (row, value, reason)."""
        text = imports.report_text(self.get_object())
        if text is None:
            raise NotFound("This import has no validation report (yet).")
        response = HttpResponse(text, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{uuid}-report.csv"'
        return response


class CampaignViewSet(TenantModelViewSet):
    """Campaigns and their verbs: `start`, `pause`, `resume`, `cancel`, `resend`, `test-send`, `preview`, `stats`."""

    queryset = Campaign.objects.select_related("ip_pool", "parent", "sending_domain").prefetch_related("lists")
    serializer_class = CampaignSerializer
    filterset_class = CampaignFilterSet
    lookup_field = "uuid"

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.create_campaign(self.request_tenant(), acting_user=self.request.user, **data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.update_campaign(serializer.instance, acting_user=self.request.user, **data)

    def perform_destroy(self, instance):
        services.delete_campaign(instance, acting_user=self.request.user)

    def _answer(self, campaign, code=status.HTTP_200_OK):
        return Response(CampaignSerializer(campaign, context=self.get_serializer_context()).data, status=code)

    @action(detail=True, methods=["post"], permission_action="change")
    def start(self, request, uuid=None):
        """Start (or schedule, with `send_at`) the campaign; 409 with what to fix when the gate refuses."""
        return self._answer(services.start_campaign(self.get_object(), acting_user=request.user))

    @action(detail=True, methods=["post"], permission_action="change")
    def pause(self, request, uuid=None):
        return self._answer(services.pause_campaign(self.get_object(), acting_user=request.user))

    @action(detail=True, methods=["post"], permission_action="change")
    def resume(self, request, uuid=None):
        return self._answer(services.resume_campaign(self.get_object(), acting_user=request.user))

    @action(detail=True, methods=["post"], permission_action="change")
    def cancel(self, request, uuid=None):
        return self._answer(services.cancel_campaign(self.get_object(), acting_user=request.user))

    @action(detail=True, methods=["post"], permission_action="add")
    def resend(self, request, uuid=None):
        """A follow-up draft to the recipients whose messages failed or are still deferred (start it to send)."""
        follow_up = services.resend_campaign(self.get_object(), acting_user=request.user)
        return self._answer(follow_up, status.HTTP_201_CREATED)

    @action(
        detail=True,
        methods=["post"],
        url_path="test-send",
        permission_action="change",
        serializer_class=TestSendSerializer,
    )
    def test_send(self, request, uuid=None):
        """Send to up to 5 addresses through the normal pipeline (subject marked [Test]); `contact` picks the data."""
        campaign = self.get_object()
        serializer = TestSendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        contact = self._contact(campaign, serializer.validated_data.get("contact"))
        rows = services.test_send(campaign, serializer.validated_data["to"], contact=contact, acting_user=request.user)
        return Response(
            {"messages": [{"id": str(m.uuid), "recipient": m.rcpt_to} for m in rows]}, status=status.HTTP_202_ACCEPTED
        )

    def _contact(self, campaign, pk):
        if pk in (None, ""):
            return None
        contact = (
            Contact.objects.restrict(self.request.user, "view").filter(tenant_id=campaign.tenant_id, pk=pk).first()
        )
        if contact is None:
            raise ValidationError({"contact": f"No contact with id {pk}."})
        return contact

    @action(detail=True, methods=["get"])
    def preview(self, request, uuid=None):
        """The campaign rendered for `?contact=<id>` (or a sample contact): subject, html, text."""
        campaign = self.get_object()
        subject, html, text = services.preview(campaign, self._contact(campaign, request.query_params.get("contact")))
        return Response({"subject": subject, "html": html, "text": text})

    @action(detail=True, methods=["get"])
    def stats(self, request, uuid=None):
        """Where the recipients stand (exact), engagement, rates, ETA and sends per minute."""
        campaign = self.get_object()
        return Response({**stats.campaign_stats(campaign), "per_minute": stats.sends_per_minute(campaign)})
