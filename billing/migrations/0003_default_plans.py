"""The three plans of the reference documents: starter $19, professional $49, enterprise $99."""

from decimal import Decimal

from django.db import migrations

PLANS = [
    ("starter", "Starter", Decimal("19.00"), "basic", 10_000),
    ("professional", "Professional", Decimal("49.00"), "standard", 100_000),
    ("enterprise", "Enterprise", Decimal("99.00"), "premium", 0),
]


def create_plans(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for code, name, price, tier, calls in PLANS:
        Plan.objects.update_or_create(
            plan_code=code,
            defaults={"name": name, "monthly_price": price, "rate_limit_tier": tier, "monthly_api_calls": calls},
        )


def remove_plans(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    Plan.objects.filter(plan_code__in=[code for code, *_ in PLANS], subscriptions__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_initial")]
    operations = [migrations.RunPython(create_plans, remove_plans)]
