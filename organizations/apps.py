from django.apps import AppConfig


class OrganizationsConfig(AppConfig):
    name = "organizations"
    verbose_name = "Organizations and members"

    def ready(self) -> None:
        # Session stamps at sign-in and the audit of sign-in lockouts (organizations/auth/).
        from organizations.auth import sessions, throttling

        sessions.connect_signals()
        throttling.connect_signals()
