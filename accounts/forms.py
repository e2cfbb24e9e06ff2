from django import forms

from apikeys.models import APIKey


class APIKeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Key name",
        max_length=APIKey._meta.get_field("name").max_length,
        help_text="Where the key is used, e.g. “production server”.",
        widget=forms.TextInput(attrs={"placeholder": "production server", "autocomplete": "off"}),
    )
