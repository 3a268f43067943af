"""Forms of the queues UI: routes and the test message."""

from django import forms

from .models import Route


class RouteForm(forms.ModelForm):
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                               help_text="Only for relays that need AUTH; stored encrypted.")  # fmt: skip

    class Meta:
        model = Route
        fields = ["pattern", "host", "port", "username", "password", "tls_required", "priority", "enabled"]
        labels = {"tls_required": "TLS required"}


class TestMessageForm(forms.Form):
    """A test message from the Test inbox page; the intake service checks it like any other message."""

    SERVICE_FIELDS = {"from": "sender"}  # the service's field names that this form names otherwise

    sender = forms.CharField(label="From", max_length=320, help_text="An address of one of your verified domains.")
    to = forms.CharField(label="To", max_length=320)
    subject = forms.CharField(max_length=200, initial="Hello from DeliveryHub")
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), initial="It works: this message went through "
                           "the whole pipeline (queue, worker, DKIM, SMTP).")  # fmt: skip
