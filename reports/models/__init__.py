"""
Models of the reports app, by concern: compliance (data-subject requests, retention, purge runs), roll-ups (the
monitoring counters) and alerts (channels, rules, alerts, notifications).
"""

from .alerts import Alert, AlertChannel, AlertNotification, AlertRule
from .compliance import DataRequest, PurgeRun, PurgeRunItem, RetentionPolicy, retention_kind_choices
from .rollups import (
    COUNTER_FIELDS,
    DIMENSION_FIELDS,
    HourRollup,
    MinuteRollup,
    ReplyHour,
    ReplyMinute,
    ReplyTotal,
    RollupCursor,
    RollupTotal,
)

__all__ = [
    "COUNTER_FIELDS",
    "DIMENSION_FIELDS",
    "Alert",
    "AlertChannel",
    "AlertNotification",
    "AlertRule",
    "DataRequest",
    "HourRollup",
    "MinuteRollup",
    "PurgeRun",
    "PurgeRunItem",
    "ReplyHour",
    "ReplyMinute",
    "ReplyTotal",
    "RetentionPolicy",
    "RollupCursor",
    "RollupTotal",
    "retention_kind_choices",
]
