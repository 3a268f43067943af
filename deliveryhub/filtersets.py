"""Filtersets of the core, shared by the API and the UI."""

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q
from django_filters.filters import QuerySetRequestMixin

from .choices import Action, Area
from .models import ApiKey, AuditEntry, Job, Membership, Tenant
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


class CharInFilter(django_filters.BaseInFilter, django_filters.CharFilter):
    """`name=a,b`: any of these values."""


class CommaSelectMultiple(forms.SelectMultiple):
    """A multi-select for a CharInFilter: its values (repeated, or one comma-separated parameter) travel as the
    `object_type=a,b` the API and the export form read."""

    def value_from_datadict(self, data, files, name):
        values = data.getlist(name) if hasattr(data, "getlist") else data.get(name)
        if isinstance(values, str):
            values = [values]
        return ",".join(v for value in values or [] for v in value.split(",") if v) or None

    def format_value(self, value):
        if isinstance(value, str):
            value = value.split(",")
        return [str(v) for v in value or [] if v]


class AuditEntryFilterSet(django_filters.FilterSet):
    after = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte", label="From (UTC)")
    before = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="lt", label="Until (UTC)")
    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="icontains", label="Actor")
    actor_type = django_filters.CharFilter(field_name="actor_type")
    action = django_filters.CharFilter(method="filter_action", label="Action")
    object_type = CharInFilter(field_name="object_type", label="Object types")
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


class TenantFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    is_active = django_filters.BooleanFilter(label="Active")

    class Meta:
        model = Tenant
        fields = ["q", "is_active"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(slug__icontains=value))


DATETIME_PICKER = forms.DateTimeInput(attrs={"type": "datetime-local"})  # the browser's date and time picker


class AuditLogFilterSet(AuditEntryFilterSet):
    """The audit log page's filters: the API's, as people use them. Dropdowns list the actors, actions and object
    types that occur in the entries shown (so nothing is typed blind), the times have date pickers."""

    actor = django_filters.ChoiceFilter(field_name="actor_name", label="Actor", choices=[])
    action = django_filters.ChoiceFilter(method="filter_action", label="Action", choices=[])
    object_type = CharInFilter(field_name="object_type", label="Object types", widget=CommaSelectMultiple)
    after = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte", label="From (UTC)",
                                             widget=DATETIME_PICKER)  # fmt: skip
    before = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="lt", label="Until (UTC)",
                                              widget=DATETIME_PICKER)  # fmt: skip

    class Meta(AuditEntryFilterSet.Meta):
        fields = ["after", "before", "actor", "action", "object_type", "request_id"]

    def __init__(self, *args, queryset, **kwargs):
        super().__init__(*args, queryset=queryset, **kwargs)
        distinct = queryset.order_by()
        actors = sorted(set(distinct.values_list("actor_name", flat=True)) - {""})
        actions = sorted(set(distinct.values_list("action", flat=True)))
        verbs = sorted({a.split(".")[0] + "." for a in actions if "." in a})
        types = sorted(set(distinct.values_list("object_type", flat=True)) - {""})
        self.filters["actor"].extra["choices"] = [(a, a) for a in actors]
        self.filters["action"].extra["choices"] = [(a, a) for a in actions] + [(v, f"{v}* (every {v[:-1]} verb)")
                                                                               for v in verbs]  # fmt: skip
        self.object_types = [(t, t) for t in types]

    @property
    def form(self):
        form = super().form
        form.fields["object_type"].widget.choices = self.object_types
        return form
