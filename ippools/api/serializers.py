"""Serializers of the IP pools API."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deliveryhub.models import Tenant
from deliveryhub.permissions import Principal

from .. import services
from ..models import (
    BlocklistCheck,
    DeliveryNode,
    IPAddress,
    IPEvent,
    IPPool,
    IPPoolGrant,
    IPPoolMember,
    ReputationSample,
    TenantDefaultPool,
    ThrottleRule,
    ThrottleState,
    WarmupPlan,
)


class DeliveryNodeSerializer(serializers.ModelSerializer):
    is_live = serializers.SerializerMethodField()

    class Meta:
        model = DeliveryNode
        fields = ["id", "name", "region", "hostname", "status", "last_heartbeat", "is_live", "created", "last_updated"]
        read_only_fields = ["last_heartbeat", "created", "last_updated"]

    def get_is_live(self, obj) -> bool:
        return obj.is_live()


@extend_schema_field(OpenApiTypes.OBJECT)
class WarmupStatusField(serializers.Field):
    """An IP's warm-up position: plan, day N of M, today's reservations against the caps."""

    def __init__(self, **kwargs):
        kwargs.update(source="*", read_only=True)
        super().__init__(**kwargs)

    def to_representation(self, ip):
        progress = ip.warmup_progress()
        if progress is None:
            return None
        caps = ip.warmup_caps()
        primed = self.context.get("_usage_today")  # read for the whole page by IPAddressListSerializer
        used = primed[ip.pk] if primed is not None and ip.pk in primed else services.usage_today(ip)
        return {
            "plan": ip.warmup_plan_id,
            "plan_name": ip.warmup_plan.name,
            "day": progress[0],
            "days": progress[1],
            "caps": caps,
            "used_today": used,
            "remaining_today": {
                key: max(0, cap - used.get(key, 0)) for key, cap in caps.items() if cap is not None and key != "hourly"
            },
        }


class IPAddressListSerializer(serializers.ListSerializer):
    """A page of IPs: today's warm-up use of the warming ones is read for all of them at once (not per IP)."""

    def to_representation(self, data):
        ips = list(data.all() if isinstance(data, models.manager.BaseManager) else data)
        self.context["_usage_today"] = services.usage_today_many([ip for ip in ips if ip.warmup_progress()])
        return super().to_representation(ips)


class IPAddressSerializer(serializers.ModelSerializer):
    node_name = serializers.CharField(source="node.name", read_only=True)
    warmup = WarmupStatusField()
    pools = serializers.SerializerMethodField()

    class Meta:
        model = IPAddress
        fields = [
            "id", "address", "node", "node_name", "ehlo_hostname", "state", "reputation", "reputation_explanation",
            "ptr_status", "ptr_hostname", "listed", "listed_zones", "warmup_plan", "warmup_day", "warmup",
            "pools", "notes", "created", "last_updated",
        ]  # fmt: skip
        read_only_fields = ["reputation", "reputation_explanation", "listed", "listed_zones", "created", "last_updated"]
        list_serializer_class = IPAddressListSerializer

    def get_pools(self, obj) -> list[str]:
        """The pools of this IP that the actor may see (another tenant's dedicated pool is not named)."""
        principal = Principal.of(self.context["request"].user)
        if principal.is_platform:
            return [m.pool.name for m in obj.memberships.all()]
        visible = self.context.get("_visible_pool_ids")  # once per response, not once per IP
        if visible is None:
            visible = self.context["_visible_pool_ids"] = set(
                IPPool.objects.restrict(principal, "view").values_list("pk", flat=True)
            )
        return [m.pool.name for m in obj.memberships.all() if m.pool_id in visible]

    def validate(self, attrs):
        instance = IPAddress(**{**self._current(), **attrs})
        instance.pk = getattr(self.instance, "pk", None)
        instance.clean()
        attrs["address"] = instance.address
        return attrs

    def _current(self):
        if self.instance is None:
            return {}
        return {f.name: getattr(self.instance, f.name) for f in IPAddress._meta.concrete_fields if f.name != "id"}


class IPPoolMemberSerializer(serializers.ModelSerializer):
    address = serializers.CharField(source="ip.address", read_only=True)
    pool_name = serializers.CharField(source="pool.name", read_only=True)

    class Meta:
        model = IPPoolMember
        fields = ["id", "pool", "pool_name", "ip", "address", "weight", "paused", "paused_by_listing", "pause_reason"]
        read_only_fields = ["paused_by_listing"]


class IPPoolSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(
        slug_field="slug", queryset=Tenant.objects.all(), required=False, allow_null=True
    )
    members = IPPoolMemberSerializer(many=True, read_only=True)
    granted_tenants = serializers.SerializerMethodField()

    class Meta:
        model = IPPool
        fields = [
            "id", "name", "description", "purpose", "tenant", "all_tenants", "granted_tenants", "region",
            "pause_on_listing", "members", "created", "last_updated",
        ]  # fmt: skip
        read_only_fields = ["created", "last_updated"]

    def get_granted_tenants(self, obj) -> list[str]:
        principal = Principal.of(self.context["request"].user)
        grants = obj.grants.all()
        if not principal.is_platform:
            grants = [g for g in grants if g.tenant_id in principal.roles]
        return [g.tenant.slug for g in grants]

    def validate(self, attrs):
        pool = IPPool(
            **{
                **(
                    {}
                    if self.instance is None
                    else {"tenant": self.instance.tenant, "all_tenants": self.instance.all_tenants}
                ),
                **attrs,
            }
        )
        pool.clean()
        return attrs


class IPPoolGrantSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", queryset=Tenant.objects.all())

    class Meta:
        model = IPPoolGrant
        fields = ["id", "pool", "tenant", "created"]
        read_only_fields = ["created"]

    def validate(self, attrs):
        IPPoolGrant(**attrs).clean()
        return attrs


class WarmupPlanSerializer(serializers.ModelSerializer):
    length = serializers.IntegerField(read_only=True)

    class Meta:
        model = WarmupPlan
        fields = [
            "id", "name", "description", "days", "length", "max_bounce_rate", "max_deferral_rate",
            "max_complaint_rate", "step_back_days", "is_builtin", "created", "last_updated",
        ]  # fmt: skip
        read_only_fields = ["is_builtin", "created", "last_updated"]

    def validate(self, attrs):
        current = (
            {}
            if self.instance is None
            else {f.name: getattr(self.instance, f.name) for f in WarmupPlan._meta.concrete_fields if f.name != "id"}
        )
        WarmupPlan(**{**current, **attrs}).clean()
        return attrs


class StartWarmupSerializer(serializers.Serializer):
    plan = serializers.PrimaryKeyRelatedField(queryset=WarmupPlan.objects.all())
    day = serializers.IntegerField(min_value=1, default=1)


class TenantDefaultPoolSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = TenantDefaultPool
        fields = ["id", "tenant", "purpose", "pool", "created", "last_updated"]
        read_only_fields = ["created", "last_updated"]

    def validate(self, attrs):
        request = self.context["request"]
        tenant = self.instance.tenant if self.instance else getattr(request, "tenant", None)
        pool = attrs.get("pool", getattr(self.instance, "pool", None))
        if tenant is not None and pool is not None and not pool.is_usable_by(tenant):
            raise serializers.ValidationError({"pool": "This pool is not usable by the tenant."})
        purpose = attrs.get("purpose", getattr(self.instance, "purpose", None))
        clash = TenantDefaultPool.objects.filter(tenant=tenant, purpose=purpose)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if tenant is not None and clash.exists():
            raise serializers.ValidationError({"purpose": f"The tenant already has a default {purpose} pool."})
        return attrs

    def create(self, validated_data):
        with transaction.atomic():
            return services.set_default_pool(
                validated_data["tenant"], validated_data["purpose"], validated_data["pool"]
            )


class BlocklistCheckSerializer(serializers.ModelSerializer):
    address = serializers.CharField(source="ip.address", read_only=True, default=None)

    class Meta:
        model = BlocklistCheck
        fields = [
            "id", "ip", "address", "domain", "zone", "query_name", "status", "codes", "meaning", "first_seen",
            "checked_at", "expires_at", "attempts",
        ]  # fmt: skip
        read_only_fields = fields


class IPEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = IPEvent
        fields = ["id", "ip", "time", "kind", "message", "data"]
        read_only_fields = fields


class ReputationSampleSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReputationSample
        fields = ["id", "ip", "time", "score", "explanation", "data"]
        read_only_fields = fields


class ThrottleRuleSerializer(serializers.ModelSerializer):
    """A throttle rule. Platform principals name the tenant (empty: a platform rule); tenant members' rules belong to
    their current tenant and name only IPs and pools it may use."""

    tenant = serializers.SlugRelatedField(
        slug_field="slug", queryset=Tenant.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = ThrottleRule
        fields = [
            "id", "tenant", "ip", "pool", "provider", "max_connections", "max_messages_per_connection",
            "max_per_minute", "max_per_hour", "enabled", "description", "created", "last_updated",
        ]  # fmt: skip
        read_only_fields = ["created", "last_updated"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None:  # what the actor cannot see does not exist for it
            fields["ip"].queryset = IPAddress.objects.restrict(request.user, "view")
            fields["pool"].queryset = IPPool.objects.restrict(request.user, "view")
            if not Principal.of(request.user).is_platform:
                fields["tenant"].read_only = True
        return fields

    def validate(self, attrs):
        request = self.context["request"]
        current = {f: getattr(self.instance, f) for f in self.Meta.fields if hasattr(self.instance, f)}
        merged = {k: v for k, v in {**current, **attrs}.items() if k not in ("id", "created", "last_updated")}
        if not Principal.of(request.user).is_platform:
            merged["tenant"] = self.instance.tenant if self.instance else getattr(request, "tenant", None)
        rule = ThrottleRule(**merged)
        try:
            rule.clean()
        except DjangoValidationError as error:
            raise serializers.ValidationError(serializers.as_serializer_error(error)) from None
        return attrs


class ThrottleStateSerializer(serializers.ModelSerializer):
    address = serializers.CharField(source="ip.address", read_only=True)

    class Meta:
        model = ThrottleState
        fields = ["id", "ip", "address", "provider", "level", "suspended_until", "backoff_seconds", "reason", "updated"]
        read_only_fields = fields
