"""Forms of the IP pools UI (superuser actions on platform objects)."""

from django import forms

from deliveryhub.models import Tenant

from .models import IPAddress, ThrottleRule, WarmupPlan
from .models.pools import MAX_WEIGHT


class AddMemberForm(forms.Form):
    ip = forms.ModelChoiceField(queryset=IPAddress.objects.all(), label="IP address")
    weight = forms.IntegerField(min_value=1, max_value=MAX_WEIGHT, initial=100)


class GrantForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.filter(is_active=True))


class StartWarmupForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=WarmupPlan.objects.all(), empty_label="Warm-up plan…")
    day = forms.IntegerField(
        min_value=1, initial=1, widget=forms.NumberInput(attrs={"title": "Start at day", "aria-label": "Start at day"})
    )


class PauseForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False)


class ThrottleRuleForm(forms.ModelForm):
    """A throttle rule as a superuser writes it: a platform rule (no tenant) or one tenant's."""

    class Meta:
        model = ThrottleRule
        fields = [
            "tenant", "ip", "pool", "provider", "max_connections", "max_messages_per_connection",
            "max_per_minute", "max_per_hour", "enabled", "description",
        ]  # fmt: skip
        labels = {"tenant": "Tenant (empty: every tenant's mail)", "ip": "Source IP", "pool": "or IP pool"}
