"""orgbilling project package: settings, URLs, Celery app, ASGI/WSGI entry points."""

from orgbilling.celery import app as celery_app

__all__ = ["celery_app"]
