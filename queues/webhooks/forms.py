"""Forms of the webhooks and SMTP credentials pages (the services validate; these only shape the input)."""

from django import forms

from ..choices import EventType
from ..models import SmtpCredential, Webhook


def _split(value):
    return [item.strip() for item in (value or "").replace("\n", ",").split(",") if item.strip()]


class WebhookForm(forms.ModelForm):
    events = forms.MultipleChoiceField(choices=EventType.choices, required=False, widget=forms.CheckboxSelectMultiple,
                                       help_text="None ticked: every type.")  # fmt: skip

    class Meta:
        model = Webhook
        fields = ["url", "events", "enabled", "description"]
        labels = {"url": "URL"}


class SmtpCredentialForm(forms.ModelForm):
    username = forms.CharField(max_length=150, label="User name", help_text="Unique across the platform.")
    allowed_from_domains = forms.CharField(
        required=False, label="Allowed From domains", help_text="Comma-separated; empty: any of the tenant's domains."
    )
    allowed_networks = forms.CharField(required=False, label="Allowed networks",
                                       help_text="Comma-separated CIDR networks; empty: anywhere.")  # fmt: skip

    class Meta:
        model = SmtpCredential
        fields = ["username", "description", "allowed_from_domains", "allowed_networks"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["username"].disabled = True
            self.initial["allowed_from_domains"] = ", ".join(self.instance.allowed_from_domains)
            self.initial["allowed_networks"] = ", ".join(self.instance.allowed_networks)

    def clean_allowed_from_domains(self):
        return _split(self.cleaned_data.get("allowed_from_domains"))

    def clean_allowed_networks(self):
        return _split(self.cleaned_data.get("allowed_networks"))

    def _post_clean(self):  # the model's clean() runs in the service (create) or in save(); not twice here
        pass
