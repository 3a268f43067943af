"""API of the reports app: data-subject requests, retention policies, purge runs, compliance reports."""

from django.core.exceptions import ValidationError
from django.http import FileResponse
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from deliveryhub.api.serializers import JobSerializer
from deliveryhub.api.views import AnyAcceptNegotiation
from deliveryhub.api.viewsets import BaseViewSetMixin, TenantModelViewSet
from deliveryhub.choices import Area

from .. import compliance, services
from ..filtersets import DataRequestFilterSet, PurgeRunFilterSet, RetentionPolicyFilterSet
from ..models import DataRequest, PurgeRun, RetentionPolicy
from .serializers import (
    ComplianceReportSerializer,
    DataRequestSerializer,
    PurgeRunSerializer,
    RetentionPolicySerializer,
)


class DataRequestViewSet(
    BaseViewSetMixin, mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    """Data-subject requests (owners and compliance staff): create one, follow its status, download an access archive.

    A request is never edited or deleted: it is the record that the request was handled.
    """

    queryset = DataRequest.objects.select_related("job")
    serializer_class = DataRequestSerializer
    filterset_class = DataRequestFilterSet
    lookup_field = "uuid"

    def perform_create(self, serializer):
        serializer.save(tenant=self.request_tenant())

    def create(self, request, *args, **kwargs):
        response = super().create(request, *args, **kwargs)
        response.status_code = status.HTTP_202_ACCEPTED  # the job runs after the answer
        return response

    @action(detail=True, methods=["get"], permission_action="export", content_negotiation_class=AnyAcceptNegotiation)
    def download(self, request, uuid=None):
        """The signed access archive (ZIP: subject-data.json, summary.pdf, manifest, signature)."""
        data_request = self.get_object()
        try:
            path = services.archive_for_download(data_request, acting_user=request.user)
        except ValidationError as exc:
            raise NotFound(exc.messages[0]) from None
        return FileResponse(path.open("rb"), as_attachment=True, filename=f"data-request-{data_request.uuid}.zip",
                            content_type="application/zip")  # fmt: skip


class RetentionPolicyViewSet(TenantModelViewSet):
    """The tenant's own retention periods (kinds without one use the platform default)."""

    queryset = RetentionPolicy.objects.all()
    serializer_class = RetentionPolicySerializer
    filterset_class = RetentionPolicyFilterSet

    def perform_destroy(self, instance):
        services.set_retention(instance.tenant, instance.kind, None, acting_user=self.request.user)


class PurgeRunViewSet(BaseViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Recorded retention purges; `POST` runs one for the request's tenant now (`{"dry_run": true}` counts only)."""

    queryset = PurgeRun.objects.all()
    serializer_class = PurgeRunSerializer
    filterset_class = PurgeRunFilterSet
    lookup_field = "uuid"

    def create(self, request):
        dry_run = request.data.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise ValidationError({"dry_run": "true or false."})
        run = services.purge(dry_run=dry_run, tenant=self.request_tenant(), acting_user=request.user)
        return Response(self.get_serializer(run).data, status=status.HTTP_201_CREATED)


class ComplianceReportViewSet(BaseViewSetMixin, viewsets.GenericViewSet):
    """`POST` starts a deliverability and compliance report of the request's tenant for a period (202 + job)."""

    queryset = DataRequest.objects.none()  # reports are jobs (GET /api/v1/jobs/{id}/ and /download/)
    serializer_class = ComplianceReportSerializer
    permission_area = Area.AUDIT
    permission_action = "export"  # owners, admins and compliance staff

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = compliance.start_report(self.request_tenant(), fmt=data["format"], start=data["period_start"],
                                      end=data["period_end"], acting_user=request.user)  # fmt: skip
        return Response(JobSerializer(job, context=self.get_serializer_context()).data, status=status.HTTP_202_ACCEPTED)
