from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing and credits"

    def ready(self) -> None:
        import orgbilling.checks  # noqa: F401  (registers the connection-budget checks)
        from billing.metrics import LedgerCollector
        from orgbilling.observability.metrics import register_scrape_collector

        register_scrape_collector(LedgerCollector)
