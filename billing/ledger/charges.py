"""What every charge shares: its result types, its input checks, its replay and its ledger row.

A charge raises the payer's ``used_credits`` (allocation and pool, or individual balance) and
appends its ``CreditUsageAttribution`` row in one transaction; the row's ``request_id`` makes
the charge idempotent. Charges are audited by their ledger rows; ``AuditEvent`` rows mark only
notable crossings (an allocation passing 90% used) to keep the hot path to one insert
(docs/decisions.md).
"""

import json
from dataclasses import dataclass, field
from typing import Any

from billing.audit import record_audit_event
from billing.errors import RequestIdConflict
from billing.ledger.eligibility import day_spent, utc_day
from billing.models import (
    CreditReservation,
    CreditUsageAttribution,
    IndividualCreditBalance,
    OrganizationCreditPool,
    ServiceType,
    UserCreditAllocation,
)
from organizations.models import User
from orgbilling.errors import ValidationFailed

EXHAUSTION_THRESHOLD_PERCENT = 90


@dataclass(frozen=True)
class DeductionResult:
    """Outcome of a charge. ``remaining_credits`` is what the payer had free right after it."""

    success: bool
    remaining_credits: int
    credits_charged: int
    attribution_id: int
    replayed: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class ReservationResult:
    reservation_id: int
    amount: int
    remaining_credits: int
    replayed: bool = False


# An individual balance has no daily cap: ``DAY_FIELDS`` are saved only for allocations.
DAY_FIELDS_OF_ALLOCATION = ["cap_day", "cap_day_spent"]


def day_fields(account: UserCreditAllocation | IndividualCreditBalance) -> list[str]:
    return DAY_FIELDS_OF_ALLOCATION if isinstance(account, UserCreditAllocation) else []


def count_in_day(account: UserCreditAllocation | IndividualCreditBalance, amount: int) -> None:
    """Count a charge or a hold in the allocation's spend of today (UTC), for its daily cap."""
    if isinstance(account, UserCreditAllocation):
        today = utc_day()
        account.cap_day_spent = day_spent(account, today) + amount
        account.cap_day = today


def uncount_hold(
    account: UserCreditAllocation | IndividualCreditBalance, reservation: CreditReservation
) -> None:
    """A hold that ends (released, or traded for its charge) leaves the day it was counted in;
    a hold of an earlier day left with that day's counter. ``max`` covers holds placed before
    the counter existed."""
    if isinstance(account, UserCreditAllocation) and account.cap_day == utc_day(reservation.created_at):
        account.cap_day_spent = max(account.cap_day_spent - reservation.amount, 0)


@dataclass
class Payer:
    """The locked rows a charge writes: pool + allocation, or an individual balance."""

    pool: OrganizationCreditPool | None
    account: UserCreditAllocation | IndividualCreditBalance

    @property
    def allocation(self) -> UserCreditAllocation | None:
        return self.account if isinstance(self.account, UserCreditAllocation) else None

    def save(self) -> None:
        self.account.save(
            update_fields=["used_credits", "reserved_credits", *day_fields(self.account), "updated_at"]
        )
        if self.pool is not None:
            self.pool.save(update_fields=["used_credits", "updated_at"])


@dataclass(frozen=True)
class Charge:
    service_type: str = ServiceType.LLM
    service_name: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    token_details: dict[str, int] = field(default_factory=dict)  # TOKEN_DETAILS, all present


MAX_TOKENS = 2**31 - 1
# The breakdown columns of an attribution row: parts of input_tokens, then of output_tokens.
INPUT_DETAILS = ("cached_tokens", "cache_write_tokens", "audio_input_tokens")
OUTPUT_DETAILS = ("reasoning_tokens", "audio_output_tokens")
TOKEN_DETAILS = INPUT_DETAILS + OUTPUT_DETAILS


def token_detail_params(details: dict[str, int] | None) -> dict[str, int]:
    """Every breakdown column, 0 where ``details`` has none (validated by ``validate_charge_fields``)."""
    return {name: (details or {}).get(name, 0) for name in TOKEN_DETAILS}


