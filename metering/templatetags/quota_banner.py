"""The dashboard's quota banner, at 80 % and 100 % of the period's quota:
`{% quota_banner usage.summary tier %}` renders dashboard/_quota_banner.html."""

from django import template

from plans.models import Tier

from ..alerts import THRESHOLDS, thresholds_reached
from ..selectors import UsageSummary, tier_above

register = template.Library()


@register.inclusion_tag("dashboard/_quota_banner.html")
def quota_banner(summary: UsageSummary, tier: Tier) -> dict:
    """The thresholds are the quota alerts' (metering.alerts), so the banner
    and the emails agree. The next tier up is offered when there is one: more
    quota (or less overage) is what helps at either threshold."""
    reached = thresholds_reached(quota=summary.quota, used=summary.used)
    if not reached:
        return {"level": None}
    return {
        "level": max(reached),
        "full": max(reached) >= THRESHOLDS[-1],
        "percent": summary.used * 100 // summary.quota,
        "summary": summary,
        "overage": tier.has_overage,
        "upgrade": tier_above(tier_slug=tier.slug, quota=summary.quota),
    }
