"""Serializers of the campaigns API: lists, contacts, imports, campaigns. Writes go through the services."""

import json

from django.db import models
from django.db.models import Count, Q
from rest_framework import serializers

from ippools.models import IPPool

from ...choices import ImportMode, SubscriptionStatus
from ...models import Campaign, Contact, ContactImport, ContactList, Subscription
from .. import contacts as contact_services


class ContactListSerializer(serializers.ModelSerializer):
    subscribed_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = ContactList
        fields = ["id", "name", "description", "opt_in", "subscribed_count", "created", "last_updated"]
        read_only_fields = ["created", "last_updated"]

    def validate_name(self, value):
        value = value.strip()
        tenant = getattr(self.context["request"], "tenant", None)
        tenant_id = self.instance.tenant_id if self.instance is not None else getattr(tenant, "pk", None)
        others = ContactList.objects.filter(tenant_id=tenant_id, name=value)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise serializers.ValidationError(f"There is already a list named {value}.")
        return value


def with_subscribed_count(queryset):
    return queryset.annotate(
        subscribed_count=Count("subscriptions", filter=Q(subscriptions__status=SubscriptionStatus.SUBSCRIBED))
    )


class SubscriptionSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="contact_list_id")
    name = serializers.CharField(source="contact_list.name", read_only=True)
    status = serializers.ChoiceField(choices=SubscriptionStatus.choices, default=SubscriptionStatus.SUBSCRIBED)

    class Meta:
        model = Subscription
        fields = ["id", "name", "status", "created", "updated"]
        read_only_fields = ["created", "updated"]


class ContactPageSerializer(serializers.ListSerializer):
    """A page of contacts: which of them are suppressed is read for all of them at once (not per contact)."""

    def to_representation(self, data):
        contacts = list(data.all() if isinstance(data, models.manager.BaseManager) else data)
        self.context["_suppressed"] = contact_services.suppressed_among(contacts)
        return super().to_representation(contacts)


class ContactSerializer(serializers.ModelSerializer):
    lists = SubscriptionSerializer(source="subscriptions", many=True, required=False)
    suppressed = serializers.SerializerMethodField()

    class Meta:
        model = Contact
        fields = ["id", "email", "name", "attributes", "lists", "suppressed", "created", "last_updated"]
        read_only_fields = ["created", "last_updated"]
        extra_kwargs = {"email": {"validators": []}}
        list_serializer_class = ContactPageSerializer

    def get_suppressed(self, obj) -> bool:
        primed = self.context.get("_suppressed")  # read for the whole page by ContactPageSerializer
        if primed is not None:
            return (obj.tenant_id, obj.email) in primed
        return contact_services.is_suppressed(obj.tenant_id, obj.email)

    def validate_lists(self, value):
        tenant = self.context["request"].tenant
        lists = {}
        visible = ContactList.objects.restrict(self.context["request"].user, "view")
        for item in value:
            contact_list = visible.filter(pk=item["contact_list_id"], tenant=tenant).first()
            if contact_list is None:
                raise serializers.ValidationError(f"No list with id {item['contact_list_id']}.")
            lists[contact_list] = item.get("status", SubscriptionStatus.SUBSCRIBED)
        return lists

    def create(self, validated_data):
        request = self.context["request"]
        lists = validated_data.pop("subscriptions", {})
        contact = contact_services.create_contact(
            validated_data["tenant"],
            email=validated_data["email"],
            name=validated_data.get("name", ""),
            attributes=validated_data.get("attributes") or {},
            acting_user=request.user,
        )
        for contact_list, status in lists.items():
            contact_services.set_subscription(contact, contact_list, status, acting_user=request.user)
        return contact

    def update(self, instance, validated_data):
        request = self.context["request"]
        lists = validated_data.pop("subscriptions", None)
        changes = {k: v for k, v in validated_data.items() if k in ("email", "name", "attributes")}
        contact = contact_services.update_contact(instance, acting_user=request.user, **changes)
        for contact_list, status in (lists or {}).items():
            contact_services.set_subscription(contact, contact_list, status, acting_user=request.user)
        return contact


class ContactImportSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    list = serializers.IntegerField(source="contact_list_id", read_only=True)
    job = serializers.UUIDField(source="job.uuid", read_only=True, default=None)
    result = serializers.SerializerMethodField()
    report_url = serializers.SerializerMethodField()

    class Meta:
        model = ContactImport
        fields = [
            "id",
            "kind",
            "list",
            "mode",
            "email_column",
            "mapping",
            "file_name",
            "size",
            "state",
            "progress",
            "result",
            "error",
            "report_url",
            "job",
            "cancel_requested",
            "created",
            "started",
            "finished",
        ]
        read_only_fields = fields

    progress = serializers.IntegerField(source="percent", read_only=True)

    def get_result(self, obj):
        return obj.counts()

    def get_report_url(self, obj):
        return f"/api/v1/contact-imports/{obj.uuid}/report/" if obj.report_path else None


class ImportRequestSerializer(serializers.Serializer):
    """`POST /api/v1/lists/{id}/imports/` (multipart): the CSV `file`, `mode`, `email_column`, `mapping` (JSON)."""

    file = serializers.FileField()
    mode = serializers.ChoiceField(choices=ImportMode.values, default=ImportMode.ADD)
    email_column = serializers.CharField(default="email", max_length=200)
    mapping = serializers.JSONField(
        required=False, default=dict, help_text='Column → "name", a custom field name, or "" to skip.'
    )

    def validate_mapping(self, value):
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                raise serializers.ValidationError('Not JSON: give an object such as {"Town": "city"}.') from None
        if not isinstance(value, dict):
            raise serializers.ValidationError("The mapping is a JSON object of column → target.")
        return value


class CampaignSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    lists = serializers.PrimaryKeyRelatedField(many=True, queryset=ContactList.objects.all(), required=False)
    pool = serializers.CharField(
        source="ip_pool.name",
        required=False,
        allow_null=True,
        default=None,
        help_text="An IP pool's name; empty: your marketing pool.",
    )
    parent = serializers.UUIDField(source="parent.uuid", read_only=True, default=None)

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "subject",
            "reply_to",
            "html",
            "text",
            "lists",
            "pool",
            "send_at",
            "rate_per_hour",
            "finish_by",
            "track_opens",
            "track_clicks",
            "unsubscribe_suppresses",
            "tag",
            "state",
            "state_detail",
            "recipients",
            "gate_report",
            "parent",
            "created",
            "last_updated",
            "started_at",
            "paused_at",
            "finished_at",
        ]
        read_only_fields = [
            "state",
            "state_detail",
            "recipients",
            "gate_report",
            "parent",
            "created",
            "last_updated",
            "started_at",
            "paused_at",
            "finished_at",
        ]

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.CharField(
            source="from_header", max_length=400, help_text='"Name <addr@domain>" on one of your sending domains.'
        )
        if self.instance is not None and not isinstance(self.instance, list):
            fields["from"].required = False
        return fields

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if "ip_pool" in values:
            name = (values.pop("ip_pool") or {}).get("name")
            tenant = self.context["request"].tenant
            values["ip_pool"] = None
            if name:
                pool = IPPool.objects.usable_by(tenant).filter(name=name).first()
                if pool is None:
                    raise serializers.ValidationError({"pool": f"No IP pool named {name!r} is available to you."})
                values["ip_pool"] = pool
        return values


class TestSendSerializer(serializers.Serializer):
    to = serializers.ListField(child=serializers.CharField(max_length=320), min_length=1, max_length=5)
    contact = serializers.IntegerField(required=False, allow_null=True, help_text="Render with this contact's data.")
