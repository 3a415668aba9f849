from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing and credits"

    def ready(self) -> None:
        import orgbilling.checks  # noqa: F401  (registers the connection-budget checks)
        from billing.audit import record_audit_event
        from billing.metrics import LedgerCollector
        from billing.services.members import LEDGER_MEMBER_CREDITS
        from organizations.credits import register_member_credits
        from orgbilling.audit import register_audit_recorder
        from orgbilling.observability.metrics import register_scrape_collector

        register_scrape_collector(LedgerCollector)
        # organizations never imports billing: it writes audit events and asks for credit
        # effects (pools, a removed member's allocation, who pays) through these.
        register_audit_recorder(record_audit_event)
        register_member_credits(LEDGER_MEMBER_CREDITS)
