"""Serializers of the core objects."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from .. import services
from ..choices import ApiKeyScope, Role
from ..models import ApiKey, AuditEntry, Job, Membership, Tenant
from ..permissions import Principal


class TenantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "slug", "name", "time_zone", "is_active", "created", "last_updated"]
        read_only_fields = ["created", "last_updated"]

    def validate(self, attrs):
        """The model's own rules (a real time zone), as the panel's form applies them."""
        tenant = Tenant(**{"time_zone": getattr(self.instance, "time_zone", "UTC"), **attrs})
        try:
            tenant.clean()
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None
        return attrs


class MembershipSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(write_only=True, required=False)
    password = serializers.CharField(write_only=True, required=False, style={"input_type": "password"})
    user_email = serializers.CharField(source="user.email", read_only=True)
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "tenant", "user", "user_email", "email", "password", "role", "created", "last_updated"]
        read_only_fields = ["user", "created", "last_updated"]

    def validate(self, attrs):
        if self.instance is None and not attrs.get("email"):
            raise serializers.ValidationError({"email": "The member's email address is required."})
        return attrs

    def create(self, validated_data):
        return services.add_member_by_email(
            validated_data["tenant"],
            validated_data["email"],
            validated_data.get("role", Role.VIEWER),  # the model's default when the request names none
            password=validated_data.get("password"),
            acting_user=self.context["request"].user,
        )

    def update(self, instance, validated_data):
        role = validated_data.get("role", instance.role)
        return services.change_role(instance, role, acting_user=self.context["request"].user)


class ApiKeySerializer(serializers.ModelSerializer):
    key = serializers.SerializerMethodField(help_text="The raw key, only in the response that created it.")
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id", "uuid", "tenant", "name", "prefix", "role", "scope", "expires", "allowed_networks",
            "last_used", "last_used_ip", "revoked", "created", "key",
        ]  # fmt: skip
        read_only_fields = ["prefix", "last_used", "last_used_ip", "revoked", "created"]

    def get_key(self, obj) -> str | None:
        return getattr(obj, "raw_key", None)

    def validate_allowed_networks(self, value):
        import ipaddress

        if not isinstance(value, list):
            raise serializers.ValidationError("A list of CIDR networks is expected.")
        for net in value:
            try:
                ipaddress.ip_network(str(net), strict=False)
            except ValueError:
                raise serializers.ValidationError(f"{net!r} is not an IP network.") from None
        return value

    def validate(self, attrs):
        role = attrs.get("role", Role.VIEWER)
        request = self.context["request"]
        principal = Principal.of(request.user)  # an API key's Principal, or a session's User
        tenant = getattr(request, "tenant", None)
        if tenant is not None and not principal.is_platform:
            mine = principal.roles.get(tenant.pk)
            if role == Role.OWNER and mine != Role.OWNER:
                raise serializers.ValidationError({"role": "Only an owner can create an owner key."})
        if principal.api_key is not None:
            self._within_creator_limits(principal.api_key, attrs)
        return attrs

    @staticmethod
    def _within_creator_limits(creator, attrs):
        """A key never mints a key that outlives it or reaches from more networks than it may."""
        import ipaddress

        errors = {}
        expires = attrs.get("expires")
        if creator.expires is not None and (expires is None or expires > creator.expires):
            errors["expires"] = (
                f"The key making this request expires at {creator.expires.isoformat()}: "
                "a key it creates must expire no later."
            )
        if creator.allowed_networks:
            mine = [ipaddress.ip_network(net, strict=False) for net in creator.allowed_networks]
            wanted = [ipaddress.ip_network(str(net), strict=False) for net in attrs.get("allowed_networks") or []]
            inside = all(any(n.version == m.version and n.subnet_of(m) for m in mine) for n in wanted)
            if not wanted or not inside:
                errors["allowed_networks"] = (
                    f"The key making this request is limited to {', '.join(creator.allowed_networks)}: "
                    "a key it creates must be too."
                )
        if errors:
            raise serializers.ValidationError(errors)

    def create(self, validated_data):
        request = self.context["request"]
        key, raw = services.create_api_key(
            tenant=validated_data["tenant"],
            name=validated_data["name"],
            role=validated_data.get("role", Role.VIEWER),
            scope=validated_data.get("scope", ApiKeyScope.ROLE),
            expires=validated_data.get("expires"),
            allowed_networks=validated_data.get("allowed_networks", []),
            acting_user=Principal.of(request.user).user,
        )
        key.raw_key = raw
        return key


class AuditEntrySerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = AuditEntry
        fields = [
            "seq", "time", "tenant", "actor_type", "actor_id", "actor_name", "request_id", "client_ip", "action",
            "object_type", "object_id", "object_repr", "prechange", "postchange", "message", "hash", "prev_hash",
        ]  # fmt: skip
        read_only_fields = fields


class JobSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "uuid", "name", "status", "progress", "log", "error", "result", "created", "started", "completed",
            "download_url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_download_url(self, obj) -> str | None:
        if not obj.result_file or obj.status != "completed":
            return None
        return f"/api/v1/jobs/{obj.uuid}/download/"
