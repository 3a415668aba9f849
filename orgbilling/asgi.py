"""ASGI entry point (uvicorn / gunicorn with uvicorn workers)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orgbilling.settings.production")
application = get_asgi_application()
