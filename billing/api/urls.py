"""Org-billing API routes (DESIGN.md §6), mounted at /api/v1/org-billing/."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
