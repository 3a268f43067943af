"""API of the domains app: /api/v1/domains/ with verify, dns-records and dkim-keys verbs."""

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import exceptions, status
from rest_framework.decorators import action
from rest_framework.response import Response

from deliveryhub.api.viewsets import TenantModelViewSet

from .. import services
from ..filtersets import SendingDomainFilterSet
from ..models import DkimKey, SendingDomain
from ..plan import record_plan, zone_snippet
from .serializers import (
    DkimKeySerializer,
    DkimRotateSerializer,
    DnsRecordSerializer,
    DnsRecordsSerializer,
    SendingDomainSerializer,
    dns_records,
)

EXPORT_REFUSED = (
    "Private keys are never exported through the API. Export it in the web panel (Domains → the domain → "
    "DKIM keys) after a fresh two-factor check; every export is audited."
)


@extend_schema_view(
    create=extend_schema(
        summary="Add a sending domain",
        description="Add a domain to the tenant: answers the domain with its DKIM key; GET dns-records lists what to "
        "publish, POST verify checks it.",
        examples=[
            OpenApiExample(
                "A first domain",
                request_only=True,
                value={"name": "mail.acme.example", "dmarc_policy": "quarantine", "dmarc_rua": "dmarc@acme.example"},
            )
        ],
    )
)
class DomainViewSet(TenantModelViewSet):
    """Sending domains of the tenant: CRUD, DNS verification, the record plan, DKIM keys and rotation."""

    queryset = SendingDomain.objects.select_related("tenant")
    serializer_class = SendingDomainSerializer
    filterset_class = SendingDomainFilterSet

    def perform_destroy(self, instance):
        services.delete_domain(instance, acting_user=self.request.user)

    def _records_response(self, domain, checks=None):
        rows = dns_records(domain, checks)
        return {
            "domain": domain.name,
            "status": domain.status,
            "can_send": dict(zip(("allowed", "reason"), domain.can_send(), strict=True)),
            "last_checked": domain.last_checked,
            "records": DnsRecordSerializer(rows, many=True).data,
            "zone_file": zone_snippet(record_plan(domain)),
        }

    @extend_schema(request=None, responses={200: DnsRecordsSerializer})
    @action(detail=True, methods=["post"], permission_action="change")
    def verify(self, request, pk=None):
        """Check every record in the DNS now; answers the records with their new status."""
        domain = self.get_object()
        checks = services.verify_domain(domain, acting_user=request.user)
        domain.refresh_from_db()
        return Response(self._records_response(domain, checks))

    @extend_schema(responses={200: DnsRecordsSerializer})
    @action(detail=True, methods=["get"], url_path="dns-records")
    def dns_records(self, request, pk=None):
        """Every record to publish: expected and observed value, status and explanation, and a zone-file snippet."""
        return Response(self._records_response(self.get_object()))

    @extend_schema(responses={200: DkimKeySerializer(many=True)})
    @action(detail=True, methods=["get"], url_path="dkim-keys")
    def dkim_keys(self, request, pk=None):
        """The domain's DKIM keys, newest first (public parts only)."""
        keys = self.get_object().dkim_keys.order_by("-created")
        return Response(DkimKeySerializer(keys, many=True).data)

    @extend_schema(request=DkimRotateSerializer, responses={201: DkimKeySerializer})
    @action(detail=True, methods=["post"], url_path="dkim-keys/rotate", permission_action="change")
    def rotate(self, request, pk=None):
        """Start a rotation: a new pending key that signs once its record verifies."""
        domain = self.get_object()
        serializer = DkimRotateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            key = services.rotate_dkim_key(domain, acting_user=request.user, **serializer.validated_data)
        except ValidationError as exc:
            raise exceptions.ValidationError(exc.message_dict) from None
        return Response(DkimKeySerializer(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={403: None})
    @action(detail=True, methods=["get"], url_path=r"dkim-keys/(?P<key_id>\d+)/private-key", permission_action="change")
    def private_key(self, request, pk=None, key_id=None):
        """Refused: a private key is exported only in the web panel after a fresh two-factor check."""
        get_object_or_404(DkimKey, domain=self.get_object(), pk=key_id)
        raise exceptions.PermissionDenied(EXPORT_REFUSED)
