"""Project-level views: the health check."""

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 with the database's status when it answers, 503 when it does not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver/connection failure means "database down"
        return JsonResponse(
            {"status": "error", "database": {"status": "unavailable", "error": type(exc).__name__}},
            status=503,
        )
    return JsonResponse({"status": "ok", "database": {"status": "ok", "vendor": connection.vendor}})
