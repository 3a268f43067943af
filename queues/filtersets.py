"""Filtersets of the queues app, shared by the API and the UI."""

import django_filters

from .choices import MessageStatus
from .models import Message, Route, Suppression


class MessageFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=MessageStatus.choices)
    recipient = django_filters.CharFilter(field_name="rcpt_to", lookup_expr="icontains", label="Recipient")
    domain = django_filters.CharFilter(field_name="rcpt_domain", lookup_expr="iexact", label="Recipient domain")
    sending_domain = django_filters.CharFilter(field_name="sending_domain__name", lookup_expr="iexact")
    tag = django_filters.CharFilter(field_name="tag")
    after = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte", label="Created from (UTC)")
    before = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="lt", label="Created until (UTC)")

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
