"""Example payloads for the OpenAPI documentation of the credit and allocation endpoints."""

from typing import Any

POOL: dict[str, Any] = {
    "org_id": "org_abc123",
    "total_credits": 10000.0,
    "allocated_credits": 5000.0,
    "used_credits": 120.5,
    "available_credits": 5000.0,
}

ALLOCATION: dict[str, Any] = {
    "id": 7,
    "org_id": "org_abc123",
    "user_id": "e2e-user-123",
    "user_email": "dev@acme.test",
    "department_id": None,
    "allocated_credits": 5000.0,
    "used_credits": 120.5,
    "reserved_credits": 0.0,
    "remaining_credits": 4879.5,
    "is_active": True,
    "expires_at": None,
    "daily_cap_credits": None,
    "spent_today_credits": 0.0,
    "period": None,
    "period_mode": None,
    "period_amount_credits": None,
    "rollover_cap_credits": None,
    "current_period_start": None,
    "next_period_start": None,
    "period_used_credits": None,
    "allocated_by": "admin-user",
    "revoked_at": None,
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-02T00:00:00Z",
}
