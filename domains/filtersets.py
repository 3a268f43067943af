"""Filtersets of the domains app, shared by the API and the UI."""

import django_filters

from .models import DkimKey, SendingDomain


class SendingDomainFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")

    class Meta:
        model = SendingDomain
        fields = ["q", "status", "dkim_verified", "dmarc_policy", "tls_policy"]


class DkimKeyFilterSet(django_filters.FilterSet):
    class Meta:
        model = DkimKey
        fields = ["state", "algorithm", "selector"]
