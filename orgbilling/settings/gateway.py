"""LLM gateway settings (billing/gateway, DESIGN.md §7). Star-imported by base.py.

The upstream is any OpenAI-compatible server (a LiteLLM proxy, vLLM, OpenAI); calls are
forwarded to ``LLM_UPSTREAM_BASE_URL`` + ``/chat/completions`` with ``LLM_UPSTREAM_API_KEY``.
"""

from orgbilling.settings.env import BASE_DIR, env

# e.g. https://api.openai.com/v1 or http://litellm:4000/v1; empty: the gateway answers 503.
LLM_UPSTREAM_BASE_URL: str = env("LLM_UPSTREAM_BASE_URL", default="").rstrip("/")
LLM_UPSTREAM_API_KEY: str = env("LLM_UPSTREAM_API_KEY", default="")
# Longest wait for the upstream to connect, or to send the next bytes (a streamed call may last
# longer in total, as long as chunks keep coming).
LLM_UPSTREAM_TIMEOUT_SECONDS: float = env.float("LLM_UPSTREAM_TIMEOUT_SECONDS", default=60.0)
# Connections the gateway keeps to the upstream (one shared client per process).
LLM_UPSTREAM_MAX_CONNECTIONS: int = env.int("LLM_UPSTREAM_MAX_CONNECTIONS", default=512)
# Output tokens priced (and sent upstream as max_tokens) when a call sets no max_tokens and the
# model's price has no max_output_tokens of its own.
LLM_DEFAULT_MAX_OUTPUT_TOKENS: int = env.int("LLM_DEFAULT_MAX_OUTPUT_TOKENS", default=4096)
# Threads that run the gateway's database work (authenticate, reserve, settle), each with its
# own connection: at most this many database connections per process for the gateway.
LLM_GATEWAY_DB_THREADS: int = env.int("LLM_GATEWAY_DB_THREADS", default=8)
# Cache API key → user, who pays and the model's price in each process, checked against one
# counter row that every change to them bumps (billing.services.gateway_calls.cache): a change
# applies to the next call. Off: every call reads the three from the database.
LLM_GATEWAY_CACHE: bool = env.bool("LLM_GATEWAY_CACHE", default=True)
# The longest a call may run upstream (a stream included) before the gateway ends it and charges
# what was generated: kept below the hold's lifetime (CREDIT_RESERVATION_TTL_SECONDS, 900 s) so a
# hold never expires under a live call. 0: the TTL minus a minute.
LLM_MAX_CALL_SECONDS: float = env.float("LLM_MAX_CALL_SECONDS", default=0.0)
# BYOK (X-Provider-Key: the caller's own provider key, charged 0). Off by default: against an
# upstream that does not check keys (vLLM without --api-key, LiteLLM without a master key) any
# key would be free usage. When on, each organization's admins opt in (byok_enabled).
LLM_BYOK_ENABLED: bool = env.bool("LLM_BYOK_ENABLED", default=False)
# Plan quotas: a day may use at most this share of the plan's monthly API calls (rounded up).
LLM_DAILY_QUOTA_PERCENT: int = env.int("LLM_DAILY_QUOTA_PERCENT", default=10)
# How long an organization's plan (quota and rate-limit tier) is cached on the shared cache: a
# plan changed outside the subscription services (the admin) takes effect within this; a change
# through them (create, change, cancel) at once (billing/services/gateway_calls/quotas.py).
LLM_QUOTA_PLAN_CACHE_SECONDS: int = env.int("LLM_QUOTA_PLAN_CACHE_SECONDS", default=60)
# Plan tiers (Plan.rate_limit_tier) → per-organization gateway limits: requests ("rpm") and
# tokens ("tpm": prompt estimate + the output tokens the hold is sized for) per minute, counted
# across every member and key of the organization; 0 = unlimited. JSON to override the whole
# table, e.g. LLM_RATE_LIMIT_TIERS='{"free": {"rpm": 60, "tpm": 100000}, ...}'.
LLM_RATE_LIMIT_TIERS: dict[str, dict[str, int]] = env.json(
    "LLM_RATE_LIMIT_TIERS",
    default={
        "free": {"rpm": 300, "tpm": 300_000},
        "basic": {"rpm": 600, "tpm": 1_000_000},
        "standard": {"rpm": 3_000, "tpm": 5_000_000},
        "premium": {"rpm": 0, "tpm": 0},
    },
)
# The tier of an organization without a live subscription, and of a plan whose tier is not in
# the table (docs/decisions.md).
LLM_DEFAULT_RATE_LIMIT_TIER: str = env("LLM_DEFAULT_RATE_LIMIT_TIER", default="free")


