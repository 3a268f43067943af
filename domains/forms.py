"""Forms of the domains UI. They validate input; `domains.services` does the writing."""

from django import forms

from .choices import DkimAlgorithm
from .constants import RSA_ALLOWED_BITS, RSA_DEFAULT_BITS
from .models import SendingDomain
from .services import DOMAIN_FIELDS

KEY_CHOICES = [(f"rsa-{bits}", f"RSA {bits}") for bits in RSA_ALLOWED_BITS] + [
    ("ed25519", "Ed25519 (second signature)")
]


def key_choice_to_args(value):
    """("rsa-3072") → {"algorithm": "rsa-sha256", "bits": 3072}."""
    if value == "ed25519":
        return {"algorithm": DkimAlgorithm.ED25519_SHA256, "bits": None}
    return {"algorithm": DkimAlgorithm.RSA_SHA256, "bits": int(value.split("-")[1])}


class DomainSettingsForm(forms.ModelForm):
    """A domain's settings (everything but its name)."""

    class Meta:
        model = SendingDomain
        fields = list(DOMAIN_FIELDS)
        labels = {
            "return_path_subdomain": "Return-path subdomain",
            "dmarc_policy": "DMARC policy",
            "dmarc_rua": "DMARC aggregate reports to (rua)",
            "dmarc_ruf": "DMARC failure reports to (ruf)",
            "feedback_address": "Feedback-loop address",
            "dmarc_alignment": "DMARC alignment",
            "bulk_sender": "Bulk sender",
            "spf_all": "SPF ends with",
            "spf_extra_terms": "Other SPF senders",
            "tls_policy": "TLS policy",
            "mta_sts_mode": "MTA-STS mode",
            "tls_rpt_rua": "TLS-RPT reports to",
            "allow_unverified_sending": "Allow sending before DKIM verifies",
        }


class DomainAddForm(DomainSettingsForm):
    name = forms.CharField(max_length=253, help_text="The domain in your From addresses, e.g. example.com.")
    dkim_bits = forms.TypedChoiceField(
        choices=[(b, f"RSA {b}") for b in RSA_ALLOWED_BITS], coerce=int, initial=RSA_DEFAULT_BITS,
        label="DKIM key", help_text="2048 bits fits every DNS provider; 4096 needs long TXT records.",
    )  # fmt: skip
    ed25519 = forms.BooleanField(required=False, label="Also sign with Ed25519 (RFC 8463)")

    class Meta(DomainSettingsForm.Meta):
        fields = ["name", *DOMAIN_FIELDS]

    # What a first domain needs; the rest keeps its defaults, folded under "Advanced" on the page.
    essential = ("name", "dmarc_policy", "dmarc_rua")

    def essential_fields(self):
        return [self[name] for name in self.essential if name in self.fields]

    def advanced_fields(self):
        return [field for field in self.visible_fields() if field.name not in self.essential]

    def advanced_has_errors(self):
        return any(field.errors for field in self.advanced_fields())

    def _post_clean(self):
        pass  # the service validates the model (and reports the tenant's duplicate names)


class DkimRotateForm(forms.Form):
    key = forms.ChoiceField(choices=KEY_CHOICES, initial=f"rsa-{RSA_DEFAULT_BITS}", label="New key")
