"""Fire and resolve the usage alerts (50/80/90/100 % of allocations and pools) now."""

from typing import Any

from django.core.management.base import BaseCommand

from billing.services.alerts import evaluate_usage_alerts


class Command(BaseCommand):
    help = (
        "Compare every allocation's and pool's usage with its alerts of this month: fire the "
        "thresholds newly reached (audit event + e-mail to the org's admins) and resolve those "
        "no longer reached. The task billing.tasks.evaluate_usage_alerts runs this every 5 minutes."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = evaluate_usage_alerts()
        for change in result.changes:
            target = f"allocation #{change.allocation_id}" if change.allocation_id else "pool"
            self.stdout.write(f"{change.kind}: {change.org_id} {target} {change.threshold}%")
        self.stdout.write(
            self.style.SUCCESS(
                f"Checked {result.targets_checked} allocation(s)/pool(s): "
                f"{result.count('triggered')} alert(s) triggered, {result.count('resolved')} resolved."
            )
        )