def _check_rate_limit_tiers(tiers: object, default: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    if not isinstance(tiers, dict) or default not in tiers:
        raise ImproperlyConfigured(
            "LLM_RATE_LIMIT_TIERS must be an object naming LLM_DEFAULT_RATE_LIMIT_TIER."
        )
    for name, limits in tiers.items():
        if not isinstance(limits, dict) or set(limits) != {"rpm", "tpm"}:
            raise ImproperlyConfigured(f"LLM_RATE_LIMIT_TIERS[{name!r}] must have exactly rpm and tpm.")
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in limits.values()):
            raise ImproperlyConfigured(f"LLM_RATE_LIMIT_TIERS[{name!r}]: limits are whole numbers >= 0.")


_check_rate_limit_tiers(LLM_RATE_LIMIT_TIERS, LLM_DEFAULT_RATE_LIMIT_TIER)
# A call the upstream answered while the database refused its settlement is charged by a
# background retry (billing/gateway/settlement.py) for at most this long, then logged as owed.
LLM_SETTLEMENT_RETRY_SECONDS: float = env.float("LLM_SETTLEMENT_RETRY_SECONDS", default=86_400.0)
# Where a settlement the database refused is written (fsync'ed) until it is charged, so a retry
# that gives up or a process that dies does not make the call free: the settle_spooled_calls
# task (and the expire_reservations task, first) charge what is left there. Web processes and
# the Celery worker must see the same directory (a shared volume when they run apart). Each call
# in flight also has an open record there (<reservation_id>.open, not fsync'ed), charged at its
# estimate by the same task if its web process dies mid-call
# (billing/services/gateway_calls/open_calls.py).
LLM_SETTLEMENT_SPOOL_DIR: str = env(
    "LLM_SETTLEMENT_SPOOL_DIR", default=str(BASE_DIR / "var" / "settlement-spool")
)
# While a stream is relayed, its open record in LLM_SETTLEMENT_SPOOL_DIR
# (billing/services/gateway_calls/open_calls.py) is rewritten with the output counted so far at
# most this often (not fsync'ed): a process killed mid-stream is charged about what it streamed up
# to then.
LLM_SPOOL_PROGRESS_SECONDS: float = env.float("LLM_SPOOL_PROGRESS_SECONDS", default=5.0)
# When a streaming client goes away, the gateway keeps reading the upstream (relaying nothing)
# for at most this long, and never past LLM_MAX_CALL_SECONDS, to settle with the upstream's own
# usage. 0: stop at once and charge the estimate (docs/decisions.md).
LLM_DISCONNECT_DRAIN_SECONDS: float = env.float("LLM_DISCONNECT_DRAIN_SECONDS", default=120.0)
# Models whose hidden reasoning tokens the streamed text does not show (shell-style patterns,
# case-insensitive): a stream of one that ends without its usage is charged its output bound.
# A call that sets reasoning_effort, or a stream that shows reasoning, is treated the same.
LLM_REASONING_MODELS: list[str] = env.list(
    "LLM_REASONING_MODELS",
    default=["o1*", "o3*", "o4*", "gpt-5*", "*reason*", "*thinking*", "*-r1*", "qwq*"],
)
# POST /api/v1/llm/chat/completions from an API-key caller with a warm cache is served by the
# lean route (billing/gateway/lean.py: a plain ASGI handler with the same middleware and answers,
# without Django's request handling); off: every call takes the Django route below.
LLM_GATEWAY_LEAN_ROUTE: bool = env.bool("LLM_GATEWAY_LEAN_ROUTE", default=True)
# The middleware of the gateway's endpoints (/api/v1/llm/, billing/gateway/asgi.py): each runs
# on the event loop. Everything else is served with MIDDLEWARE.
LLM_GATEWAY_MIDDLEWARE: list[str] = [
    "orgbilling.observability.request_id.RequestIdMiddleware",
    "orgbilling.observability.metrics.RequestMetricsMiddleware",
    "orgbilling.input_guard.InputGuardMiddleware",
    "billing.gateway.asgi.GatewaySecurityMiddleware",
    "billing.gateway.asgi.GatewaySessionMiddleware",
    "billing.gateway.asgi.GatewayAuthenticationMiddleware",
    "orgbilling.api.throttling.RateLimitHeadersMiddleware",
]
