"""Money coming in from outside: subscriptions and invoices from Lago, card purchases of credits
through Stripe, the verified webhooks of both, stored and processed once (``webhook_events``). The Celery
tasks that keep both in step are in ``billing/tasks.py``."""
