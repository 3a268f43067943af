"""Filtersets of the reports app, shared by the API and the UI."""

import django_filters

from .choices import AlertState, ChannelKind, DataRequestKind, DataRequestStatus, RuleMetric, Severity
from .models import Alert, AlertChannel, AlertRule, DataRequest, PurgeRun, RetentionPolicy


class DataRequestFilterSet(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=DataRequestKind.choices)
    status = django_filters.ChoiceFilter(choices=DataRequestStatus.choices)

    class Meta:
        model = DataRequest
        fields = ["kind", "status"]


class RetentionPolicyFilterSet(django_filters.FilterSet):
    class Meta:
        model = RetentionPolicy
        fields = ["kind"]


class PurgeRunFilterSet(django_filters.FilterSet):
    class Meta:
        model = PurgeRun
        fields = ["dry_run", "status"]


class AlertRuleFilterSet(django_filters.FilterSet):
    metric = django_filters.ChoiceFilter(choices=RuleMetric.choices)
    severity = django_filters.ChoiceFilter(choices=Severity.choices)

    class Meta:
        model = AlertRule
        fields = ["metric", "severity", "enabled"]


class AlertFilterSet(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=AlertState.choices)
    severity = django_filters.ChoiceFilter(choices=Severity.choices)
    started_after = django_filters.DateTimeFilter(field_name="started_at", lookup_expr="gte", label="Started after")

    class Meta:
        model = Alert
        fields = ["state", "severity", "rule", "started_after"]


class AlertChannelFilterSet(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=ChannelKind.choices)

    class Meta:
        model = AlertChannel
        fields = ["kind", "enabled"]
