"""API views of the queues app: messages (intake, list, detail, cancel, release), routes, suppressions."""

import json

from django.db.models import Prefetch
from django.http import StreamingHttpResponse
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from deliveryhub.api.views import AnyAcceptNegotiation
from deliveryhub.api.viewsets import BaseViewSetMixin, TenantModelViewSet

from .. import services
from ..campaigns import imports, suppressions
from ..campaigns.api.serializers import ContactImportSerializer
from ..choices import ImportKind
from ..filtersets import MessageFilterSet, RouteFilterSet, SuppressionFilterSet
from ..models import DeliveryAttempt, Message, MessageEvent, Route, SmtpCredential, Suppression
from .serializers import (
    MessageBatchSerializer,
    MessageDetailSerializer,
    MessageSerializer,
    MessageSubmitSerializer,
    RouteSerializer,
    SmtpCredentialSerializer,
    SuppressionSerializer,
    flat_errors,
)


class MessageViewSet(BaseViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Messages: `POST` accepts mail (202 after commit, one id per recipient); list and detail show what happened.

    An `Idempotency-Key` header makes a retried POST return the first answer instead of sending twice.
    """

    queryset = Message.objects.select_related("sending_domain", "ip_pool", "content").defer("content__raw")
    serializer_class = MessageSerializer
    filterset_class = MessageFilterSet
    lookup_field = "uuid"

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "retrieve":
            queryset = queryset.prefetch_related(
                Prefetch("delivery_attempts", queryset=DeliveryAttempt.objects.order_by("time", "id")),
                Prefetch("events", queryset=MessageEvent.objects.order_by("time", "id")),
            )
        return queryset

    def get_serializer_class(self):
        return {
            "retrieve": MessageDetailSerializer,
            "create": MessageSubmitSerializer,
            "batch": MessageBatchSerializer,
        }.get(self.action, MessageSerializer)

    def _accept(self, request, submissions):
        key = request.headers.get("Idempotency-Key")
        # The same request is the same JSON, whatever its key order or spacing.
        digest = services.request_digest(json.dumps(request.data, sort_keys=True, default=str).encode()) if key else ""
        accepted = services.accept_messages(
            self.request_tenant(), submissions, idempotency_key=key, digest=digest
        )
        headers = {"Idempotent-Replayed": "true"} if accepted.replayed else {}
        return Response(accepted.response, status=accepted.status_code, headers=headers)

    def _valid(self, serializer_class, request):
        serializer = serializer_class(data=request.data, context=self.get_serializer_context())
        if not serializer.is_valid():
            raise ValidationError(flat_errors(serializer.errors))
        return serializer

    @extend_schema(
        summary="Send a message",
        description="Accept one message for each recipient in `to`, `cc` and `bcc`: 202 once stored (after commit), "
        "with one id per recipient. Retry safely with an `Idempotency-Key` header.",
        responses={202: OpenApiResponse(description="Accepted: one message id per recipient.")},
        examples=[
            OpenApiExample(
                "A text and HTML message",
                request_only=True,
                value={"from": "Acme <hello@mail.acme.example>", "to": ["ann@example.net"], "subject": "Your receipt",
                       "text": "Thank you for your order.", "html": "<p>Thank you for your <b>order</b>.</p>",
                       "tag": "receipt", "metadata": {"order": "1042"}},  # fmt: skip
            ),
            OpenApiExample(
                "Accepted", response_only=True, status_codes=["202"],
                value={"message_id": "<20261204.1a2b3c@mail.acme.example>",
                       "messages": [{"id": "6f1c9f0e-8a51-4f5e-9d55-2f3c8f7b1a10", "recipient": "ann@example.net",
                                     "status": "queued"}]},  # fmt: skip
            ),
        ],
    )
    def create(self, request, *args, **kwargs):
        return self._accept(request, self._valid(MessageSubmitSerializer, request).to_submission())

    @action(detail=False, methods=["post"], permission_action="add")
    def batch(self, request):
        """Accept several messages in one request: `{"messages": [...]}`, all or none."""
        return self._accept(request, self._valid(MessageBatchSerializer, request).to_submissions())

    @action(detail=True, methods=["post"], permission_action="change")
    def cancel(self, request, uuid=None):
        message = services.cancel_message(self.get_object(), acting_user=request.user)
        return Response(MessageSerializer(message).data, status=status.HTTP_200_OK)

    @action(detail=True, methods=["post"], permission_action="change")
    def release(self, request, uuid=None):
        """Put a held message (its workers kept dying on it) back in the queue."""
        message = services.release_message(self.get_object(), acting_user=request.user)
        return Response(MessageSerializer(message).data, status=status.HTTP_200_OK)


class RouteViewSet(TenantModelViewSet):
    """Smarthost routes: recipient domains that go to a fixed relay instead of their MX hosts."""

    queryset = Route.objects.all()
    serializer_class = RouteSerializer
    filterset_class = RouteFilterSet


class SuppressionViewSet(TenantModelViewSet):
    """The tenant's never-send list."""

    queryset = Suppression.objects.all()
    serializer_class = SuppressionSerializer
    filterset_class = SuppressionFilterSet
    http_method_names = ["get", "post", "delete", "head", "options"]

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.add_suppression(
            self.request_tenant(), data["address"], reason=data.get("reason") or "manual",
            source=data.get("source", ""), acting_user=self.request.user,
        )  # fmt: skip
        if data.get("expires"):
            serializer.instance.expires = data["expires"]
            serializer.instance.save()

    def perform_destroy(self, instance):
        suppressions.remove_suppression(instance, acting_user=self.request.user)

    @action(detail=False, methods=["post"], permission_action="add")
    def bulk(self, request):
        """Add many addresses at once: `{"addresses": [...], "reason": "manual", "expires": null}`; all or none."""
        data = request.data
        addresses = data.get("addresses")
        if not isinstance(addresses, list):
            raise ValidationError({"addresses": "A list of addresses."})
        expires = parse_datetime(data["expires"]) if data.get("expires") else None
        created = suppressions.add_suppressions(
            self.request_tenant(), [str(a) for a in addresses], reason=data.get("reason") or "manual",
            source=str(data.get("source", ""))[:500], expires=expires, acting_user=request.user,
        )  # fmt: skip
        return Response({"added": len(created), "results": SuppressionSerializer(created, many=True).data},
                        status=status.HTTP_201_CREATED)  # fmt: skip

    @action(detail=False, methods=["post"], url_path="import", permission_action="add",
            parser_classes=[MultiPartParser, FormParser])  # fmt: skip
    def import_csv(self, request):
        """Import a CSV file of addresses (multipart `file`, optional `email_column`) as a job; 202 + the import."""
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"file": "Attach the CSV file as `file`."})
        imp = imports.start_import(self.request_tenant(), upload, kind=ImportKind.SUPPRESSIONS,
                                   email_column=request.data.get("email_column") or "email", acting_user=request.user)
        return Response(ContactImportSerializer(imp).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=False, methods=["get"], permission_action="export", content_negotiation_class=AnyAcceptNegotiation)
    def export(self, request):
        """The suppression list as CSV (with the list's filters), streamed."""
        rows = suppressions.export_rows(self.filter_queryset(self.get_queryset()))
        response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="suppressions.csv"'
        return response


class SmtpCredentialViewSet(TenantModelViewSet):
    """SMTP submission logins: the create answer carries `password` once; `rotate` gives a new one, `revoke` turns the
    login off (DELETE removes it)."""

    queryset = SmtpCredential.objects.all()
    serializer_class = SmtpCredentialSerializer
    filterset_fields = ["is_active"]
    sudo_actions = frozenset({"create", "rotate"})  # a new secret, like an API key

    @extend_schema(request=None, responses=SmtpCredentialSerializer, summary="A new password (shown once)")
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        credential = self.get_object()
        credential.new_password = services.rotate_smtp_credential(credential, acting_user=request.user)
        return Response(self.get_serializer(credential).data)

    @extend_schema(request=None, responses=SmtpCredentialSerializer, summary="Turn the login off")
    @action(detail=True, methods=["post"], permission_action="delete")
    def revoke(self, request, pk=None):
        credential = services.revoke_smtp_credential(self.get_object(), acting_user=request.user)
        return Response(self.get_serializer(credential).data)
