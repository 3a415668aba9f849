"""Mirror every Plan into Lago (update by plan code, create when missing)."""

from typing import Any

from django.core.management.base import BaseCommand

from billing.backends.lago import upsert_lago_plans
from billing.management.commands._common import run_service


class Command(BaseCommand):
    help = "Create or update each plan in Lago from the Plan table (plan_code = Lago plan code)."

    def handle(self, *args: Any, **options: Any) -> None:
        for plan_code, action in run_service(upsert_lago_plans):
            self.stdout.write(f"{plan_code}: {action}")
