"""API views of the core: tenants, memberships, API keys, audit log, jobs."""

from django.db import transaction
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .. import services
from ..filtersets import ApiKeyFilterSet, AuditEntryFilterSet, JobFilterSet, MembershipFilterSet
from ..models import ApiKey, AuditEntry, Job, Membership, Tenant
from .serializers import ApiKeySerializer, AuditEntrySerializer, JobSerializer, MembershipSerializer, TenantSerializer
from .viewsets import BaseViewSetMixin, CreateListRetrieveDestroyViewSet, ReadOnlyTenantViewSet, TenantModelViewSet


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


class ApiKeyViewSet(CreateListRetrieveDestroyViewSet):
    """API keys: created once (the response carries the raw key), listed, revoked (DELETE or /revoke/)."""

    queryset = ApiKey.objects.select_related("tenant")
    serializer_class = ApiKeySerializer
    filterset_class = ApiKeyFilterSet

    def perform_create(self, serializer):
        serializer.save(tenant=self.request_tenant())

    def perform_destroy(self, instance):
        services.revoke_api_key(instance, acting_user=getattr(self.request.user, "user", None))

    @action(detail=True, methods=["post"], permission_action="delete")
    def revoke(self, request, pk=None):
        key = services.revoke_api_key(self.get_object(), acting_user=getattr(request.user, "user", None))
        return Response(self.get_serializer(key).data)


class AuditEntryViewSet(ReadOnlyTenantViewSet):
    """The audit log, newest first, filterable by time, actor, action and object."""

    queryset = AuditEntry.objects.select_related("tenant")
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilterSet
    lookup_field = "seq"


class JobViewSet(ReadOnlyTenantViewSet):
    queryset = Job.objects.all()
    serializer_class = JobSerializer
    filterset_class = JobFilterSet
    lookup_field = "uuid"
