"""System checks of the connection budget (orgbilling/settings/database.py).

``orgbilling.E001``: the gateway's database threads draw on the web pool; as many threads as
the pool has connections would leave none for the REST API.
``orgbilling.E002`` (``check --deploy``): the budget exceeds what the server really allows
(``max_connections`` minus ``superuser_reserved_connections``), read from the server itself.
"""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DatabaseError, connection


@register(Tags.database)
def gateway_threads_fit_the_pool(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.DB_POOL_ENABLED and settings.LLM_GATEWAY_DB_THREADS >= settings.DB_POOL_MAX_SIZE:
        return [
            Error(
                f"LLM_GATEWAY_DB_THREADS ({settings.LLM_GATEWAY_DB_THREADS}) must be below "
                f"DB_POOL_MAX_SIZE ({settings.DB_POOL_MAX_SIZE}): the gateway's threads share the "
                "web pool, and would leave the REST API no connection.",
                id="orgbilling.E001",
            )
        ]
    return []


def server_connection_limit() -> int:
    """What the server allows non-superusers: max_connections - superuser_reserved_connections."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
        )
        return int(cursor.fetchone()[0])


@register(Tags.database, deploy=True)
def budget_fits_the_server(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    budget = settings.DB_CONNECTION_BUDGET
    try:
        limit = server_connection_limit()
    except DatabaseError as exc:
        return [Warning(f"Could not read max_connections from the database ({exc}).", id="orgbilling.W002")]
    if budget["total"] > limit:
        return [
            Error(
                f"The connection budget ({budget['total']}: web {budget['web']} + gateway "
                f"{budget['gateway']} + workers "
                f"{budget['workers']} + operators {budget['operators']}) exceeds the {limit} "
                "connections the PostgreSQL server allows (max_connections minus "
                "superuser_reserved_connections).",
                hint="Lower DB_POOL_MAX_SIZE, WEB_CONCURRENCY or CELERY_WORKER_CONCURRENCY, "
                "or raise max_connections.",
                id="orgbilling.E002",
            )
        ]
    return []


@register()
def calls_end_before_their_holds(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``orgbilling.E003``: a call allowed to outlive its hold would be settled from whatever
    is left free when it ends (the hold expired under it)."""
    configured = float(getattr(settings, "LLM_MAX_CALL_SECONDS", 0) or 0)
    if configured and configured >= settings.CREDIT_RESERVATION_TTL_SECONDS:
        return [
            Error(
                f"LLM_MAX_CALL_SECONDS ({configured:g}) must be below CREDIT_RESERVATION_TTL_SECONDS "
                f"({settings.CREDIT_RESERVATION_TTL_SECONDS}): a hold must outlive the call it guards.",
                id="orgbilling.E003",
            )
        ]
    return []
