"""Subscription, credit and allocation routes."""

urlpatterns: list = []
