from datetime import timedelta

from django import forms

from apikeys.models import APIKey
from apikeys.scopes import SCOPES
from apikeys.services import InvalidKeyName, key_name_clean

# How long a new key lives: value -> (label, duration; None never ends).
EXPIRIES = {
    "never": ("Never", None),
    "1d": ("In 1 day", timedelta(days=1)),
    "7d": ("In 7 days", timedelta(days=7)),
    "30d": ("In 30 days", timedelta(days=30)),
    "90d": ("In 90 days", timedelta(days=90)),
    "365d": ("In 1 year", timedelta(days=365)),
}

# How long a rotated key keeps working beside its replacement.
OVERLAPS = {
    "none": ("Stop it now", timedelta(0)),
    "1h": ("Keep it 1 hour", timedelta(hours=1)),
    "24h": ("Keep it 24 hours", timedelta(hours=24)),
    "7d": ("Keep it 7 days", timedelta(days=7)),
}


class APIKeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Key name",
        max_length=APIKey._meta.get_field("name").max_length,
        help_text="Where the key is used, e.g. “production server”.",
        widget=forms.TextInput(attrs={"placeholder": "production server", "autocomplete": "off"}),
    )
    expires_in = forms.ChoiceField(
        label="Expires",
        choices=[(value, label) for value, (label, _) in EXPIRIES.items()],
        initial="never",
        required=False,
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=list(SCOPES.items()),
        initial=list(SCOPES)[:1],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one scope: a key without one can call nothing."},
    )

    def clean_name(self):
        try:
            return key_name_clean(self.cleaned_data["name"])
        except InvalidKeyName as error:
            raise forms.ValidationError(error.detail) from None

    def expires_after(self) -> timedelta | None:
        return EXPIRIES[self.cleaned_data.get("expires_in") or "never"][1]


class APIKeyRotateForm(forms.Form):
    # Absent (an older page, a script) means no overlap: what rotation always did.
    overlap = forms.ChoiceField(
        label="Old key",
        choices=[(value, label) for value, (label, _) in OVERLAPS.items()],
        initial="24h",
        required=False,
    )

    def overlap_duration(self) -> timedelta:
        return OVERLAPS[self.cleaned_data.get("overlap") or "none"][1]
