"""External billing backends behind one interface, chosen by ``settings.SUBSCRIPTION_BACKEND``."""

from billing.backends.base import BackendSubscription, SubscriptionBackend, get_subscription_backend

__all__ = ["BackendSubscription", "SubscriptionBackend", "get_subscription_backend"]
