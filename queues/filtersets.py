"""Filtersets of the queues app, shared by the API and the UI."""

import django_filters
from django import forms

from .choices import MessageStatus, RuleAction
from .models import BounceRule, Message, Route, Suppression

DATETIME_PICKER = forms.DateTimeInput(attrs={"type": "datetime-local"})  # the browser's date and time picker


class MessageFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=MessageStatus.choices)
    recipient = django_filters.CharFilter(field_name="rcpt_to", lookup_expr="icontains", label="Recipient")
    domain = django_filters.CharFilter(field_name="rcpt_domain", lookup_expr="iexact", label="Recipient domain")
    sending_domain = django_filters.CharFilter(field_name="sending_domain__name", lookup_expr="iexact")
    tag = django_filters.CharFilter(field_name="tag")
    after = django_filters.IsoDateTimeFilter(
        field_name="created", lookup_expr="gte", label="Created from (UTC)", widget=DATETIME_PICKER
    )
    before = django_filters.IsoDateTimeFilter(
        field_name="created", lookup_expr="lt", label="Created until (UTC)", widget=DATETIME_PICKER
    )

    class Meta:
        model = Message
        fields = ["status", "recipient", "domain", "sending_domain", "tag", "after", "before"]


class RouteFilterSet(django_filters.FilterSet):
    class Meta:
        model = Route
        fields = ["pattern", "host", "enabled"]


class SuppressionFilterSet(django_filters.FilterSet):
    address = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Suppression
        fields = ["address", "reason"]


class BounceRuleFilterSet(django_filters.FilterSet):
    action = django_filters.ChoiceFilter(choices=RuleAction.choices)
    category = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = BounceRule
        fields = ["action", "category", "enabled"]
