"""Serializers of the domains app. Writes go through `domains.services`; private keys never leave here."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import services
from ..choices import DkimAlgorithm, RecordKind
from ..constants import RSA_ALLOWED_BITS, RSA_DEFAULT_BITS
from ..models import DkimKey, DnsCheck, SendingDomain
from ..plan import record_plan


class SendingDomainSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    unicode_name = serializers.CharField(read_only=True)
    return_path_host = serializers.CharField(read_only=True)
    verification_txt = serializers.CharField(read_only=True)
    can_send = serializers.SerializerMethodField()
    dkim_bits = serializers.ChoiceField(
        choices=RSA_ALLOWED_BITS, default=RSA_DEFAULT_BITS, write_only=True, help_text="Size of the first RSA key."
    )
    ed25519 = serializers.BooleanField(default=False, write_only=True, help_text="Also sign with Ed25519 (RFC 8463).")

    class Meta:
        model = SendingDomain
        fields = [
            "id", "uuid", "tenant", "name", "unicode_name", "return_path_subdomain", "return_path_host",
            "dmarc_policy", "dmarc_rua", "dmarc_ruf", "dmarc_alignment", "bulk_sender", "spf_all", "spf_extra_terms",
            "tls_policy", "mta_sts_mode", "tls_rpt_rua", "allow_unverified_sending", "feedback_address",
            "status", "status_changed",
            "dkim_verified", "ownership_verified", "verification_txt", "last_checked", "can_send", "created",
            "last_updated", "dkim_bits", "ed25519",
        ]  # fmt: skip
        read_only_fields = [
            "unicode_name", "status", "status_changed", "dkim_verified", "ownership_verified", "last_checked",
            "created", "last_updated",
        ]  # fmt: skip
        validators = []  # (tenant, name) uniqueness is checked by the model with a readable message

    @extend_schema_field(
        {"type": "object", "properties": {"allowed": {"type": "boolean"}, "reason": {"type": "string"}}}
    )
    def get_can_send(self, obj):
        allowed, reason = obj.can_send()
        return {"allowed": allowed, "reason": reason}

    def validate_name(self, value):
        if self.instance is not None and value.strip().rstrip(".").lower() not in (
            self.instance.name,
            self.instance.unicode_name,
        ):
            raise serializers.ValidationError("A domain's name cannot change: add a new domain instead.")
        return value

    def create(self, validated_data):
        tenant = validated_data.pop("tenant")
        name = validated_data.pop("name")
        bits = validated_data.pop("dkim_bits", RSA_DEFAULT_BITS)
        ed25519 = validated_data.pop("ed25519", False)
        return services.create_domain(
            tenant, name, dkim_bits=bits, ed25519=ed25519, acting_user=self.context["request"].user, **validated_data
        )

    def update(self, instance, validated_data):
        for field in ("name", "dkim_bits", "ed25519"):
            validated_data.pop(field, None)
        return services.update_domain(instance, acting_user=self.context["request"].user, **validated_data)


class DkimKeySerializer(serializers.ModelSerializer):
    dns_name = serializers.CharField(read_only=True)
    dns_value = serializers.CharField(source="dns_txt_value", read_only=True)
    dns_strings = serializers.ListField(source="dns_txt_strings", read_only=True)

    class Meta:
        model = DkimKey
        fields = [
            "id", "selector", "algorithm", "key_bits", "state", "public_key", "dns_name", "dns_value", "dns_strings",
            "created", "verified_at", "activated_at", "retiring_since", "retire_after", "retired_at",
        ]  # fmt: skip
        read_only_fields = fields


class DkimRotateSerializer(serializers.Serializer):
    algorithm = serializers.ChoiceField(choices=DkimAlgorithm.choices, default=DkimAlgorithm.RSA_SHA256)
    bits = serializers.ChoiceField(
        choices=RSA_ALLOWED_BITS,
        required=False,
        allow_null=True,
        help_text="RSA key size (2048 default; 3072 and 4096 allowed).",
    )

    def validate(self, attrs):
        if attrs["algorithm"] == DkimAlgorithm.ED25519_SHA256 and attrs.get("bits"):
            raise serializers.ValidationError({"bits": "Ed25519 keys have a fixed size: leave bits out."})
        return attrs


class DnsRecordSerializer(serializers.Serializer):
    """One record of the plan with what the DNS showed at the last check (null status: not checked yet)."""

    kind = serializers.CharField()
    subject = serializers.CharField()
    name = serializers.CharField()
    type = serializers.CharField()
    expected = serializers.CharField()
    why = serializers.CharField()
    required = serializers.BooleanField()
    publish = serializers.BooleanField()
    observed = serializers.CharField(allow_null=True)
    status = serializers.CharField(allow_null=True)
    explanation = serializers.CharField(allow_null=True)
    warnings = serializers.ListField(child=serializers.CharField())
    checked_at = serializers.DateTimeField(allow_null=True)


class DnsRecordsSerializer(serializers.Serializer):
    """The answer of `verify` and `dns-records`: the domain's state, its records and a zone-file snippet."""

    domain = serializers.CharField()
    status = serializers.CharField()
    can_send = serializers.DictField()
    last_checked = serializers.DateTimeField(allow_null=True)
    records = DnsRecordSerializer(many=True)
    zone_file = serializers.CharField()


def dns_records(domain, checks=None):
    """The plan merged with the stored checks, as dicts for `DnsRecordSerializer` (and the UI)."""
    checks = checks if checks is not None else DnsCheck.objects.filter(domain=domain)
    by_key = {(c.kind, c.subject): c for c in checks}
    rows = []
    for record in record_plan(domain):
        check = by_key.get((record.kind, record.subject))
        fresh = check is not None and check.expected == record.value
        rows.append({
            "kind": record.kind, "label": RecordKind(record.kind).label, "subject": record.subject,
            "name": record.name, "type": record.rdtype,
            "expected": record.value, "zone_value": record.zone_value, "why": record.why,
            "required": record.required, "publish": record.publish,
            "observed": check.observed if check else None,
            "status": check.status if fresh else None,
            "explanation": check.explanation if fresh else
            ("Not checked since the plan changed: check now." if check else "Not checked yet."),
            "warnings": check.warnings if fresh else [],
            "checked_at": check.checked_at if check else None,
            "badge": check.badge if fresh else "secondary",
        })  # fmt: skip
    return rows
