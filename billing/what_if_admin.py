"""The what-if page in admin (/admin/plans/tier/what-if/): parse, call
billing.what_if, render. Nothing is saved here.

Its "Apply these values" button posts the tier's own admin change form,
filled with the proposed values, to the change view: the one write path for
a tier in admin, with its validation, history entry, key context
invalidation (apikeys.admin.InvalidatesKeyContexts), Stripe catalog sync and
margin warning.
"""

from django import forms
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from metering.reports import MARGIN_FLOOR
from plans.models import Tier

from .what_if import TierValues, tier_what_if

VALUE_FIELDS = ("price", "quota", "burst", "overage_price_per_1000")


class TierPickForm(forms.Form):
    tier = forms.ModelChoiceField(queryset=Tier.objects.all(), empty_label=None)


class TierValuesForm(forms.ModelForm):
    """The proposed values, validated as the change form validates them (the
    model's fields and Tier.clean) on an unsaved copy of the tier."""

    class Meta:
        model = Tier
        fields = VALUE_FIELDS
        labels = {"overage_price_per_1000": "Overage price per 1,000"}

    def values(self) -> TierValues:
        return TierValues.of(self.instance)


def _apply_form(model_admin, request, proposed: Tier):
    """The admin's own change form for the tier, holding the proposed values."""
    form_class = model_admin.get_form(request, proposed, change=True)
    return form_class(instance=proposed, auto_id=False)  # no second id="id_price" on the page


def what_if_view(request, model_admin):
    """Staff with change permission on tiers only: the page leads to a change."""
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    pick = TierPickForm(request.GET if "tier" in request.GET else None)
    tier = pick.cleaned_data["tier"] if pick.is_valid() else Tier.objects.first()
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Tier._meta,
        "title": "What if: a tier's price and limits against the last 30 days",
        "pick": pick,
        "tier": tier,
        "margin_floor": MARGIN_FLOOR,
    }
    status = 400 if pick.is_bound and not pick.is_valid() else 200
    if tier is not None and status == 200:
        proposing = any(name in request.GET for name in VALUE_FIELDS)
        # A copy: the form writes the values it cleans onto its instance.
        values_form = TierValuesForm(
            request.GET if proposing else None, instance=Tier.objects.get(pk=tier.pk)
        )
        context["values_form"] = values_form
        if proposing and not values_form.is_valid():
            status = 400
        else:
            what_if = tier_what_if(tier=tier, proposed=values_form.values(), now=timezone.now())
            context["what_if"] = what_if
            if proposing and what_if.proposed.values != what_if.current.values:
                context["apply_form"] = _apply_form(model_admin, request, values_form.instance)
                context["apply_url"] = reverse(
                    f"{model_admin.admin_site.name}:plans_tier_change", args=[tier.pk]
                )
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/plans/tier/what_if.html", context, status=status)
