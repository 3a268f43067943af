"""Forms of the campaign pages. They only shape input: the services check and write it."""

import json
import zoneinfo

from django import forms
from django.utils import timezone

from ippools.models import IPPool

from ..choices import ImportMode, SuppressionReason
from ..models import ContactList

DATETIME_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class TenantTimeField(forms.DateTimeField):
    """A date and time typed in the tenant's time zone (the schedule of a campaign)."""

    widget = DATETIME_INPUT

    def __init__(self, *args, time_zone="UTC", **kwargs):
        self.time_zone = zoneinfo.ZoneInfo(time_zone)
        super().__init__(*args, input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"], **kwargs)

    def to_python(self, value):
        result = super().to_python(value)
        if result is not None and timezone.is_aware(result):
            result = timezone.make_naive(result, timezone.get_current_timezone())
        return timezone.make_aware(result, self.time_zone) if result is not None else None

    def prepare_value(self, value):
        if hasattr(value, "astimezone") and timezone.is_aware(value):
            return value.astimezone(self.time_zone).strftime("%Y-%m-%dT%H:%M")
        return value


class ContactListForm(forms.ModelForm):
    class Meta:
        model = ContactList
        fields = ["name", "description", "opt_in"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}
        labels = {"opt_in": "Opt-in"}


class ContactForm(forms.Form):
    email = forms.CharField(max_length=320)
    name = forms.CharField(max_length=200, required=False)
    attributes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='Custom fields as JSON, e.g. {"city": "Lyon"}.',
    )

    def clean_attributes(self):
        text = self.cleaned_data["attributes"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            raise forms.ValidationError('Not JSON: write e.g. {"city": "Lyon"}.') from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Custom fields are a JSON object.")
        return value


class ImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="A header row; UTF-8; separated by commas, semicolons or tabs.")
    mode = forms.ChoiceField(choices=ImportMode.choices, initial=ImportMode.ADD)
    email_column = forms.CharField(initial="email", max_length=200, label="Email column")
    mapping = forms.CharField(
        required=False,
        label="Column mapping (optional)",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='JSON: {"Town": "city", "Notes": ""} renames a column, "" skips it. '
        'A column called "name" is the contact\'s name; the rest become custom fields.',
    )

    def clean_mapping(self):
        text = self.cleaned_data["mapping"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            raise forms.ValidationError("Not JSON.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("A JSON object of column → target.")
        return value


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200)
    subject = forms.CharField(max_length=998, help_text="Variables work here too: Hello {{ contact.name }}")
    from_header = forms.CharField(label="From", max_length=400, help_text='"Name <news@your-domain>"')
    reply_to = forms.CharField(label="Reply-To", max_length=400, required=False)
    html = forms.CharField(
        label="HTML", required=False, widget=forms.Textarea(attrs={"rows": 10, "class": "font-monospace"})
    )
    text = forms.CharField(
        label="Plain text",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Generated from the HTML when empty.",
    )
    lists = forms.ModelMultipleChoiceField(
        queryset=ContactList.objects.none(), widget=forms.CheckboxSelectMultiple, required=False
    )
    ip_pool = forms.ModelChoiceField(
        queryset=IPPool.objects.none(), required=False, label="IP pool", empty_label="My marketing pool (default)"
    )
    rate_per_hour = forms.IntegerField(required=False, min_value=1, label="At most … messages per hour")
    track_opens = forms.BooleanField(required=False, label="Track opens (a pixel)")
    track_clicks = forms.BooleanField(required=False, label="Track clicks (links through this server)")
    unsubscribe_suppresses = forms.BooleanField(
        required=False, label="An unsubscribe also adds the address to the suppression list"
    )
    tag = forms.CharField(max_length=100, required=False)

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lists"].queryset = ContactList.objects.filter(tenant=tenant)
        self.fields["ip_pool"].queryset = IPPool.objects.usable_by(tenant)
        self.fields["send_at"] = TenantTimeField(
            required=False, time_zone=tenant.time_zone, label=f"Send at ({tenant.time_zone}; empty: when started)"
        )
        self.fields["finish_by"] = TenantTimeField(
            required=False, time_zone=tenant.time_zone, label=f"…or finish by ({tenant.time_zone})"
        )


class TestSendForm(forms.Form):
    to = forms.CharField(label="Send a test to", help_text="Up to 5 addresses, separated by commas.")
    contact = forms.CharField(required=False, label="As contact (address, optional)")

    def clean_to(self):
        return [a.strip() for a in self.cleaned_data["to"].replace(";", ",").split(",") if a.strip()]


class SuppressionAddForm(forms.Form):
    addresses = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="One address per line.")
    reason = forms.ChoiceField(choices=SuppressionReason.choices, initial=SuppressionReason.MANUAL)
    expires = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional: the entry is removed after this day.",
    )


class SuppressionImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text='A header row with an "email" column.')
    email_column = forms.CharField(initial="email", max_length=200, label="Email column")
