"""Forms of the sign-in and second-factor pages."""

import re

from django import forms

from .throttle import USERNAME_MAX_LENGTH

_SEPARATORS = re.compile(r"[\s-]+")


class LoginForm(forms.Form):
    """Email and password; checking them (and throttling) is the login view's job. `next` is read from the request."""

    username = forms.CharField(
        label="Email",
        max_length=USERNAME_MAX_LENGTH,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    password = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    def clean_username(self):
        return self.cleaned_data["username"].strip()


class OTPTokenForm(forms.Form):
    """A 6-digit code from the authenticator app or, where allowed, a recovery code."""

    token = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(
            attrs={"autofocus": True, "autocomplete": "one-time-code", "inputmode": "text", "spellcheck": "false"}
        ),
    )

    def clean_token(self):
        token = _SEPARATORS.sub("", self.cleaned_data["token"]).lower()
        if not token:
            raise forms.ValidationError("Enter a code.")
        return token


class EnrolForm(OTPTokenForm):
    """The first code from a newly added authenticator app, which confirms the device."""

    def clean_token(self):
        token = super().clean_token()
        if not token.isdigit():
            raise forms.ValidationError("Enter the 6-digit code your authenticator app shows.")
        return token
