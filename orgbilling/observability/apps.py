from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "orgbilling.observability"
    label = "observability"
    verbose_name = "Observability"

    def ready(self) -> None:
        from django.core.signals import request_finished

        from orgbilling.observability.logging import configure_structlog
        from orgbilling.observability.request_id import clear_request_id

        configure_structlog()
        request_finished.connect(clear_request_id, dispatch_uid="orgbilling.observability.request_id")