def validate_charge_fields(
    *,
    request_id: str,
    service_type: str = ServiceType.LLM,
    service_name: str = "",
    input_tokens: int = 0,
    output_tokens: int = 0,
    metadata: dict[str, Any] | None = None,
    token_details: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Refuse what the ledger columns cannot hold, before anything is locked or written;
    return the metadata as it will be stored. ``token_details`` (``TOKEN_DETAILS``) are parts
    of the totals: they may not exceed them."""
    problems: dict[str, str] = {}
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 128 or "\x00" in request_id:
        problems["request_id"] = "1-128 characters, no NUL"
    if service_type not in ServiceType.values:
        problems["service_type"] = f"one of {', '.join(ServiceType.values)}"
    if not isinstance(service_name, str) or len(service_name) > 200 or "\x00" in service_name:
        problems["service_name"] = "at most 200 characters, no NUL"
    for name, tokens in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
        if isinstance(tokens, bool) or not isinstance(tokens, int) or not 0 <= tokens <= MAX_TOKENS:
            problems[name] = f"a whole number from 0 to {MAX_TOKENS}"
    details = token_details or {}
    for name, tokens in details.items():
        if name not in TOKEN_DETAILS:
            problems[name] = "not a token breakdown column"
        elif isinstance(tokens, bool) or not isinstance(tokens, int) or not 0 <= tokens <= MAX_TOKENS:
            problems[name] = f"a whole number from 0 to {MAX_TOKENS}"
    if not problems:
        for total, (name, parts) in ((input_tokens, ("input_tokens", INPUT_DETAILS)),
                                     (output_tokens, ("output_tokens", OUTPUT_DETAILS))):  # fmt: skip
            if sum(details.get(part, 0) for part in parts) > total:
                problems[name] = f"at least the sum of {', '.join(parts)}"
    stored = metadata or {}
    try:
        encoded = json.dumps(stored, allow_nan=False)
    except (TypeError, ValueError):
        problems["metadata"] = "a JSON object of strings, numbers, booleans, lists and objects"
    else:
        if not isinstance(stored, dict) or "\\u0000" in encoded:
            problems["metadata"] = "a JSON object without NUL characters"
    if problems:
        raise ValidationFailed("The charge is not valid.", details=problems)
    return stored


def find_charge(org_id: str | None, user: User, request_id: str) -> CreditUsageAttribution | None:
    rows = CreditUsageAttribution.objects.filter(request_id=request_id)
    rows = rows.filter(org_id=org_id) if org_id is not None else rows.filter(org__isnull=True, user=user)
    return rows.first()


def replay_charge(row: CreditUsageAttribution, *, user: User, amount: int | None) -> DeductionResult:
    if row.user_id != user.pk or (amount is not None and row.credits_used != amount):
        raise RequestIdConflict(
            details={"request_id": row.request_id, "charged": row.credits_used, "requested": amount}
        )
    return DeductionResult(
        success=True,
        remaining_credits=row.balance_after,
        credits_charged=row.credits_used,
        attribution_id=row.pk,
        replayed=True,
    )


def audit_exhaustion(
    *, org_id: str, user: User | int, allocation_id: int, allocated: int, used_before: int, used_after: int
) -> None:
    """Record ``allocation.exhausted`` when a charge takes an allocation across 90% used
    (``user`` may be a user id: the username is read only when the event is recorded)."""
    threshold = allocated * EXHAUSTION_THRESHOLD_PERCENT
    if allocated and used_before * 100 < threshold <= used_after * 100:
        if not isinstance(user, User):
            user = User.objects.get(pk=user)
        record_audit_event(
            action="allocation.exhausted",
            org_id=org_id,
            target_type="allocation",
            target_id=allocation_id,
            metadata={
                "user_id": user.username,
                "percent_used": EXHAUSTION_THRESHOLD_PERCENT,
                "used": used_after,
                "allocated": allocated,
            },
        )


def record_charge(
    payer: Payer, *, org_id: str | None, user: User, amount: int, request_id: str, charge: Charge
) -> CreditUsageAttribution:
    payer.account.used_credits += amount
    count_in_day(payer.account, amount)
    if payer.pool is not None:
        payer.pool.used_credits += amount
    payer.save()
    row = CreditUsageAttribution.objects.create(
        org_id=org_id,
        user=user,
        allocation=payer.allocation,
        service_type=charge.service_type,
        service_name=charge.service_name,
        input_tokens=charge.input_tokens,
        output_tokens=charge.output_tokens,
        **token_detail_params(charge.token_details),
        credits_used=amount,
        balance_after=payer.account.free_credits,
        request_id=request_id,
        request_metadata=charge.metadata,
    )
    allocation = payer.allocation
    if allocation is not None:
        audit_exhaustion(
            org_id=allocation.org_id,
            user=user,
            allocation_id=allocation.pk,
            allocated=allocation.allocated_credits,
            used_before=allocation.used_credits - amount,
            used_after=allocation.used_credits,
        )
    return row
