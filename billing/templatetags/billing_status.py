"""What the billing pages show about billing itself being available."""

from django import template

from billing.stripe_api import is_configured

register = template.Library()


@register.simple_tag
def billing_available() -> bool:
    """False without Stripe configured: plan changes cannot happen, so the
    pages disable them (and say so) rather than let a click fail."""
    return is_configured()
