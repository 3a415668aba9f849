"""Create or refresh the local development superuser and print its login (DEBUG only)."""

import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from organizations.services import ensure_dev_superuser

PASSWORD_FILE = settings.BASE_DIR / ".pg" / "dev-admin-password"


class Command(BaseCommand):
    help = "Ensure the dev superuser exists (DEBUG only) and print its username and password."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("ensure_dev_admin only runs with DEBUG on (local development).")
        password = settings.DEV_ADMIN_PASSWORD
        if not password:
            PASSWORD_FILE.parent.mkdir(parents=True, exist_ok=True)
            if not PASSWORD_FILE.exists():
                PASSWORD_FILE.write_text(secrets.token_urlsafe(12))
                PASSWORD_FILE.chmod(0o600)
            password = PASSWORD_FILE.read_text().strip()
        ensure_dev_superuser(username=options["username"], password=password)
        self.stdout.write(
            self.style.SUCCESS(f"Dev admin login: username={options['username']} password={password}")
        )
