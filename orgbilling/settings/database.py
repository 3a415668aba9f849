"""The database, its connection budget and its timeouts. Star-imported by base.py.

**Roles.** A process says what it is in ``ORGBILLING_PROCESS`` (the web entry points
``orgbilling.asgi`` / ``orgbilling.wsgi`` set ``web``; Celery workers are ``worker``; anything
else — ``manage.py`` commands, migrations, the test suite — is ``command``):

- ``web`` serves concurrent requests: its connections come from one psycopg pool per process
  (Django's ``OPTIONS["pool"]``), at most ``DB_POOL_MAX_SIZE`` of them, shared by every request
  thread and by the LLM gateway's database threads. A request that waits longer than
  ``DB_POOL_TIMEOUT`` seconds for one answers 503 ``database_busy`` with ``Retry-After``. Its
  statements are bounded (``DB_STATEMENT_TIMEOUT_MS``, longer for reports through
  ``orgbilling.db.report_timeout``) and so are its lock waits (``DB_LOCK_TIMEOUT_MS``).
- ``worker`` (Celery, prefork; ``make run`` and docker compose set it for the worker): one
  connection per worker child; the same lock timeout, a longer statement timeout
  (``DB_WORKER_STATEMENT_TIMEOUT_MS``).
- ``command``: one plain connection, no timeouts (a migration may legitimately run long).

**The budget** (README, "Connection budget"): every process counted at its most,

    WEB_CONCURRENCY × DB_POOL_MAX_SIZE            web processes (API, admin, gateway)
  + WEB_CONCURRENCY × LLM_GATEWAY_DB_POOL_SIZE     their gateway's async pool (event loop)
  + CELERY_WORKERS × CELERY_WORKER_CONCURRENCY     Celery worker children
  + DB_OPERATOR_RESERVE                            psql, manage.py, migrations, beat restarts
  ≤ DB_MAX_CONNECTIONS                             the server's max_connections minus
                                                   superuser_reserved_connections

Production refuses to start when it does not fit (settings/production.py); ``check --deploy``
compares it with the server's real ``max_connections`` (``orgbilling/checks.py``).
"""

from typing import Any

from orgbilling.settings.env import env

PROCESS_ROLE: str = env("ORGBILLING_PROCESS", default="command")
if PROCESS_ROLE not in ("web", "worker", "command"):
    raise ValueError(f"ORGBILLING_PROCESS must be web, worker or command, not {PROCESS_ROLE!r}")

# The pool of a web process. min_size connections are opened when the first request needs one
# and kept; the pool grows on demand up to max_size and shrinks back after max_idle seconds.
DB_POOL_ENABLED: bool = env.bool("DB_POOL_ENABLED", default=PROCESS_ROLE == "web")
DB_POOL_MIN_SIZE: int = env.int("DB_POOL_MIN_SIZE", default=2)
DB_POOL_MAX_SIZE: int = env.int("DB_POOL_MAX_SIZE", default=20)
DB_POOL_TIMEOUT: float = env.float("DB_POOL_TIMEOUT", default=5.0)
DB_POOL_MAX_IDLE_SECONDS: float = env.float("DB_POOL_MAX_IDLE_SECONDS", default=300.0)
DB_POOL_MAX_LIFETIME_SECONDS: float = env.float("DB_POOL_MAX_LIFETIME_SECONDS", default=3600.0)
# psycopg_pool retries a failed connection attempt with a doubling delay until this many seconds
# have passed, then gives the attempt up; the next request that needs a connection starts a
# fresh one at once. Short, so the first requests after a database restart find it promptly
# (psycopg_pool's own default, 300 s, lets the delay grow past a minute).
DB_POOL_RECONNECT_TIMEOUT: float = env.float("DB_POOL_RECONNECT_TIMEOUT", default=10.0)

