"""The plans an organization can subscribe to or move to."""

from billing.models import Plan


def active_plans() -> list[Plan]:
    """Active plans, cheapest first."""
    return list(Plan.objects.filter(is_active=True).order_by("monthly_price", "plan_code"))
