"""Filtersets shared by the API and the UI lists."""

import django_filters
from django import forms
from django.db.models import Q

from .choices import IPState, ListingStatus, PoolPurpose
from .models import (
    BlocklistCheck,
    BlocklistZone,
    DeliveryNode,
    IPAddress,
    IPPool,
    IPPoolGrant,
    IPPoolMember,
    ThrottleRule,
    ThrottleState,
    WarmupPlan,
)


class DeliveryNodeFilterSet(django_filters.FilterSet):
    class Meta:
        model = DeliveryNode
        fields = ["name", "region", "status"]


class IPAddressFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    state = django_filters.MultipleChoiceFilter(
        choices=IPState.choices, widget=forms.SelectMultiple(attrs={"size": len(IPState.choices)})
    )
    node = django_filters.ModelChoiceFilter(queryset=DeliveryNode.objects.all())
    pool = django_filters.ModelChoiceFilter(  # a model choice, so that another tenant's pool is an invalid choice
        field_name="memberships__pool", queryset=IPPool.objects.all(), distinct=True
    )
    listed = django_filters.BooleanFilter(
        widget=forms.Select(choices=[("", "Any"), ("true", "Listed"), ("false", "Not listed")])
    )

    class Meta:
        model = IPAddress
        fields = ["q", "state", "node", "pool", "listed"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(address__icontains=value) | Q(ehlo_hostname__icontains=value))


class IPPoolFilterSet(django_filters.FilterSet):
    purpose = django_filters.ChoiceFilter(choices=PoolPurpose.choices)
    shared = django_filters.BooleanFilter(field_name="tenant", lookup_expr="isnull")

    class Meta:
        model = IPPool
        fields = ["name", "purpose", "shared", "tenant", "region"]


class IPPoolMemberFilterSet(django_filters.FilterSet):
    class Meta:
        model = IPPoolMember
        fields = ["pool", "ip", "paused"]


class IPPoolGrantFilterSet(django_filters.FilterSet):
    class Meta:
        model = IPPoolGrant
        fields = ["pool", "tenant"]


class WarmupPlanFilterSet(django_filters.FilterSet):
    class Meta:
        model = WarmupPlan
        fields = ["name", "is_builtin"]


class BlocklistCheckFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(
        choices=ListingStatus.choices, widget=forms.SelectMultiple(attrs={"size": len(ListingStatus.choices)})
    )
    address = django_filters.CharFilter(field_name="ip__address")

    class Meta:
        model = BlocklistCheck
        fields = ["ip", "address", "domain", "zone", "status"]


class BlocklistZoneFilterSet(django_filters.FilterSet):
    zone = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = BlocklistZone
        fields = ["zone", "kind", "enabled"]


class ThrottleRuleFilterSet(django_filters.FilterSet):
    class Meta:
        model = ThrottleRule
        fields = ["ip", "pool", "provider", "enabled"]


class ThrottleStateFilterSet(django_filters.FilterSet):
    class Meta:
        model = ThrottleState
        fields = ["ip", "provider", "level"]