# Statement and lock timeouts (milliseconds; 0 = none). API reads and ledger writes take a few
# milliseconds: a statement that runs for seconds is a runaway, a lock wait of seconds a stuck
# transaction. Reports (usage analytics, CSV exports, dashboards, reconciliation) get longer.
_TIMEOUTS_ON = PROCESS_ROLE in ("web", "worker")
DB_STATEMENT_TIMEOUT_MS: int = env.int("DB_STATEMENT_TIMEOUT_MS", default=5_000 if _TIMEOUTS_ON else 0)
DB_REPORT_STATEMENT_TIMEOUT_MS: int = env.int("DB_REPORT_STATEMENT_TIMEOUT_MS", default=30_000)
DB_WORKER_STATEMENT_TIMEOUT_MS: int = env.int("DB_WORKER_STATEMENT_TIMEOUT_MS", default=300_000)
DB_LOCK_TIMEOUT_MS: int = env.int("DB_LOCK_TIMEOUT_MS", default=3_000 if _TIMEOUTS_ON else 0)
# A session left idle inside a transaction (a crashed client mid-request) gives its locks back.
DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: int = env.int(
    "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", default=60_000 if _TIMEOUTS_ON else 0
)

# The gateway's async pool (billing/gateway/pg.py): its hot route's one-statement admission and
# settlement, on the event loop, beside the pool above. A term of its own in the budget.
LLM_GATEWAY_DB_POOL_SIZE: int = env.int("LLM_GATEWAY_DB_POOL_SIZE", default=3)

# The budget's other terms.
WEB_CONCURRENCY: int = env.int("WEB_CONCURRENCY", default=1)
CELERY_WORKERS: int = env.int("CELERY_WORKERS", default=1)
CELERY_WORKER_CONCURRENCY: int = env.int("CELERY_WORKER_CONCURRENCY", default=2)
DB_OPERATOR_RESERVE: int = env.int("DB_OPERATOR_RESERVE", default=10)
DB_MAX_CONNECTIONS: int = env.int("DB_MAX_CONNECTIONS", default=97)  # 100 - 3 superuser-reserved
# The budget's terms, each at its most.
DB_CONNECTION_BUDGET: dict[str, int] = {
    "web": WEB_CONCURRENCY * (DB_POOL_MAX_SIZE if DB_POOL_ENABLED else 0),
    "gateway": WEB_CONCURRENCY * LLM_GATEWAY_DB_POOL_SIZE,
    "workers": CELERY_WORKERS * CELERY_WORKER_CONCURRENCY,
    "operators": DB_OPERATOR_RESERVE,
}
DB_CONNECTION_BUDGET["total"] = sum(DB_CONNECTION_BUDGET.values())


def _server_options() -> str:
    """Session settings sent with every new connection of this process (libpq ``options``)."""
    options = []
    worker = PROCESS_ROLE == "worker"
    statement_timeout = DB_WORKER_STATEMENT_TIMEOUT_MS if worker else DB_STATEMENT_TIMEOUT_MS
    if statement_timeout:
        options.append(f"-c statement_timeout={statement_timeout}")
    if DB_LOCK_TIMEOUT_MS:
        options.append(f"-c lock_timeout={DB_LOCK_TIMEOUT_MS}")
    if DB_IDLE_IN_TRANSACTION_TIMEOUT_MS:
        options.append(f"-c idle_in_transaction_session_timeout={DB_IDLE_IN_TRANSACTION_TIMEOUT_MS}")
    return " ".join(options)


def _database() -> dict[str, Any]:
    # PostgreSQL is the only supported database. Services own their transactions, so no
    # request-wide transaction holds row locks while a response is rendered.
    database: dict[str, Any] = env.db("DATABASE_URL")
    database["ATOMIC_REQUESTS"] = False
    database["CONN_HEALTH_CHECKS"] = True  # with the pool: each connection is checked on checkout
    options: dict[str, Any] = database.setdefault("OPTIONS", {})
    # Who is who in pg_stat_activity (and in the budget's accounting).
    options.setdefault("application_name", f"orgbilling-{PROCESS_ROLE}")
    if _TIMEOUTS_ON and _server_options():
        options["options"] = f"{options.get('options', '')} {_server_options()}".strip()
    if DB_POOL_ENABLED:
        database["CONN_MAX_AGE"] = 0  # connections go back to the pool at the end of each request
        options["pool"] = {
            "min_size": min(DB_POOL_MIN_SIZE, DB_POOL_MAX_SIZE),
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": DB_POOL_TIMEOUT,
            "max_idle": DB_POOL_MAX_IDLE_SECONDS,
            "max_lifetime": DB_POOL_MAX_LIFETIME_SECONDS,
            "reconnect_timeout": DB_POOL_RECONNECT_TIMEOUT,
            "name": "orgbilling-web",
        }
    else:
        database["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    return database


DATABASES = {"default": _database()}
