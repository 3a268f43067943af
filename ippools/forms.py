"""Forms of the IP pools UI: the same fields, and through the models' `clean()` the same validation, as the API."""

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS

from deliveryhub.models import Tenant

from .choices import Provider
from .constants import TOTAL
from .models import BlocklistZone, DeliveryNode, IPAddress, IPPool, ThrottleRule, WarmupPlan
from .models.pools import MAX_WEIGHT


class DeliveryNodeForm(forms.ModelForm):
    class Meta:
        model = DeliveryNode
        fields = ["name", "region", "hostname", "status"]
        help_texts = {"name": "The DELIVERYHUB_NODE its workers run with; they send only from this node's IPs."}


class IPAddressForm(forms.ModelForm):
    """An IP's identity and placement; its warm-up is started and stopped with the IP's own buttons."""

    class Meta:
        model = IPAddress
        fields = ["address", "node", "ehlo_hostname", "state", "notes"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance.warmup_plan_id:  # warming needs a plan: start a warm-up from the IP's page
            self.fields["state"].choices = [c for c in self.fields["state"].choices if c[0] != "warming"]


class IPPoolForm(forms.ModelForm):
    class Meta:
        model = IPPool
        fields = ["name", "description", "purpose", "tenant", "all_tenants", "region", "pause_on_listing"]
        labels = {"tenant": "Dedicated to tenant", "all_tenants": "Open to every tenant"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = Tenant.objects.filter(is_active=True)
        self.fields["tenant"].empty_label = "— shared pool —"


class AddMemberForm(forms.Form):
    ip = forms.ModelChoiceField(queryset=IPAddress.objects.select_related("node"), label="IP address")
    weight = forms.IntegerField(
        min_value=1, max_value=MAX_WEIGHT, initial=100, help_text=f"Its share of the pool's mail (1–{MAX_WEIGHT})."
    )


class WeightForm(forms.Form):
    weight = forms.IntegerField(min_value=1, max_value=MAX_WEIGHT)


class GrantForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.filter(is_active=True))


class StartWarmupForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=WarmupPlan.objects.all(), empty_label="Warm-up plan…")
    day = forms.IntegerField(
        min_value=1, initial=1, widget=forms.NumberInput(attrs={"title": "Start at day", "aria-label": "Start at day"})
    )


class PauseForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False)


class WarmupPlanForm(forms.ModelForm):
    class Meta:
        model = WarmupPlan
        fields = ["name", "description", "max_bounce_rate", "max_deferral_rate", "max_complaint_rate", "step_back_days"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}
        help_texts = {
            "max_bounce_rate": "A day over it holds the warm-up (0.05 = 5%); far over it steps back.",
            "step_back_days": "Days to go back after a day far over a threshold.",
        }

    def add_error(self, field, error):
        """The day table is not a field of this form: what the model says about `days` is said above the form."""
        if isinstance(error, forms.ValidationError) and hasattr(error, "error_dict") and "days" in error.error_dict:
            error = forms.ValidationError(
                {NON_FIELD_ERRORS if key == "days" else key: value for key, value in error.error_dict.items()}
            )
        super().add_error(field, error)


DAY_KEYS = (TOTAL, *Provider.values, "hourly")  # the columns of the day table


class WarmupDayForm(forms.Form):
    """One row of a plan's day table: the day's caps (empty: not capped)."""

    total = forms.IntegerField(min_value=0, required=False)
    google = forms.IntegerField(min_value=0, required=False)
    microsoft = forms.IntegerField(min_value=0, required=False)
    yahoo = forms.IntegerField(min_value=0, required=False)
    other = forms.IntegerField(min_value=0, required=False)
    hourly = forms.IntegerField(min_value=0, required=False, help_text="Per provider and hour")

    def day(self):
        """The row as a plan day ({key: cap}), or None for a blank row."""
        data = {key: self.cleaned_data.get(key) for key in DAY_KEYS if self.cleaned_data.get(key) is not None}
        return data or None


WarmupDayFormSet = forms.formset_factory(WarmupDayForm, extra=2, can_delete=True)


def day_formset(plan, data=None):
    """The plan's day table: its days to edit, or the posted table (read as it is: every row a day, blank rows
    dropped, not compared with the days it was rendered from)."""
    if data is not None:
        return WarmupDayFormSet(data, prefix="day")
    initial = [{key: day.get(key) for key in DAY_KEYS} for day in plan.days or []]
    return WarmupDayFormSet(initial=initial, prefix="day")


class BlocklistZoneForm(forms.ModelForm):
    codes = forms.JSONField(required=False, initial=dict, widget=forms.Textarea(attrs={"rows": 3}),
                            help_text='What the answers mean, e.g. {"127.0.0.2": "listed for spam"}.')  # fmt: skip

    class Meta:
        model = BlocklistZone
        fields = ["zone", "kind", "description", "codes", "enabled"]

    def clean_codes(self):
        codes = self.cleaned_data.get("codes") or {}
        if not isinstance(codes, dict) or not all(isinstance(v, str) for v in codes.values()):
            raise forms.ValidationError('Give an object of answers and their meanings: {"127.0.0.2": "spam"}.')
        return codes


class ThrottleRuleForm(forms.ModelForm):
    """A throttle rule: a platform rule (no tenant) or one tenant's (operators choose; a tenant admin writes their
    own tenant's, naming its IPs or pools)."""

    class Meta:
        model = ThrottleRule
        fields = [
            "tenant", "ip", "pool", "provider", "max_connections", "max_messages_per_connection",
            "max_per_minute", "max_per_hour", "enabled", "description",
        ]  # fmt: skip
        labels = {"tenant": "Tenant (empty: every tenant's mail)", "ip": "Source IP", "pool": "or IP pool"}

    def __init__(self, *args, tenant=None, **kwargs):
        super().__init__(*args, **kwargs)
        if tenant is not None:  # a tenant admin: their own tenant's rule, over the IPs and pools it may use
            del self.fields["tenant"]
            self.fields["ip"].queryset = IPAddress.objects.usable_by(tenant)
            self.fields["pool"].queryset = IPPool.objects.usable_by(tenant)
