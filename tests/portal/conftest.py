"""The portal's tests buy credits against the payments tests' local Stripe stand-in."""

from tests.billing.payments.conftest import _stripe_server, fake_stripe

__all__ = ["_stripe_server", "fake_stripe"]
