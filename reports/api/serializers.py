"""Serializers of the reports app: data-subject requests, retention policies, purge runs, compliance reports."""

from django.db import models
from rest_framework import serializers

from deliveryhub.privacy import retention_kinds

from .. import services
from ..choices import DataRequestKind, ReportFormat
from ..models import DataRequest, PurgeRun, PurgeRunItem, RetentionPolicy


class DataRequestSerializer(serializers.ModelSerializer):
    """`POST {"kind": "access"|"erasure", "subjects": ["a@example.com"], "note": "…"}` records and starts a request."""

    id = serializers.UUIDField(source="uuid", read_only=True)
    kind = serializers.ChoiceField(choices=DataRequestKind.choices)
    subjects = serializers.ListField(child=serializers.CharField(max_length=320), allow_empty=False, max_length=20)
    job = serializers.UUIDField(source="job.uuid", read_only=True, allow_null=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = DataRequest
        fields = [
            "id", "kind", "subjects", "note", "status", "requested_by_name", "created", "started", "completed",
            "duration", "result", "error", "archive_sha256", "archive_size", "job", "download_url",
        ]  # fmt: skip
        read_only_fields = [
            "status", "requested_by_name", "created", "started", "completed", "duration", "result", "error",
            "archive_sha256", "archive_size",
        ]  # fmt: skip

    def get_download_url(self, obj):
        return f"/api/v1/data-requests/{obj.uuid}/download/" if obj.has_archive else None

    def create(self, validated_data):
        return services.create_data_request(
            validated_data["tenant"], kind=validated_data["kind"], subjects=validated_data["subjects"],
            note=validated_data.get("note", ""), acting_user=self.context["request"].user,
        )  # fmt: skip


class RetentionPolicySerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=[])

    class Meta:
        model = RetentionPolicy
        fields = ["id", "kind", "days", "created", "last_updated"]
        read_only_fields = ["created", "last_updated"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(kind.name, kind.title) for kind in retention_kinds() if kind.per_tenant]

    def create(self, validated_data):
        return services.set_retention(validated_data["tenant"], validated_data["kind"], validated_data["days"],
                                      acting_user=self.context["request"].user)  # fmt: skip

    def update(self, instance, validated_data):
        return services.set_retention(instance.tenant, instance.kind, validated_data.get("days", instance.days),
                                      acting_user=self.context["request"].user)  # fmt: skip


class PurgeRunItemSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = PurgeRunItem
        fields = ["tenant", "kind", "days", "cutoff", "count"]


class PurgeRunPageSerializer(serializers.ListSerializer):
    """A page of purge runs: the items the caller may see are read for all of them in one query (not per run)."""

    def to_representation(self, data):
        runs = list(data.all() if isinstance(data, models.manager.BaseManager) else data)
        visible = PurgeRunItem.objects.restrict(self.context["request"].user)
        items = visible.filter(run__in=runs).select_related("tenant")
        by_run = {}
        for item in items:
            by_run.setdefault(item.run_id, []).append(item)
        self.context["_items"] = by_run
        return super().to_representation(runs)


class PurgeRunSerializer(serializers.ModelSerializer):
    """A purge run with the counts the caller may see; `POST {"dry_run": true}` runs one for the tenant now."""

    id = serializers.UUIDField(source="uuid", read_only=True)
    items = serializers.SerializerMethodField()

    class Meta:
        model = PurgeRun
        fields = ["id", "started", "finished", "dry_run", "status", "triggered_by", "total", "error", "items"]
        read_only_fields = ["started", "finished", "status", "triggered_by", "total", "error"]
        list_serializer_class = PurgeRunPageSerializer

    def get_items(self, obj):
        primed = self.context.get("_items")  # read for the whole page by PurgeRunPageSerializer
        if primed is not None:
            return PurgeRunItemSerializer(primed.get(obj.pk, []), many=True).data
        request = self.context["request"]
        items = PurgeRunItem.objects.restrict(request.user).filter(run=obj).select_related("tenant")
        return PurgeRunItemSerializer(items, many=True).data


class ComplianceReportSerializer(serializers.Serializer):
    """`POST {"format": "pdf"|"csv", "period_start": "2026-11-01", "period_end": "2026-12-01"}` → the report job."""

    format = serializers.ChoiceField(choices=ReportFormat.choices)
    period_start = serializers.DateField()
    period_end = serializers.DateField()

    def validate(self, attrs):
        if attrs["period_end"] <= attrs["period_start"]:
            raise serializers.ValidationError({"period_end": "The period ends after it starts."})
        return attrs
