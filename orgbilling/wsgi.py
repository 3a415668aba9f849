"""WSGI entry point (gunicorn)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orgbilling.settings.production")
# A web process: pooled connections, bounded statements and lock waits (settings/database.py).
os.environ.setdefault("ORGBILLING_PROCESS", "web")
application = get_wsgi_application()
