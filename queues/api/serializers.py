"""Serializers of the queues API: message intake (structured or raw), message detail, routes, suppressions."""

import base64
import binascii
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from ..choices import MessagePriority
from ..models import DeliveryAttempt, Message, MessageEvent, Route, Suppression
from ..services import Submission

PRIORITY_NAMES = {"transactional": MessagePriority.TRANSACTIONAL, "marketing": MessagePriority.MARKETING}


class AttachmentSerializer(serializers.Serializer):
    filename = serializers.CharField(max_length=255)
    content_type = serializers.CharField(max_length=255, required=False, default="application/octet-stream")
    content = serializers.CharField(help_text="Base64", trim_whitespace=False)


class EnvelopeSerializer(serializers.Serializer):
    to = serializers.ListField(child=serializers.CharField(max_length=400, trim_whitespace=False), allow_empty=False)


class MessageSubmitSerializer(serializers.Serializer):
    """A message to send: structured fields (`from`, `to`, …) or `raw` MIME (base64 or text) with an `envelope`."""

    to = serializers.ListField(child=serializers.CharField(trim_whitespace=False), required=False, default=list)
    cc = serializers.ListField(child=serializers.CharField(trim_whitespace=False), required=False, default=list)
    bcc = serializers.ListField(child=serializers.CharField(trim_whitespace=False), required=False, default=list)
    reply_to = serializers.ListField(child=serializers.CharField(trim_whitespace=False), required=False, default=list)
    subject = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    text = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    html = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    headers = serializers.DictField(child=serializers.CharField(trim_whitespace=False, allow_blank=True),
                                    required=False, default=dict)  # fmt: skip
    attachments = AttachmentSerializer(many=True, required=False, default=list)
    raw = serializers.CharField(required=False, trim_whitespace=False, help_text="RFC 5322 message, text or base64")
    raw_encoding = serializers.ChoiceField(choices=["text", "base64"], required=False, default="text")
    envelope = EnvelopeSerializer(required=False)
    tag = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    metadata = serializers.DictField(required=False, default=dict)
    ip_pool = serializers.CharField(required=False, allow_null=True, default=None)
    send_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Not before this time; at most DELIVERY_MAX_SCHEDULE_SECONDS ahead",
    )
    priority = serializers.ChoiceField(choices=list(PRIORITY_NAMES), required=False, default="transactional")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.CharField(required=False, trim_whitespace=False)  # `from` is a keyword
        return fields

    def validate_send_at(self, value):
        limit = settings.DELIVERY_MAX_SCHEDULE_SECONDS
        if value is not None and value > timezone.now() + timedelta(seconds=limit):
            raise serializers.ValidationError(f"A message can be scheduled at most {limit / 86400:g} days ahead.")
        return value

    def validate(self, attrs):
        raw = attrs.get("raw")
        if raw is not None:
            if attrs.get("from") or attrs.get("to") or attrs.get("cc") or attrs.get("bcc"):
                raise serializers.ValidationError(
                    {"raw": "Send either raw MIME with an envelope or structured fields."}
                )
            if not attrs.get("envelope"):
                raise serializers.ValidationError({"envelope": "Raw MIME needs an envelope with its recipients."})
            if attrs["raw_encoding"] == "base64":
                try:
                    attrs["raw"] = base64.b64decode(raw, validate=True)
                except (binascii.Error, ValueError):
                    raise serializers.ValidationError({"raw": "Not valid base64."}) from None
            else:
                attrs["raw"] = raw.encode("utf-8")
        else:
            if not attrs.get("from"):
                raise serializers.ValidationError({"from": "This field is required."})
            if not (attrs.get("to") or attrs.get("cc") or attrs.get("bcc")):
                raise serializers.ValidationError({"to": "At least one recipient is required."})
        return attrs

    def to_submission(self):
        data = self.validated_data
        return Submission(
            sender=data.get("from", ""),
            to=data["to"],
            cc=data["cc"],
            bcc=data["bcc"],
            reply_to=data["reply_to"],
            subject=data["subject"],
            text=data["text"],
            html=data["html"],
            headers=data["headers"],
            attachments=[dict(a) for a in data["attachments"]],
            raw=data.get("raw"),
            envelope_to=(data.get("envelope") or {}).get("to", []),
            tag=data["tag"],
            metadata=data["metadata"],
            ip_pool=data["ip_pool"],
            send_at=data["send_at"],
            priority=PRIORITY_NAMES[data["priority"]],
        )


class MessageBatchSerializer(serializers.Serializer):
    """Several messages in one request (bulk intake): all are accepted or none."""

    messages = MessageSubmitSerializer(many=True, allow_empty=False)


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = [
            "time", "status", "node", "source_ip", "mx_host", "tls_version", "tls_verified", "code",
            "enhanced_code", "text", "duration", "category", "action",
        ]  # fmt: skip
        read_only_fields = fields


class MessageEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = MessageEvent
        fields = ["time", "kind", "detail", "data"]
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    sending_domain = serializers.CharField(source="sending_domain.name", read_only=True)
    ip_pool = serializers.CharField(source="ip_pool.name", read_only=True, default=None)
    priority = serializers.SerializerMethodField()
    subject = serializers.CharField(source="content.subject", read_only=True)
    from_header = serializers.CharField(source="content.from_header", read_only=True)

    class Meta:
        model = Message
        fields = [
            "id", "status", "status_detail", "mail_from", "rcpt_to", "rcpt_domain", "sending_domain", "ip_pool",
            "priority", "subject", "from_header", "tag", "metadata", "attempts", "send_at", "released_at",
            "next_attempt_at", "first_attempt_at", "last_attempt_at", "delivered_at", "created", "updated",
        ]  # fmt: skip
        read_only_fields = fields

    def get_priority(self, obj):
        return MessagePriority(obj.priority).name.lower()


class MessageDetailSerializer(MessageSerializer):
    attempts_log = DeliveryAttemptSerializer(source="delivery_attempts", many=True, read_only=True)
    events = MessageEventSerializer(many=True, read_only=True)

    class Meta(MessageSerializer.Meta):
        fields = [*MessageSerializer.Meta.fields, "attempts_log", "events"]
        read_only_fields = fields


class RouteSerializer(serializers.ModelSerializer):
    password = serializers.CharField(
        write_only=True, required=False, allow_blank=True, style={"input_type": "password"}
    )
    has_password = serializers.SerializerMethodField()

    class Meta:
        model = Route
        fields = [
            "id", "pattern", "host", "port", "username", "password", "has_password", "tls_required", "priority",
            "enabled", "created", "last_updated",
        ]  # fmt: skip
        read_only_fields = ["created", "last_updated"]

    def get_has_password(self, obj):
        return bool(obj.password)

    def validate(self, attrs):
        instance = Route(**{**({f.name: getattr(self.instance, f.name) for f in Route._meta.concrete_fields}
                               if self.instance else {}), **attrs})  # fmt: skip
        instance.clean()
        attrs["pattern"], attrs["host"] = instance.pattern, instance.host
        return attrs


class SuppressionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Suppression
        fields = ["id", "address", "reason", "source", "created"]
        read_only_fields = ["created"]
