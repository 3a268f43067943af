"""Filtersets of the core, shared by the API and the UI."""

import django_filters
from django.contrib.auth import get_user_model
from django_filters.filters import QuerySetRequestMixin

from .choices import Action, Area
from .models import ApiKey, AuditEntry, Job, Membership
from .permissions import Principal
from .querysets import RestrictedQuerySet


def visible_choices(queryset, actor):
    """The objects of `queryset` that `actor` may see: what a model-choice filter or field may offer and accept.

    Restricted models go through `restrict()`; users are those of the tenants whose members the actor may
    see; any other model offers nothing to a non-platform actor (fail closed).
    """
    principal = Principal.of(actor)
    if principal.is_platform:
        return queryset
    if isinstance(queryset, RestrictedQuerySet):
        return queryset.restrict(principal, Action.VIEW)
    if queryset.model is get_user_model():
        tenant_ids = principal.tenant_ids_allowing(Area.ACCESS, Action.VIEW)
        return queryset.filter(pk__in=Membership.objects.filter(tenant_id__in=tenant_ids).values("user_id"))
    return queryset.none()


def restrict_choices(filterset, actor):
    """Narrow every model-choice filter of `filterset` to what `actor` may see, and return the filterset.

    Another tenant's id then answers exactly like an id that does not exist ("Select a valid choice"), and
    choice lists (the browsable API's filter form, UI selects) name nothing of other tenants. The API's
    filter backend applies it to every filterset; UI views call it on the filtersets they build.
    """
    for filter_ in filterset.filters.values():
        if isinstance(filter_, QuerySetRequestMixin):
            queryset = filter_.get_queryset(filterset.request)
            if queryset is not None:
                filter_.queryset = visible_choices(queryset.all(), actor)
    return filterset


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
