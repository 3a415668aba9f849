"""Subscriptions through Lago, credit purchases through Stripe, and their webhooks.
Star-imported at the end of base.py. Every secret comes from the environment; none has a default.

``SUBSCRIPTION_BACKEND`` (base.py) picks the backend: ``local`` (default) or ``lago``.
"""

from decimal import Decimal

from django.core.exceptions import ImproperlyConfigured

from orgbilling.settings.env import env

# --- Lago (subscriptions, invoices) ------------------------------------------------------------
# The Lago API root, e.g. https://api.getlago.com/ or http://lago-api:3000/ (self-hosted).
LAGO_API_URL: str = env("LAGO_API_URL", default="")
LAGO_API_KEY: str = env("LAGO_API_KEY", default="")
# Longest wait for one Lago call; a slower answer is "Lago unavailable" (503, retried later).
LAGO_TIMEOUT_SECONDS: float = env.float("LAGO_TIMEOUT_SECONDS", default=10.0)
# The plans' billing interval in Lago (Plan.monthly_price is a monthly price).
LAGO_PLAN_INTERVAL: str = env("LAGO_PLAN_INTERVAL", default="monthly")
# Invoices fetched per page by the invoice sync.
LAGO_INVOICE_PAGE_SIZE: int = env.int("LAGO_INVOICE_PAGE_SIZE", default=100)
# How Lago signs our webhook endpoint ("jwt", Lago's default, or "hmac"), as chosen in Lago; an
# event claiming the other algorithm is refused (no downgrade to a weaker or unconfigured check).
LAGO_WEBHOOK_SIGNATURE: str = env("LAGO_WEBHOOK_SIGNATURE", default="jwt")
if LAGO_WEBHOOK_SIGNATURE not in ("jwt", "hmac"):
    raise ImproperlyConfigured('LAGO_WEBHOOK_SIGNATURE must be "jwt" or "hmac".')
# Webhooks signed with "hmac": the HMAC signature token of Lago (Developers > Webhooks).
LAGO_WEBHOOK_HMAC_SECRET: str = env("LAGO_WEBHOOK_HMAC_SECRET", default="")
# Webhooks signed with "jwt" (Lago's default): RS256 with Lago's public key, fetched from Lago
# and cached this long (a signature that fails is re-checked once with a freshly fetched key).
LAGO_WEBHOOK_JWT_ISSUER: str = env("LAGO_WEBHOOK_JWT_ISSUER", default="https://api.getlago.com")
LAGO_WEBHOOK_PUBLIC_KEY_CACHE_SECONDS: int = env.int("LAGO_WEBHOOK_PUBLIC_KEY_CACHE_SECONDS", default=86400)
# A pending subscription is retried by the task once it is this old (a request may still be on it).
LAGO_PENDING_RETRY_AFTER_SECONDS: int = env.int("LAGO_PENDING_RETRY_AFTER_SECONDS", default=60)
# Calls to start a pending subscription before the retry task gives up on it (then it is ended
# ``failed``, after terminating it at the backend in case a lost answer had started it there).
# The task runs every 5 minutes: 288 attempts are about a day.
LAGO_MAX_ACTIVATION_ATTEMPTS: int = env.int("LAGO_MAX_ACTIVATION_ATTEMPTS", default=288)

# --- Stripe (credit purchases) ------------------------------------------------------------------
# Without a secret key, org admins get 503 payments_not_configured from POST /credits/{org}/add.
STRIPE_SECRET_KEY: str = env("STRIPE_SECRET_KEY", default="")
# The signing secret of the webhook endpoint (whsec_...); without it the Stripe webhook is 503.
STRIPE_WEBHOOK_SECRET: str = env("STRIPE_WEBHOOK_SECRET", default="")
# Oldest signature timestamp accepted (replay protection), in seconds.
STRIPE_WEBHOOK_TOLERANCE_SECONDS: int = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
# Only to point the client at a stand-in (tests); empty means Stripe's own API.
STRIPE_API_BASE: str = env("STRIPE_API_BASE", default="")
STRIPE_TIMEOUT_SECONDS: float = env.float("STRIPE_TIMEOUT_SECONDS", default=20.0)
# Where Checkout sends the buyer back (both required for purchases), e.g.
# https://app.example.com/billing?checkout=success&session={CHECKOUT_SESSION_ID} (Stripe fills it in).
STRIPE_CHECKOUT_SUCCESS_URL: str = env("STRIPE_CHECKOUT_SUCCESS_URL", default="")
STRIPE_CHECKOUT_CANCEL_URL: str = env("STRIPE_CHECKOUT_CANCEL_URL", default="")
# Where Checkout sends a user back after buying individual credits (POST /api/v1/me/credits/purchase).
# Empty: the two above, unless they name {org_id} (then individual purchases are not available).
STRIPE_INDIVIDUAL_CHECKOUT_SUCCESS_URL: str = env("STRIPE_INDIVIDUAL_CHECKOUT_SUCCESS_URL", default="")
STRIPE_INDIVIDUAL_CHECKOUT_CANCEL_URL: str = env("STRIPE_INDIVIDUAL_CHECKOUT_CANCEL_URL", default="")

# --- Credit prices -------------------------------------------------------------------------------
# What one credit costs (DESIGN.md: 1 credit = $0.01, $50 buys 5,000 credits).
CREDIT_PRICE_USD: Decimal = Decimal(env("CREDIT_PRICE_USD", default="0.01"))
# Bounds of one card purchase, in USD (Stripe refuses charges under $0.50).
CREDIT_PURCHASE_MIN_USD: Decimal = Decimal(env("CREDIT_PURCHASE_MIN_USD", default="5.00"))
CREDIT_PURCHASE_MAX_USD: Decimal = Decimal(env("CREDIT_PURCHASE_MAX_USD", default="10000.00"))

# --- Auto top-up (off-session charges of a saved card) ------------------------------------------
# Payment failures in a row after which an organization's auto top-up is turned off.
AUTO_TOPUP_MAX_CONSECUTIVE_FAILURES: int = env.int("AUTO_TOPUP_MAX_CONSECUTIVE_FAILURES", default=3)
# A top-up whose PaymentIntent could not be created (Stripe unreachable) is retried by the next
# runs with the same idempotency key for this long, then given up (Stripe keeps keys for 24 hours).
AUTO_TOPUP_RETRY_WINDOW_SECONDS: int = env.int("AUTO_TOPUP_RETRY_WINDOW_SECONDS", default=6 * 3600)
# ...but not before this long after the last attempt (a run may still be waiting for Stripe).
AUTO_TOPUP_RETRY_AFTER_SECONDS: int = env.int("AUTO_TOPUP_RETRY_AFTER_SECONDS", default=120)
