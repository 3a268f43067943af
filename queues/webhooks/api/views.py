"""API views: the event stream (`/api/v1/events/`), webhooks and their delivery logs."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from deliveryhub.api.viewsets import BaseViewSetMixin, TenantModelViewSet
from deliveryhub.choices import Action

from ...choices import EventType
from ...models import StreamEntry, Webhook, WebhookDelivery
from .. import services, stream
from ..queries import EVENTS_PAGE_DEFAULT, EVENTS_PAGE_MAX, filter_events, int_param
from .serializers import EventSerializer, WebhookDeliverySerializer, WebhookSerializer

EVENT_FILTERS = [
    OpenApiParameter("type", OpenApiTypes.STR, description="Event type(s), comma-separated: " + ", ".join(EventType)),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Events at or after this time."),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Events before this time."),
    OpenApiParameter("recipient", OpenApiTypes.EMAIL, description="The message's recipient (any case)."),
    OpenApiParameter("tag", OpenApiTypes.STR),
    OpenApiParameter("campaign", OpenApiTypes.UUID),
    OpenApiParameter("message", OpenApiTypes.UUID),
    OpenApiParameter("after", OpenApiTypes.INT, description="The cursor: events after this stream position."),
    OpenApiParameter("limit", OpenApiTypes.INT, description=f"Events per page (default {EVENTS_PAGE_DEFAULT}, "
                     f"at most {EVENTS_PAGE_MAX})."),  # fmt: skip
]


class EventViewSet(BaseViewSetMixin, viewsets.GenericViewSet):
    """The event stream of the tenant's messages, oldest first, paged by a cursor that is stable while new events
    arrive: follow `next` (present while a page is full) or poll again with `after=<cursor>`."""

    queryset = StreamEntry.objects.all()
    serializer_class = EventSerializer
    permission_area = StreamEntry.permission_area
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return StreamEntry.objects.restrict(self.principal, Action.VIEW)

    @extend_schema(
        summary="List events",
        parameters=EVENT_FILTERS,
        responses=inline_serializer("EventPage", {
            "results": EventSerializer(many=True),
            "cursor": serializers.IntegerField(help_text="Pass as `after` to get the events that follow."),
            "next": serializers.URLField(allow_null=True, help_text="The next page (null: caught up, poll later)."),
        }),  # fmt: skip
    )
    def list(self, request):
        params = request.query_params
        try:
            after = int_param(params, "after", 0, 0, 2**63 - 1)
            limit = int_param(params, "limit", EVENTS_PAGE_DEFAULT, 1, EVENTS_PAGE_MAX)
            queryset = filter_events(self.get_queryset(), params, self.principal).filter(position__gt=after)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        entries = stream.page(queryset, limit)
        cursor = entries[-1].position if entries else after
        next_url = None
        if len(entries) == limit:
            query = params.copy()
            query["after"] = str(cursor)
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response({"results": [stream.event_json(e) for e in entries], "cursor": cursor, "next": next_url})

    @extend_schema(summary="One event", responses=EventSerializer)
    def retrieve(self, request, pk=None):
        entry = stream.entries().restrict(self.principal, Action.VIEW).filter(event_id=pk).first()
        if entry is None:
            raise NotFound("No such event.")
        return Response(stream.event_json(entry))


class WebhookViewSet(TenantModelViewSet):
    """Webhooks: the create answer carries `secret` once; verbs rotate it, send a test event, list deliveries."""

    queryset = Webhook.objects.all()
    serializer_class = WebhookSerializer
    lookup_field = "uuid"
    filterset_fields = ["enabled"]

    @extend_schema(request=None, responses=WebhookSerializer, summary="Rotate the signing secret (shown once)")
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, uuid=None):
        webhook = self.get_object()
        webhook.new_secret = services.rotate_secret(webhook, acting_user=request.user)
        return Response(self.get_serializer(webhook).data)

    @extend_schema(request=None, responses={202: None}, summary="Send a test event")
    @action(detail=True, methods=["post"])
    def test(self, request, uuid=None):
        services.send_test_event(self.get_object(), acting_user=request.user)
        return Response({"detail": "A test event is on its way; see the deliveries."}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=WebhookDeliverySerializer(many=True), summary="The delivery log (newest first)")
    @action(detail=True, methods=["get"])
    def deliveries(self, request, uuid=None):
        webhook = self.get_object()
        page = self.paginate_queryset(WebhookDelivery.objects.filter(webhook=webhook).select_related("webhook"))
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: None}, summary="Send a logged delivery's events again")
    @action(detail=True, methods=["post"], url_path=r"deliveries/(?P<delivery_id>\d+)/redeliver")
    def redeliver(self, request, uuid=None, delivery_id=None):
        webhook = self.get_object()
        delivery = WebhookDelivery.objects.filter(webhook=webhook, pk=delivery_id).first()
        if delivery is None:
            raise NotFound("No such delivery of this webhook.")
        try:
            services.redeliver(delivery, acting_user=request.user)
        except DjangoValidationError as exc:
            raise ValidationError({"detail": exc.messages}) from None
        return Response({"detail": "Sent again in the background; see the deliveries."},
                        status=status.HTTP_202_ACCEPTED)  # fmt: skip
