"""Forms of the queues UI: routes, bounce rules and the test message."""

from django import forms
from django.core.exceptions import ValidationError

from .delivery.destination import mail_path
from .mime import normalize_address
from .models import BounceRule, Route


class RouteForm(forms.ModelForm):
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                               help_text="Only for relays that need AUTH; stored encrypted. Empty keeps the current "
                                         "one.")  # fmt: skip

    class Meta:
        model = Route
        fields = ["pattern", "host", "port", "username", "password", "tls_required", "priority", "enabled"]
        labels = {"tls_required": "TLS required"}

    def clean_password(self):
        """An empty password on an existing route keeps the stored one (it is never shown back)."""
        return self.cleaned_data.get("password") or (self.instance.password if self.instance.pk else "")


class BounceRuleForm(forms.ModelForm):
    """An admin's classification rule; an operator's may be global (no tenant), a tenant admin's is their tenant's."""

    class Meta:
        model = BounceRule
        fields = ["tenant", "priority", "code", "enhanced", "text", "category", "action", "enabled", "description"]
        labels = {"tenant": "Tenant (empty: every tenant)", "enhanced": "Enhanced status code",
                  "text": "Reply text (regular expression)"}  # fmt: skip
        help_texts = {"code": "550 or 5xx; empty: any", "enhanced": "5.1.1 or 5.7.*; empty: any"}

    def __init__(self, *args, platform=False, **kwargs):
        super().__init__(*args, **kwargs)
        if not platform:
            del self.fields["tenant"]


class TestMessageForm(forms.Form):
    """A test message from the Test inbox; the intake service checks it like any other message. One whose recipient's
    mail would leave the machine (a route to a relay, or the real MX hosts when demo capture is off) is sent only when
    the sender confirms it."""

    SERVICE_FIELDS = {"from": "sender"}  # the service's field names that this form names otherwise

    sender = forms.CharField(label="From", max_length=320, help_text="An address of one of your verified domains.")
    to = forms.CharField(label="To", max_length=320)
    subject = forms.CharField(max_length=200, initial="Hello from DeliveryHub")
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), initial="It works: this message went through "
                           "the whole pipeline (queue, worker, DKIM, SMTP).")  # fmt: skip
    send_for_real = forms.BooleanField(required=False, label="Yes, send it to the real recipient")

    def __init__(self, *args, tenant, **kwargs):
        self.tenant = tenant
        self.path = None
        super().__init__(*args, **kwargs)

    def clean(self):
        data = super().clean()
        to = data.get("to")
        if not to:
            return data
        try:
            address = normalize_address(to, "to")
        except ValidationError as error:
            self.add_error(None, error)
            return data
        self.path = mail_path(self.tenant.pk, address.rpartition("@")[2].lower())
        if self.path.reaches_real_recipient and not data.get("send_for_real"):
            self.add_error(
                "send_for_real", f"Mail to this address goes {self.path.text}, not to the Test inbox. Tick the box to "
                "send it anyway."
            )  # fmt: skip
        return data
