"""Tables of the queues UI (django-tables2)."""

import django_tables2 as tables

from deliveryhub.tables import ActionsColumn, BadgeColumn, BoolColumn, PartialColumn

from .models import BounceRule, Message, Route


class MessageTable(tables.Table):
    created = tables.DateTimeColumn(format="Y-m-d H:i:s", linkify=True)
    rcpt_to = tables.Column(verbose_name="Recipient")
    subject = tables.Column(accessor="content__subject", verbose_name="Subject", orderable=False)
    sender = tables.Column(accessor="content__from_header", verbose_name="From", orderable=False)
    status = PartialColumn("queues/_message_state.html", accessor="status", verbose_name="State")
    attempts = tables.Column()
    tag = tables.Column()

    class Meta:
        model = Message
        fields = ["created", "rcpt_to", "subject", "sender", "status", "attempts", "tag"]
        attrs = {"id": "message-table", "class": "table table-sm table-hover align-middle mb-0"}
        order_by = ("-created",)

    def render_subject(self, value):
        return value[:60]

    def value_status(self, record):
        return f"{record.get_status_display()}: {record.status_detail}" if record.status_detail else record.status


class RouteTable(tables.Table):
    pattern = tables.Column(linkify=True)
    relay = tables.Column(accessor="host", verbose_name="Relay", order_by=("host", "port"))
    username = tables.Column(verbose_name="AUTH", default="—")
    tls_required = BoolColumn(verbose_name="TLS required")
    priority = tables.Column()
    enabled = BoolColumn()
    actions = ActionsColumn()

    class Meta:
        model = Route
        fields = ["pattern", "relay", "username", "tls_required", "priority", "enabled"]
        attrs = {"id": "route-table", "class": "table table-sm table-hover align-middle mb-0"}

    def render_relay(self, record):
        return f"{record.host}:{record.port}"

    value_relay = render_relay


class BounceRuleTable(tables.Table):
    priority = tables.Column(linkify=True)
    tenant = tables.Column(default="every tenant")
    code = tables.Column(default="any")
    enhanced = tables.Column(verbose_name="Enhanced", default="any")
    text = tables.Column(verbose_name="Text matches", default="any")
    category = tables.Column()
    action = BadgeColumn({"defer": "warning", "defer+slow": "warning", "bounce": "danger", "bounce+suppress": "danger",
                          "deliver": "success"})  # fmt: skip
    enabled = BoolColumn()
    actions = ActionsColumn()

    class Meta:
        model = BounceRule
        fields = ["priority", "tenant", "code", "enhanced", "text", "category", "action", "enabled", "description"]
        attrs = {"id": "bounce-rule-table", "class": "table table-sm table-hover align-middle mb-0"}

