"""Serializers of the queues API: message intake (structured or raw), message detail, routes, suppressions."""

import base64
import binascii

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import ProhibitNullCharactersValidator
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.serializers import as_serializer_error
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from .. import services
from ..choices import MessagePriority
from ..constants import TAG_MAX
from ..models import DeliveryAttempt, Message, MessageEvent, Route, SmtpCredential, Suppression
from ..services import Submission

PRIORITY_NAMES = {"transactional": MessagePriority.TRANSACTIONAL, "marketing": MessagePriority.MARKETING}


class Text(serializers.CharField):
    """A string taken as it is (not trimmed). What it may contain — NUL, surrogates, CR/LF and other control
    characters — is the intake service's to check, once, for every caller (DRF's own surrogate check walks the
    text character by character in Python: a fifth of intake's time for a 5 KB body)."""

    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=False, **kwargs)
        self.validators = [v for v in self.validators if not isinstance(v, _CONTENT_VALIDATORS)]


_CONTENT_VALIDATORS = (ProhibitNullCharactersValidator, ProhibitSurrogateCharactersValidator)


class AttachmentSerializer(serializers.Serializer):
    filename = Text()
    content_type = Text(required=False, default="application/octet-stream")
    content = Text(help_text="Base64", allow_blank=True)


class EnvelopeSerializer(serializers.Serializer):
    to = serializers.ListField(child=Text())


def _addresses():
    return serializers.ListField(child=Text(), required=False, default=list)


class MessageSubmitSerializer(serializers.Serializer):
    """A message to send: structured fields (`from`, `to`, …) or `raw` MIME (text or base64) with an `envelope`.

    This checks the shape only (types, known choices, base64 and date syntax); every rule about the content —
    addresses, IDN, header injection, sizes, limits, which fields go together — is the intake service's
    (`queues.services.prepare`), which the SMTP listener and campaigns go through too.
    """

    to = _addresses()
    cc = _addresses()
    bcc = _addresses()
    reply_to = _addresses()
    subject = Text(required=False, allow_blank=True, default="")
    text = Text(required=False, allow_blank=True, default="")
    html = Text(required=False, allow_blank=True, default="")
    headers = serializers.DictField(child=Text(allow_blank=True), required=False, default=dict)
    attachments = AttachmentSerializer(many=True, required=False, default=list)
    raw = Text(required=False, help_text="RFC 5322 message, text or base64")
    raw_encoding = serializers.ChoiceField(choices=["text", "base64"], required=False, default="text")
    envelope = EnvelopeSerializer(required=False)
    tag = Text(required=False, allow_blank=True, default="", help_text=f"At most {TAG_MAX} characters")
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
        fields["from"] = Text(required=False)  # `from` is a keyword
        return fields

    def run_validation(self, data=empty):
        """A message whose every field has its declared type takes a direct path (`_direct_shape`: DRF's
        field-by-field run cost a quarter of a 500-message batch, and building this serializer's fields a tenth of
        a single-message request); anything else goes through DRF's, for its errors. Both give the same data
        (tests/queues/test_api.py compares them)."""
        direct = _direct_shape(data)
        if direct is None:
            return super().run_validation(data)
        try:
            return self.validate(direct)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(detail=as_serializer_error(exc)) from None

    def validate(self, attrs):
        if attrs.get("raw") is not None and attrs["raw_encoding"] == "base64":
            try:
                attrs["raw"] = base64.b64decode(attrs["raw"], validate=True)
            except (binascii.Error, ValueError):
                raise serializers.ValidationError({"raw": "Not valid base64."}) from None
        return attrs

    def to_submission(self):
        return submission_from(self.validated_data)


_ADDRESS_LISTS = ("to", "cc", "bcc", "reply_to")
_TEXTS = ("subject", "text", "html", "tag")  # may be blank; "" when absent
_ATTACHMENT_TYPE = "application/octet-stream"
_SEND_AT = serializers.DateTimeField()  # parses send_at as the declared field does


def _strings(value):
    return isinstance(value, list) and all(isinstance(item, str) and item for item in value)


