"""API of the IP pools app: nodes, IP addresses, pools (members, grants), warm-up plans, blocklist results.

Platform objects are written by superusers and operator keys; tenant members read what they may use.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from deliveryhub.api.permissions import RolePermission, required_action
from deliveryhub.api.viewsets import BaseViewSetMixin, TenantModelViewSet
from deliveryhub.choices import Action
from deliveryhub.permissions import Principal

from .. import services
from ..filtersets import (
    BlocklistCheckFilterSet,
    DeliveryNodeFilterSet,
    IPAddressFilterSet,
    IPPoolFilterSet,
    IPPoolGrantFilterSet,
    IPPoolMemberFilterSet,
    ThrottleRuleFilterSet,
    ThrottleStateFilterSet,
    WarmupPlanFilterSet,
)
from ..models import (
    BlocklistCheck,
    DeliveryNode,
    IPAddress,
    IPPool,
    IPPoolGrant,
    IPPoolMember,
    TenantDefaultPool,
    ThrottleRule,
    ThrottleState,
    WarmupPlan,
)
from .serializers import (
    BlocklistCheckSerializer,
    DeliveryNodeSerializer,
    IPAddressSerializer,
    IPEventSerializer,
    IPPoolGrantSerializer,
    IPPoolMemberSerializer,
    IPPoolSerializer,
    ReputationSampleSerializer,
    StartWarmupSerializer,
    TenantDefaultPoolSerializer,
    ThrottleRuleSerializer,
    ThrottleStateSerializer,
    WarmupPlanSerializer,
)


class PlatformObjectPermission(RolePermission):
    """Object level for platform objects: `restrict()` already limited members to what they may read, so
    reading passes and anything else needs a platform principal."""

    def has_object_permission(self, request, view, obj):
        principal = Principal.of(request.user)
        action = required_action(view, request)
        if principal.is_platform:
            return principal.allows(None, view.get_permission_area(), action)
        return action == Action.VIEW


class PlatformModelViewSet(BaseViewSetMixin, viewsets.ModelViewSet):
    """CRUD of a platform object: writes in a transaction, by platform principals only."""

    permission_classes = [PlatformObjectPermission]

    def perform_create(self, serializer):
        with transaction.atomic():
            serializer.save()

    def perform_update(self, serializer):
        with transaction.atomic():
            serializer.save()

    def perform_destroy(self, instance):
        with transaction.atomic():
            instance.delete()


class ReadOnlyPlatformViewSet(BaseViewSetMixin, viewsets.ReadOnlyModelViewSet):
    permission_classes = [PlatformObjectPermission]


class DeliveryNodeViewSet(PlatformModelViewSet):
    """Delivery nodes. Verb: move-ips (`{"to": "<node name>"}`: a lost node's addresses to another node)."""

    queryset = DeliveryNode.objects.all()
    serializer_class = DeliveryNodeSerializer
    filterset_class = DeliveryNodeFilterSet

    @action(detail=True, methods=["post"], url_path="move-ips")
    def move_ips(self, request, pk=None):
        source = self.get_object()
        target = DeliveryNode.objects.filter(name=request.data.get("to")).first()
        if target is None:
            raise ValidationError({"to": "Name the node that takes the addresses over."})
        moved = services.move_node_ips(source, target, acting_user=request.user)
        return Response({"from": source.name, "to": target.name, "addresses": [ip.address for ip in moved]})


class IPAddressViewSet(PlatformModelViewSet):
    """Source IPs. Verbs: check-blocklists, start-warmup, pause, resume; history: blocklist-checks, events,
    reputation-history."""

    queryset = IPAddress.objects.select_related("node", "warmup_plan").prefetch_related("memberships__pool")
    serializer_class = IPAddressSerializer
    filterset_class = IPAddressFilterSet

    def _acting_user(self):
        return getattr(self.request.user, "user", None)

    @action(detail=True, methods=["post"], url_path="check-blocklists", permission_action="change")
    def check_blocklists(self, request, pk=None):
        """Check this IP against every blocklist now (cached answers ignored)."""
        ip = self.get_object()
        checks = services.check_blocklists(ip, force=True, acting_user=self._acting_user())
        ip.refresh_from_db()
        return Response(
            {"ip": self.get_serializer(ip).data, "checks": BlocklistCheckSerializer(checks, many=True).data}
        )

    @action(detail=True, methods=["get"], url_path="blocklist-checks")
    def blocklist_checks(self, request, pk=None):
        """This IP's blocklist answers, newest first (one row per change of answer)."""
        rows = BlocklistCheck.objects.filter(ip=self.get_object()).order_by("-checked_at", "-id")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(BlocklistCheckSerializer(page, many=True).data)

    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        page = self.paginate_queryset(self.get_object().events.all())
        return self.get_paginated_response(IPEventSerializer(page, many=True).data)

    @action(detail=True, methods=["get"], url_path="reputation-history")
    def reputation_history(self, request, pk=None):
        page = self.paginate_queryset(self.get_object().reputation_history.all())
        return self.get_paginated_response(ReputationSampleSerializer(page, many=True).data)

    @action(
        detail=True,
        methods=["post"],
        url_path="start-warmup",
        permission_action="change",
        serializer_class=StartWarmupSerializer,
    )
    def start_warmup(self, request, pk=None):
        ip = self.get_object()
        params = StartWarmupSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        ip = services.start_warmup(
            ip, params.validated_data["plan"], day=params.validated_data["day"], acting_user=self._acting_user()
        )
        return Response(IPAddressSerializer(ip, context=self.get_serializer_context()).data)

    @action(detail=True, methods=["post"], permission_action="change")
    def pause(self, request, pk=None):
        ip = services.pause_ip(
            self.get_object(), reason=str(request.data.get("reason", "")), acting_user=self._acting_user()
        )
        return Response(self.get_serializer(ip).data)

    @action(detail=True, methods=["post"], permission_action="change")
    def resume(self, request, pk=None):
        ip = services.resume_ip(self.get_object(), acting_user=self._acting_user())
        return Response(self.get_serializer(ip).data)


class IPPoolViewSet(PlatformModelViewSet):
    queryset = IPPool.objects.select_related("tenant").prefetch_related("members__ip", "grants__tenant")
    serializer_class = IPPoolSerializer
    filterset_class = IPPoolFilterSet


class IPPoolMemberViewSet(PlatformModelViewSet):
    queryset = IPPoolMember.objects.select_related("pool", "ip")
    serializer_class = IPPoolMemberSerializer
    filterset_class = IPPoolMemberFilterSet


class IPPoolGrantViewSet(PlatformModelViewSet):
    queryset = IPPoolGrant.objects.select_related("pool", "tenant")
    serializer_class = IPPoolGrantSerializer
    filterset_class = IPPoolGrantFilterSet
    http_method_names = ["get", "post", "delete", "head", "options"]


class WarmupPlanViewSet(PlatformModelViewSet):
    queryset = WarmupPlan.objects.all()
    serializer_class = WarmupPlanSerializer
    filterset_class = WarmupPlanFilterSet


class BlocklistCheckViewSet(ReadOnlyPlatformViewSet):
    queryset = BlocklistCheck.objects.select_related("ip")
    serializer_class = BlocklistCheckSerializer
    filterset_class = BlocklistCheckFilterSet


class TenantDefaultPoolViewSet(TenantModelViewSet):
    """A tenant's default pool per purpose (tenant admins choose among the pools they may use)."""

    queryset = TenantDefaultPool.objects.select_related("tenant", "pool")
    serializer_class = TenantDefaultPoolSerializer
    filterset_fields = ["purpose", "pool"]


class ThrottleRuleViewSet(TenantModelViewSet):
    """Throttle rules: a tenant's own (its admins), or platform rules (operators; tenant empty)."""

    queryset = ThrottleRule.objects.select_related("tenant", "ip", "pool")
    serializer_class = ThrottleRuleSerializer
    filterset_class = ThrottleRuleFilterSet

    def perform_create(self, serializer):
        if not self.principal.is_platform:
            return super().perform_create(serializer)
        with transaction.atomic():  # an operator names the tenant, or none for a platform rule
            serializer.save()


class ThrottleStateViewSet(ReadOnlyPlatformViewSet):
    """Adaptively slowed (IP, provider) pairs (the durable copy; the live state is in Redis)."""

    queryset = ThrottleState.objects.select_related("ip")
    serializer_class = ThrottleStateSerializer
    filterset_class = ThrottleStateFilterSet
