"""Filtersets of the reports app, shared by the API and the UI."""

import django_filters

from .choices import DataRequestKind, DataRequestStatus
from .models import DataRequest, PurgeRun, RetentionPolicy


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
