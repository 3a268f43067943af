"""Filtersets of events, webhooks, feedback reports and SMTP credentials (the events page filters exactly as the
events API does: `api.views.filter_events` makes the one decision)."""

import django_filters
from django import forms
from django.core.exceptions import ValidationError

from ..choices import EventType
from ..models import FeedbackReport, SmtpCredential, StreamEntry, Webhook
from .queries import filter_events

DATETIME_PICKER = forms.DateTimeInput(attrs={"type": "datetime-local"})


class EventFilterSet(django_filters.FilterSet):
    """The events API's filters as a form: type, time range, recipient, tag, message."""

    type = django_filters.ChoiceFilter(choices=EventType.choices, method="noop", label="Type")
    recipient = django_filters.CharFilter(method="noop", label="Recipient")
    tag = django_filters.CharFilter(method="noop", label="Tag")
    message = django_filters.UUIDFilter(method="noop", label="Message id")
    since = django_filters.IsoDateTimeFilter(method="noop", label="From (UTC)", widget=DATETIME_PICKER)
    until = django_filters.IsoDateTimeFilter(method="noop", label="Until (UTC)", widget=DATETIME_PICKER)

    class Meta:
        model = StreamEntry
        fields = ["type", "recipient", "tag", "message", "since", "until"]

    def noop(self, queryset, name, value):
        return queryset

    def filter_queryset(self, queryset):
        params = {}
        for name, value in self.form.cleaned_data.items():
            if value in (None, ""):
                continue
            params[name] = value.isoformat() if hasattr(value, "isoformat") else str(value)
        try:
            return filter_events(queryset, params, self.request.principal)
        except ValidationError:
            return queryset.none()


class WebhookFilterSet(django_filters.FilterSet):
    url = django_filters.CharFilter(lookup_expr="icontains", label="URL")

    class Meta:
        model = Webhook
        fields = ["url", "enabled"]


class FeedbackReportFilterSet(django_filters.FilterSet):
    matched = django_filters.BooleanFilter(field_name="message", lookup_expr="isnull", exclude=True, label="Matched")

    class Meta:
        model = FeedbackReport
        fields = ["matched", "feedback_type"]


class SmtpCredentialFilterSet(django_filters.FilterSet):
    username = django_filters.CharFilter(lookup_expr="icontains", label="User name")

    class Meta:
        model = SmtpCredential
        fields = ["username", "is_active"]
