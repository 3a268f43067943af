"""Filtersets of the core, shared by the API and the UI."""

import django_filters

from .models import ApiKey, AuditEntry, Job, Membership


class AuditEntryFilterSet(django_filters.FilterSet):
    after = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte", label="From (UTC)")
    before = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="lt", label="Until (UTC)")
    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="icontains", label="Actor")
    actor_type = django_filters.CharFilter(field_name="actor_type")
    action = django_filters.CharFilter(method="filter_action", label="Action")
    object_type = django_filters.CharFilter(field_name="object_type")
    object_id = django_filters.CharFilter(field_name="object_id")
    request_id = django_filters.CharFilter(field_name="request_id")

    class Meta:
        model = AuditEntry
        fields = ["after", "before", "actor", "actor_type", "action", "object_type", "object_id", "request_id"]

    def filter_action(self, queryset, name, value):
        """`apikey` matches every apikey.* verb; an exact action matches itself."""
        if value.endswith(".") or "." not in value and value not in ("create", "update", "delete"):
            return queryset.filter(action__startswith=value.rstrip(".") + ".")
        return queryset.filter(action=value)


class MembershipFilterSet(django_filters.FilterSet):
    class Meta:
        model = Membership
        fields = ["role", "user"]


class ApiKeyFilterSet(django_filters.FilterSet):
    revoked = django_filters.BooleanFilter(field_name="revoked", lookup_expr="isnull", exclude=True)

    class Meta:
        model = ApiKey
        fields = ["role", "scope", "revoked"]


class JobFilterSet(django_filters.FilterSet):
    class Meta:
        model = Job
        fields = ["status", "name"]
