"""Forms of the reports UI: data-subject requests, retention periods, compliance reports, signature checks."""

from datetime import timedelta

from django import forms
from django.utils import timezone

from deliveryhub.privacy import retention_kinds

from .choices import DataRequestKind, ReportFormat
from .constants import MAX_SUBJECTS


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
