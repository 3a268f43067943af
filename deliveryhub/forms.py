"""Forms of the core UI: API keys and members. They validate input; the services do the writing."""

import ipaddress
from datetime import datetime, time
from zoneinfo import available_timezones

from django import forms
from django.utils import timezone

from .choices import ApiKeyScope, Role
from .models import Tenant


def role_choices(principal, tenant):
    """The roles this principal may hand out in `tenant`: only owners (and operators) grant the owner role."""
    if principal.is_platform or principal.roles.get(tenant.pk) == Role.OWNER:
        return Role.choices
    return [(value, label) for value, label in Role.choices if value != Role.OWNER]


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER, help_text="What the key may do, as a member.")
    scope = forms.ChoiceField(
        choices=ApiKeyScope.choices, initial=ApiKeyScope.ROLE, help_text="Narrow the key to sending or reading."
    )
    expires = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The key stops working at the start of this day (UTC). Empty: never.",
    )
    allowed_networks = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "192.0.2.0/24\n2001:db8::/32"}),
        help_text="One IP address or CIDR network per line. Empty: from anywhere.",
    )

    def __init__(self, *args, principal, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = role_choices(principal, tenant)

    def clean_expires(self):
        day = self.cleaned_data["expires"]
        if day is None:
            return None
        expires = datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())
        if expires <= timezone.now():
            raise forms.ValidationError("The expiry date must be in the future.")
        return expires

    def clean_allowed_networks(self):
        networks = []
        for line in self.cleaned_data["allowed_networks"].splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                networks.append(str(ipaddress.ip_network(line, strict=False)))
            except ValueError:
                raise forms.ValidationError(f"{line!r} is not an IP address or network (CIDR).") from None
        return networks


class MemberAddForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Initial password, only for a person without an account yet. Empty: they cannot sign in "
        "until an operator sets one.",
    )

    def __init__(self, *args, principal, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = role_choices(principal, tenant)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TenantForm(forms.ModelForm):
    """A tenant as an operator creates or changes it (the slug is fixed once created: keys and URLs use it)."""

    time_zone = forms.ChoiceField(help_text="Its day boundary: warm-up days of its dedicated IPs, daily reports.")

    class Meta:
        model = Tenant
        fields = ["slug", "name", "time_zone", "is_active"]
        labels = {"is_active": "Active (members may sign in to it; its mail is sent)"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [(zone, zone) for zone in sorted(available_timezones())]
        if self.instance.pk:
            self.fields["slug"].disabled = True
