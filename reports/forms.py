"""Forms of the reports UI: data-subject requests, retention periods, compliance reports, signature checks, alert
rules and channels."""

from datetime import timedelta

from django import forms
from django.utils import timezone

from deliveryhub.privacy import retention_kinds
from domains.models import SendingDomain
from ippools.choices import Provider
from ippools.models import IPPool
from queues.models import Campaign

from .choices import DataRequestKind, ReportFormat
from .constants import MAX_SUBJECTS
from .models import AlertChannel, AlertRule


class DataRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=DataRequestKind.choices, initial=DataRequestKind.ACCESS)
    subjects = forms.CharField(
        label="Email addresses", widget=forms.Textarea(attrs={"rows": 3, "placeholder": "person@example.com"}),
        help_text=f"The data subject's addresses, one per line (at most {MAX_SUBJECTS}).",
    )  # fmt: skip
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}),
                           help_text="Why and on whose request (a ticket number, how the identity was checked).")
    confirm = forms.BooleanField(required=False, label="I understand an erasure cannot be undone.")

    def clean(self):
        data = super().clean()
        if data.get("kind") == DataRequestKind.ERASURE and not data.get("confirm"):
            self.add_error("confirm", "Tick this box to confirm the erasure.")
        return data


class RetentionForm(forms.Form):
    kind = forms.ChoiceField(choices=())
    days = forms.IntegerField(required=False, min_value=1, max_value=3650 * 3,
                              help_text="Empty: use the platform default again.")  # fmt: skip

    def __init__(self, *args, platform=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(k.name, k.title) for k in retention_kinds() if platform or k.per_tenant]


class ComplianceReportForm(forms.Form):
    period_start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    period_end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}),
                                 help_text="The first day after the period (a month: the 1st of the next one).")
    format = forms.ChoiceField(choices=ReportFormat.choices)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        today = timezone.now().date()
        first = today.replace(day=1)
        self.fields["period_start"].initial = (first - timedelta(days=1)).replace(day=1)
        self.fields["period_end"].initial = first


class VerifyForm(forms.Form):
    file = forms.FileField(label="Signed file", help_text="A PDF report or export, or a signed archive (.zip).")


# ---------------------------------------------------------------------------------------------------------------------
# Alerting
# ---------------------------------------------------------------------------------------------------------------------


class AlertRuleForm(forms.ModelForm):
    """An alert rule: a platform rule (operators; no tenant) or the current tenant's (its domains, pools it may use,
    its campaigns, its channels). Rates are entered as fractions (0.05 = 5 %)."""

    class Meta:
        model = AlertRule
        fields = ["name", "description", "metric", "comparison", "threshold", "window_minutes", "min_volume",
                  "group_by", "pool", "source_ip", "provider", "domain", "campaign", "severity", "channels",
                  "reminder_minutes", "action", "enabled"]  # fmt: skip
        widgets = {"description": forms.Textarea(attrs={"rows": 2}), "channels": forms.SelectMultiple()}
        labels = {"min_volume": "Volume floor", "window_minutes": "Window (minutes)", "source_ip": "Source IP",
                  "pool": "IP pool", "domain": "Sending domain", "reminder_minutes": "Reminder (minutes)"}

    def __init__(self, *args, tenant=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"] = forms.ChoiceField(choices=[("", "any provider"), *Provider.choices], required=False)
        self.fields["channels"].required = False
        if tenant is not None:
            self.fields["pool"].queryset = IPPool.objects.usable_by(tenant)
            self.fields["domain"].queryset = SendingDomain.objects.for_tenant(tenant)
            self.fields["campaign"].queryset = Campaign.objects.for_tenant(tenant)
            self.fields["channels"].queryset = AlertChannel.objects.for_tenant(tenant)
        else:
            self.fields["channels"].queryset = AlertChannel.objects.filter(tenant__isnull=True)


class AlertChannelForm(forms.ModelForm):
    class Meta:
        model = AlertChannel
        fields = ["name", "kind", "target", "secret", "enabled"]
        widgets = {"target": forms.TextInput(), "secret": forms.TextInput(attrs={"autocomplete": "off"})}
