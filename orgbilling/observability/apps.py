from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "orgbilling.observability"
    label = "observability"
    verbose_name = "Observability"

    def ready(self) -> None:
        from orgbilling.observability.logging import configure_structlog

        configure_structlog()
