"""API serializers of events, webhooks and their deliveries."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from ...choices import EventType
from ...models import Webhook, WebhookDelivery
from .. import services


class WebhookSerializer(serializers.ModelSerializer):
    """A webhook: `url`, `events` (types; empty: every type), `enabled`, `description`. The create answer (and a
    rotation's) carries `secret` once."""

    id = serializers.UUIDField(source="uuid", read_only=True)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EventType.choices), required=False)
    state = serializers.CharField(read_only=True)

    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "enabled", "description", "state", "disabled_reason", "last_success_at",
                  "failing_since", "created", "last_updated"]  # fmt: skip
        read_only_fields = ["disabled_reason", "last_success_at", "failing_since", "created", "last_updated"]

    def _call(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except DjangoValidationError as exc:
            detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
            raise serializers.ValidationError(detail) from None

    def create(self, validated_data):
        request = self.context["request"]
        webhook, secret = self._call(services.create_webhook, validated_data.pop("tenant"), acting_user=request.user,
                                     **validated_data)  # fmt: skip
        webhook.new_secret = secret
        return webhook

    def update(self, instance, validated_data):
        return self._call(services.update_webhook, instance, acting_user=self.context["request"].user,
                          **validated_data)  # fmt: skip

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if getattr(instance, "new_secret", None):
            data["secret"] = instance.new_secret
        return data


class WebhookDeliverySerializer(serializers.ModelSerializer):
    webhook = serializers.UUIDField(source="webhook.uuid", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "webhook", "time", "kind", "batch_id", "first_position", "last_position", "event_count",
                  "attempt", "status_code", "succeeded", "will_retry", "duration", "error",
                  "response_excerpt"]  # fmt: skip
        read_only_fields = fields


class EventSerializer(serializers.Serializer):
    """One event (the same JSON a webhook receives)."""

    id = serializers.IntegerField()
    type = serializers.ChoiceField(choices=EventType.choices)
    time = serializers.DateTimeField()
    message = serializers.UUIDField()
    recipient = serializers.CharField()
    tag = serializers.CharField()
    metadata = serializers.JSONField()
    campaign = serializers.UUIDField(allow_null=True)
    data = serializers.JSONField()
