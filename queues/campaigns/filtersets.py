"""Filtersets of campaigns, contacts, lists and imports, shared by the API and the UI."""

import django_filters

from ..choices import CampaignState, SubscriptionStatus
from ..models import Campaign, Contact, ContactImport, ContactList


class ContactListFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = ContactList
        fields = ["name", "opt_in"]


class ContactFilterSet(django_filters.FilterSet):
    email = django_filters.CharFilter(lookup_expr="icontains", label="Address contains")
    list = django_filters.ModelChoiceFilter(
        field_name="subscriptions__contact_list", queryset=ContactList.objects.all(), label="List"
    )
    status = django_filters.ChoiceFilter(
        field_name="subscriptions__status", choices=SubscriptionStatus.choices, label="Status on a list"
    )

    class Meta:
        model = Contact
        fields = ["email", "list", "status"]


class ContactImportFilterSet(django_filters.FilterSet):
    class Meta:
        model = ContactImport
        fields = ["kind", "state", "contact_list"]


class CampaignFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    state = django_filters.MultipleChoiceFilter(choices=CampaignState.choices)

    class Meta:
        model = Campaign
        fields = ["name", "state", "tag"]
