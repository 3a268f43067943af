"""Tables of the reports UI (django-tables2): alert rules, alerts, channels."""

import django_tables2 as tables
from django.utils.html import format_html

from deliveryhub.tables import ActionsColumn, BadgeColumn, BoolColumn

from .choices import ALERT_STATE_BADGES, SEVERITY_BADGES
from .models import Alert, AlertChannel, AlertRule


class AlertRuleTable(tables.Table):
    name = tables.Column(linkify=True)
    tenant = tables.Column(default="platform (every tenant)")
    condition = tables.Column(accessor="pk", verbose_name="Condition", orderable=False)
    severity = BadgeColumn(SEVERITY_BADGES)
    channels = tables.Column(accessor="pk", verbose_name="Channels", orderable=False)
    action = tables.Column(verbose_name="Action", default="notify")
    enabled = BoolColumn()
    firing = tables.Column(verbose_name="Firing", orderable=False, accessor="firing_count")
    actions = ActionsColumn()

    class Meta:
        model = AlertRule
        fields = ["name", "tenant", "condition", "severity", "channels", "action", "enabled", "firing"]
        attrs = {"id": "alert-rule-table", "class": "table table-sm table-hover align-middle mb-0"}

    def render_condition(self, record):
        return record.condition_text()

    value_condition = render_condition

    def render_channels(self, record):
        return ", ".join(channel.name for channel in record.channels.all()) or "—"

    value_channels = render_channels

    def render_action(self, record):
        return record.get_action_display() if record.action else "notify"

    def render_firing(self, value):
        return format_html('<span class="badge text-bg-danger">{}</span>', value) if value else "0"

    def value_firing(self, value):
        return value


class AlertTable(tables.Table):
    started_at = tables.DateTimeColumn(format="Y-m-d H:i", verbose_name="Started (UTC)", linkify=True)
    rule = tables.Column()
    key_label = tables.Column(verbose_name="About", default="everything in scope")
    severity = BadgeColumn(SEVERITY_BADGES)
    state = BadgeColumn(ALERT_STATE_BADGES)
    value = tables.Column()
    detail = tables.Column()
    resolved_at = tables.DateTimeColumn(format="Y-m-d H:i", verbose_name="Resolved (UTC)")
    acknowledged_by_name = tables.Column(verbose_name="Acknowledged by", default="")

    class Meta:
        model = Alert
        fields = ["started_at", "rule", "key_label", "severity", "state", "value", "detail", "resolved_at",
                  "acknowledged_by_name", "notifications"]  # fmt: skip
        attrs = {"id": "alert-table", "class": "table table-sm table-hover align-middle mb-0"}

    def render_value(self, record, value):
        if value is None:
            return "—"
        return f"{value * 100:.3g} %" if record.rule.kind == "rate" else f"{value:g}"

    value_value = render_value


class AlertChannelTable(tables.Table):
    name = tables.Column()
    tenant = tables.Column(default="platform")
    kind = tables.Column()
    target = tables.Column()
    enabled = BoolColumn()
    last_error = tables.Column(verbose_name="Last error", default="")
    actions = ActionsColumn(template_name="reports/alerts/_channel_actions.html")

    class Meta:
        model = AlertChannel
        fields = ["name", "tenant", "kind", "target", "enabled", "last_error"]
        attrs = {"id": "alert-channel-table", "class": "table table-sm table-hover align-middle mb-0"}
