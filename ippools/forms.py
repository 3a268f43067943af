"""Forms of the IP pools UI (superuser actions on platform objects)."""

from django import forms

from deliveryhub.models import Tenant

from .models import IPAddress, WarmupPlan
from .models.pools import MAX_WEIGHT


class AddMemberForm(forms.Form):
    ip = forms.ModelChoiceField(queryset=IPAddress.objects.all(), label="IP address")
    weight = forms.IntegerField(min_value=1, max_value=MAX_WEIGHT, initial=100)


class GrantForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.filter(is_active=True))


class StartWarmupForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=WarmupPlan.objects.all())
    day = forms.IntegerField(min_value=1, initial=1)


class PauseForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False)
