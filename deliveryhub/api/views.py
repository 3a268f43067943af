"""API views of the core: tenants, memberships, API keys, audit log, jobs."""

from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.http import FileResponse
from django.urls import NoReverseMatch
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from .. import services
from ..choices import JobStatus
from ..exports import FORMATS, start_audit_export
from ..filtersets import ApiKeyFilterSet, AuditEntryFilterSet, JobFilterSet, MembershipFilterSet
from ..models import ApiKey, AuditEntry, Job, Membership, Tenant
from .permissions import SignedIn
from .serializers import ApiKeySerializer, AuditEntrySerializer, JobSerializer, MembershipSerializer, TenantSerializer
from .viewsets import BaseViewSetMixin, CreateListRetrieveDestroyViewSet, ReadOnlyTenantViewSet, TenantModelViewSet


class ApiRootView(APIView):
    """`GET /api/v1/`: each collection of the API by name with its URL (routers given in deliveryhub.urls)."""

    permission_classes = [SignedIn]
    routers = ()
    schema = None  # not an operation of the API description

    def get(self, request):
        collections = {}
        for router in self.routers:
            for prefix, _viewset, basename in router.registry:
                try:
                    collections[prefix] = reverse(f"api:{basename}-list", request=request)
                except NoReverseMatch:  # verbs only (compliance-reports): no collection to list
                    continue
        return Response(collections)


class TenantViewSet(BaseViewSetMixin, viewsets.ModelViewSet):
    """Tenants: everyone sees their own; platform operators create and change them."""

    queryset = Tenant.objects.all()
    serializer_class = TenantSerializer
    filterset_fields = ["slug", "is_active"]

    def perform_create(self, serializer):
        with transaction.atomic():
            serializer.save()


class MembershipViewSet(TenantModelViewSet):
    queryset = Membership.objects.select_related("user", "tenant")
    serializer_class = MembershipSerializer
    filterset_class = MembershipFilterSet
    sudo_actions = frozenset({"create", "update", "partial_update"})  # granting a role, up or down

    def perform_destroy(self, instance):
        services.remove_member(instance, acting_user=self.request.user)


class ApiKeyViewSet(CreateListRetrieveDestroyViewSet):
    """API keys: created once (the response carries the raw key), listed, revoked (DELETE or /revoke/)."""

    queryset = ApiKey.objects.select_related("tenant")
    serializer_class = ApiKeySerializer
    filterset_class = ApiKeyFilterSet
    sudo_actions = frozenset({"create"})

    def perform_create(self, serializer):
        serializer.save(tenant=self.request_tenant())

    def perform_destroy(self, instance):
        services.revoke_api_key(instance, acting_user=self.request.user)

    @action(detail=True, methods=["post"], permission_action="delete")
    def revoke(self, request, pk=None):
        key = services.revoke_api_key(self.get_object(), acting_user=request.user)
        return Response(self.get_serializer(key).data)


class AuditEntryViewSet(ReadOnlyTenantViewSet):
    """The audit log, newest first, filterable by time, actor, action and object."""

    queryset = AuditEntry.objects.select_related("tenant")
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilterSet
    lookup_field = "seq"

    @action(detail=False, methods=["post"], permission_action="export")
    def export(self, request):
        """Start a CSV or PDF export of the tenant's audit log: body {"format": "csv"|"pdf", ...filters}; 202 + job."""
        job = start_audit_export(
            actor=self.principal,
            tenant=getattr(request, "tenant", None),
            fmt=request.data.get("format", ""),
            filters=request.data,
        )
        return Response(JobSerializer(job, context=self.get_serializer_context()).data, status=status.HTTP_202_ACCEPTED)


class AnyAcceptNegotiation(DefaultContentNegotiation):
    """A file download answers with the file whatever the client's Accept header says."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class JobViewSet(ReadOnlyTenantViewSet):
    queryset = Job.objects.all()
    serializer_class = JobSerializer
    filterset_class = JobFilterSet
    lookup_field = "uuid"

    @action(detail=True, methods=["get"], content_negotiation_class=AnyAcceptNegotiation)
    def download(self, request, uuid=None):
        """The file a completed job produced (an export); another tenant's job is a 404."""
        job = self.get_object()
        if job.status != JobStatus.COMPLETED or not job.result_file:
            raise NotFound("This job has no file to download.")
        root = Path(settings.MEDIA_ROOT).resolve()
        path = (root / job.result_file).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise NotFound("The job's file is no longer available.")
        content_type = FORMATS.get(path.suffix.lstrip("."), "application/octet-stream")
        name = job.download_name()
        return FileResponse(path.open("rb"), as_attachment=True, filename=name, content_type=content_type)