def _direct_shape(data):
    """What `MessageSubmitSerializer`'s fields make of `data` when every field present has exactly its declared
    type (strings as strings, lists of non-empty strings, …); None for anything else, which DRF then answers."""
    if not isinstance(data, dict):
        return None
    out = {}
    for name in _ADDRESS_LISTS:
        value = data.get(name, [])
        if not _strings(value):
            return None
        out[name] = list(value)
    for name in _TEXTS:
        value = data.get(name, "")
        if not isinstance(value, str):
            return None
        out[name] = value
    for name in ("from", "raw"):  # optional, not blank
        if name in data:
            if not isinstance(data[name], str) or not data[name]:
                return None
            out[name] = data[name]
    headers, metadata = data.get("headers", {}), data.get("metadata", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        return None
    if not isinstance(metadata, dict):
        return None
    out["headers"], out["metadata"] = dict(headers), dict(metadata)
    attachments = data.get("attachments", [])
    if not isinstance(attachments, list):
        return None
    out["attachments"] = []
    for item in attachments:
        if not isinstance(item, dict):
            return None
        filename, content = item.get("filename"), item.get("content")
        content_type = item.get("content_type", _ATTACHMENT_TYPE)
        if not (isinstance(filename, str) and filename and isinstance(content, str)):
            return None
        if not isinstance(content_type, str) or not content_type:
            return None
        out["attachments"].append({"filename": filename, "content_type": content_type, "content": content})
    if "envelope" in data:
        envelope = data["envelope"]
        if not isinstance(envelope, dict) or not _strings(envelope.get("to")):
            return None
        out["envelope"] = {"to": list(envelope["to"])}
    raw_encoding, priority = data.get("raw_encoding", "text"), data.get("priority", "transactional")
    if raw_encoding not in ("text", "base64") or not isinstance(priority, str) or priority not in PRIORITY_NAMES:
        return None
    out["raw_encoding"], out["priority"] = raw_encoding, priority
    ip_pool = data.get("ip_pool")  # a CharField as DRF has it (trimmed, no NUL or surrogates)
    plain_name = isinstance(ip_pool, str) and ip_pool.isascii() and ip_pool == ip_pool.strip() != ""
    if ip_pool is not None and not (plain_name and "\x00" not in ip_pool):
        return None
    out["ip_pool"] = ip_pool
    send_at = data.get("send_at")
    if send_at is not None:
        try:
            send_at = _SEND_AT.to_internal_value(send_at)
        except serializers.ValidationError:
            return None
    out["send_at"] = send_at
    return out


def flat_errors(detail, prefix=""):
    """DRF's nested errors keyed as the intake service keys its own: `messages[1].to`, `attachments[0].content`."""
    if isinstance(detail, dict):  # field names, or item indexes (a list's errors: {1: {...}})
        out = {}
        for key, value in detail.items():
            out.update(flat_errors(value, f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}" if prefix
                                   else key))  # fmt: skip
        return out
    if isinstance(detail, list) and any(isinstance(item, dict) for item in detail):
        out = {}
        for index, item in enumerate(detail):
            if item:
                out.update(flat_errors(item, f"{prefix}[{index}]"))
        return out
    return {prefix or "non_field_errors": detail}


def submission_from(data):
    """A `Submission` from the validated data of a `MessageSubmitSerializer`."""
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

    def to_submissions(self):
        return [submission_from(item) for item in self.validated_data["messages"]]


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = [
            "time", "status", "node", "source_ip", "mx_host", "tls_version", "tls_verified", "code",
            "enhanced_code", "text", "duration", "category", "action", "possible_duplicate",
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

    def get_priority(self, obj) -> str:
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

    def get_has_password(self, obj) -> bool:
        return bool(obj.password)

    def validate(self, attrs):
        instance = Route(**{**({f.name: getattr(self.instance, f.name) for f in Route._meta.concrete_fields}
                               if self.instance else {}), **attrs})  # fmt: skip
        instance.clean()
        attrs["pattern"], attrs["host"] = instance.pattern, instance.host
        return attrs


class SuppressionSerializer(serializers.ModelSerializer):
    campaign = serializers.UUIDField(source="campaign.uuid", read_only=True, default=None)
    message = serializers.UUIDField(source="message.uuid", read_only=True, default=None)

    class Meta:
        model = Suppression
        fields = ["id", "address", "reason", "source", "campaign", "message", "expires", "created"]
        read_only_fields = ["created"]


class SmtpCredentialSerializer(serializers.ModelSerializer):
    """An SMTP submission login: `name` is the user name; the create (and rotate) answer carries `password` once."""

    name = serializers.CharField(source="username", max_length=150)
    allowed_from_domains = serializers.ListField(child=serializers.CharField(max_length=255), required=False)
    allowed_networks = serializers.ListField(child=serializers.CharField(max_length=50), required=False)

    class Meta:
        model = SmtpCredential
        fields = ["id", "name", "username", "description", "allowed_from_domains", "allowed_networks", "is_active",
                  "last_used", "created", "last_updated"]  # fmt: skip
        read_only_fields = ["username", "is_active", "last_used", "created", "last_updated"]

    def validate_name(self, value):
        if self.instance is not None and value != self.instance.username:
            raise serializers.ValidationError("The user name cannot change: create another credential.")
        return value

    def _call(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except DjangoValidationError as exc:
            detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
            raise serializers.ValidationError(detail) from None

    def create(self, validated_data):
        credential, password = self._call(
            services.create_smtp_credential, validated_data["tenant"], validated_data["username"],
            description=validated_data.get("description", ""),
            allowed_from_domains=validated_data.get("allowed_from_domains", []),
            allowed_networks=validated_data.get("allowed_networks", []),
            acting_user=self.context["request"].user,
        )  # fmt: skip
        credential.new_password = password
        return credential

    def update(self, instance, validated_data):
        validated_data.pop("username", None)
        for name, value in validated_data.items():
            setattr(instance, name, value)

        def save():
            instance.full_clean(exclude=["tenant", "password_digest"])
            instance.save()
            return instance

        return self._call(save)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if getattr(instance, "new_password", None):
            data["password"] = instance.new_password
        return data
