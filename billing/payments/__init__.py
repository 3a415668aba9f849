"""Money coming in from outside: subscriptions and invoices from Lago, card purchases of credits
through Stripe, and the Celery tasks that keep both in step (``billing.payments.tasks``)."""
