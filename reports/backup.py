"""Configuration backup of the reports app: alert channels (webhook secrets still encrypted), alert rules (the shipped
defaults and everyone's own) and which channels each rule notifies. Alerts and roll-ups are history, not
configuration: a database backup carries them."""

from deliveryhub import backup

from .models import AlertChannel, AlertRule

backup.register(backup.Section(
    "reports.alert_channels", AlertChannel, order=80, key=None, fields=("tenant", "name", "kind", "target", "enabled"),
    refs={"tenant": "core.tenants"}, secrets=("secret",),
))  # fmt: skip
backup.register(backup.Section(
    "reports.alert_rules", AlertRule, order=81, key=None,
    fields=("tenant", "name", "description", "metric", "comparison", "threshold", "window_minutes", "min_volume",
            "group_by", "pool", "source_ip", "provider", "domain", "campaign", "severity", "reminder_minutes",
            "action", "enabled", "default_key"),
    refs={"tenant": "core.tenants", "pool": "ippools.pools", "domain": "domains.sending_domains",
          "campaign": "queues.campaigns"},
))  # fmt: skip
backup.register(backup.Section(
    "reports.alert_rule_channels", AlertRule.channels.through, order=82, key=("alertrule", "alertchannel"), fields=(),
    refs={"alertrule": "reports.alert_rules", "alertchannel": "reports.alert_channels"},
))  # fmt: skip
