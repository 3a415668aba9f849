"""Charging services: check, deduct, reserve → settle / release, for org and individual credits.

The hot path. A charge raises the payer's ``used_credits`` (allocation and pool, or individual
balance) and appends its ``CreditUsageAttribution`` row in one transaction; the row's
``request_id`` makes the charge idempotent. Locks follow ``billing.services.locks``.
Charges are audited by their ledger rows; ``AuditEvent`` rows mark only notable crossings
(an allocation passing 90% used) to keep the hot path to one insert (docs/decisions.md).
"""

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from billing.errors import (
    AllocationExpired,
    InsufficientCredits,
    OrganizationInactive,
    OrganizationNotFound,
    RequestIdConflict,
    ReservationNotFound,
    ReservationNotHeld,
)
from billing.models import (
    CreditReservation,
    CreditUsageAttribution,
    IndividualCreditBalance,
    OrganizationCreditPool,
    ServiceType,
    UserCreditAllocation,
)
from billing.money import validate_millicredits
from billing.services import holds
from billing.services.audit import record_audit_event
from billing.services.locks import (
    lock_active_allocation,
    lock_individual_balance,
    lock_pool,
    lock_reservation,
)
from billing.services.sql import NotApplied, ledger_cursor
from organizations.models import Organization, User
from orgbilling.errors import ValidationFailed
from orgbilling.observability.charges import charges_counted, refusals_reported

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


@dataclass
class _Payer:
    """The locked rows a charge writes: pool + allocation, or an individual balance."""

    pool: OrganizationCreditPool | None
    account: UserCreditAllocation | IndividualCreditBalance

    @property
    def allocation(self) -> UserCreditAllocation | None:
        return self.account if isinstance(self.account, UserCreditAllocation) else None

    def save(self) -> None:
        self.account.save(update_fields=["used_credits", "reserved_credits", "updated_at"])
        if self.pool is not None:
            self.pool.save(update_fields=["used_credits", "updated_at"])


@dataclass(frozen=True)
class _Charge:
    service_type: str = ServiceType.LLM
    service_name: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


MAX_TOKENS = 2**31 - 1


def validate_charge_fields(
    *,
    request_id: str,
    service_type: str = ServiceType.LLM,
    service_name: str = "",
    input_tokens: int = 0,
    output_tokens: int = 0,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Refuse what the ledger columns cannot hold, before anything is locked or written;
    return the metadata as it will be stored."""
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


def _check_usable(allocation: UserCreditAllocation) -> None:
    if allocation.expires_at is not None and allocation.expires_at <= timezone.now():
        raise AllocationExpired(
            details={"org_id": allocation.org_id, "expires_at": allocation.expires_at.isoformat()}
        )


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


def _record_charge(
    payer: _Payer, *, org_id: str | None, user: User, amount: int, request_id: str, charge: _Charge
) -> CreditUsageAttribution:
    payer.account.used_credits += amount
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


def _find_reservation(org_id: str | None, user: User, request_id: str) -> CreditReservation | None:
    rows = CreditReservation.objects.filter(request_id=request_id)
    rows = rows.filter(org_id=org_id) if org_id is not None else rows.filter(org__isnull=True, user=user)
    return rows.first()


@refusals_reported("hold")
def reserve_credits(
    *,
    user: User,
    org_id: str | None,
    amount: int,
    request_id: str,
    ttl_seconds: int | None = None,
) -> ReservationResult:
    """Hold ``amount`` millicredits for a call about to run. Idempotent on ``request_id`` while
    the hold lasts; a request id that was already charged, settled or released is refused.
    A hold of 0 (a free model, a caller's own provider key) still checks that the payer may
    spend: an active member with a usable allocation, or the user's own balance."""
    amount = validate_millicredits(amount, allow_zero=True)
    validate_charge_fields(request_id=request_id)
    ttl = ttl_seconds if ttl_seconds is not None else settings.CREDIT_RESERVATION_TTL_SECONDS
    now = timezone.now()
    params = {
        "org_id": org_id,
        "user_id": user.pk,
        "amount": amount,
        "request_id": request_id,
        "now": now,
        "expires_at": now + timedelta(seconds=ttl),
    }
    try:
        with transaction.atomic(), ledger_cursor() as cursor:
            reservation_id, free = holds.hold(cursor, params)
        return ReservationResult(reservation_id=reservation_id, amount=amount, remaining_credits=free)
    except NotApplied:
        pass  # rolled back: the ORM path below replays, refuses with a typed error, or holds
    if org_id is not None:
        _require_active_org(org_id)
    try:
        with transaction.atomic():
            # Holds change only the allocation (level 2), so the pool lock is not needed.
            if org_id is None:
                account: UserCreditAllocation | IndividualCreditBalance = lock_individual_balance(user.pk)
            else:
                account = lock_active_allocation(org_id, user.pk)
                _check_usable(account)
            previous = _find_reservation(org_id, user, request_id)
            if previous is not None:
                return _reservation_replay(previous, user=user, amount=amount, remaining=account.free_credits)
            if find_charge(org_id, user, request_id) is not None:
                raise RequestIdConflict(
                    "This request id was already charged.", details={"request_id": request_id}
                )
            if amount > account.free_credits:
                raise InsufficientCredits(details={"required": amount, "available": account.free_credits})
            account.reserved_credits += amount
            account.save(update_fields=["reserved_credits", "updated_at"])
            reservation = CreditReservation.objects.create(
                org_id=org_id,
                user=user,
                allocation=account if isinstance(account, UserCreditAllocation) else None,
                request_id=request_id,
                amount=amount,
                expires_at=timezone.now() + timedelta(seconds=ttl),
            )
    except IntegrityError:
        previous = _find_reservation(org_id, user, request_id)
        if previous is None:
            raise
        holder: UserCreditAllocation | IndividualCreditBalance = (
            previous.allocation
            if previous.allocation is not None
            else IndividualCreditBalance.objects.get(user=user)
        )
        return _reservation_replay(previous, user=user, amount=amount, remaining=holder.free_credits)
    return ReservationResult(
        reservation_id=reservation.pk, amount=amount, remaining_credits=account.free_credits
    )


def _require_active_org(org_id: str) -> None:
    is_active = Organization.objects.filter(pk=org_id).values_list("is_active", flat=True).first()
    if is_active is None:
        raise OrganizationNotFound(details={"org_id": org_id})
    if not is_active:
        raise OrganizationInactive(details={"org_id": org_id})


def _reservation_replay(
    row: CreditReservation, *, user: User, amount: int, remaining: int
) -> ReservationResult:
    if row.user_id != user.pk or row.amount != amount:
        raise RequestIdConflict(
            details={"request_id": row.request_id, "held": row.amount, "requested": amount}
        )
    if row.status != CreditReservation.Status.HELD:
        # A retry must not look like a live hold: the call it guarded is over.
        raise ReservationNotHeld(details={"reservation_id": row.pk, "status": row.status})
    return ReservationResult(
        reservation_id=row.pk, amount=row.amount, remaining_credits=remaining, replayed=True
    )


def _load_reservation(reservation_id: int) -> CreditReservation:
    reservation = CreditReservation.objects.filter(pk=reservation_id).first()
    if reservation is None:
        raise ReservationNotFound(details={"reservation_id": reservation_id})
    return reservation


def _lock_reservation_payer(reservation: CreditReservation, *, with_pool: bool) -> _Payer:
    if reservation.org_id is None:
        return _Payer(pool=None, account=lock_individual_balance(reservation.user_id))
    pool = lock_pool(reservation.org_id) if with_pool else None
    # An org reservation always names its allocation (CHECK reservation_allocation_matches_org).
    allocation = UserCreditAllocation.objects.select_for_update(of=("self",)).get(
        pk=reservation.allocation_id or 0
    )
    return _Payer(pool=pool, account=allocation)


def _settle_fast(
    reservation_id: int, amount: int, caller_metadata: dict[str, Any], *, params: dict[str, Any]
) -> DeductionResult | None:
    """The common settlement (a held reservation, a cost the payer can pay) as SQL; None when
    it does not apply (rolled back: ``settle_reservation``'s ORM path handles the rest)."""
    try:
        with transaction.atomic(), ledger_cursor() as cursor:
            params["now"] = timezone.now()
            held, done = holds.settle(
                cursor,
                reservation_id,
                params,
                metadata=lambda held: Jsonb({
                    **caller_metadata,
                    "reservation_id": reservation_id,
                    "held_credits": held.amount,
                    "requested_credits": amount,
                }),
            )  # fmt: skip
            if held.org_id is not None and done.allocation_id is not None:
                audit_exhaustion(
                    org_id=held.org_id,
                    user=held.user_id,
                    allocation_id=done.allocation_id,
                    allocated=done.allocated,
                    used_before=done.used - amount,
                    used_after=done.used,
                )
    except NotApplied:
        return None
    return DeductionResult(
        success=True, remaining_credits=done.free, credits_charged=amount, attribution_id=done.attribution_id
    )


@charges_counted("settlement")
def settle_reservation(
    *,
    reservation_id: int,
    actual_amount: int,
    service_type: str = ServiceType.LLM,
    service_name: str = "",
    input_tokens: int = 0,
    output_tokens: int = 0,
    metadata: dict[str, Any] | None = None,
) -> DeductionResult:
    """Turn a hold into a charge of ``actual_amount`` millicredits (zero allowed) and free the
    rest. A cost above the hold is charged as far as the payer's free credits reach; the part
    that could not be charged is recorded in the row's metadata. Settling twice with the same
    amount returns the first result. A hold that expired before the call finished is settled
    late, from whatever the payer has free, rather than leaving the call unpaid."""
    actual_amount = validate_millicredits(actual_amount, allow_zero=True)
    caller_metadata = validate_charge_fields(
        request_id="settle",
        service_type=service_type,
        service_name=service_name,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        metadata=metadata,
    )
    settled = _settle_fast(reservation_id, actual_amount, caller_metadata, params={
        "amount": actual_amount,
        "service_type": service_type,
        "service_name": service_name,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    })  # fmt: skip
    if settled is not None:
        return settled
    reservation = _load_reservation(reservation_id)
    user = reservation.user
    with transaction.atomic():
        payer = _lock_reservation_payer(reservation, with_pool=True)
        reservation = lock_reservation(reservation_id)
        if reservation.status == CreditReservation.Status.SETTLED and reservation.attribution is not None:
            row = reservation.attribution
            if reservation.credits_requested != actual_amount:
                raise RequestIdConflict(
                    details={
                        "request_id": reservation.request_id,
                        "settled_at": reservation.credits_requested,
                    }
                )
            return DeductionResult(
                success=True,
                remaining_credits=row.balance_after,
                credits_charged=row.credits_used,
                attribution_id=row.pk,
                replayed=True,
            )
        if reservation.status not in (CreditReservation.Status.HELD, CreditReservation.Status.EXPIRED):
            raise ReservationNotHeld(details={"reservation_id": reservation_id, "status": reservation.status})
        late = reservation.status == CreditReservation.Status.EXPIRED
        if not late:
            payer.account.reserved_credits -= reservation.amount
        previous = find_charge(reservation.org_id, user, reservation.request_id)
        if previous is not None:
            # Charged directly under the same request id while the hold was open: the call is
            # paid once, by that charge; the hold just goes away.
            payer.account.save(update_fields=["reserved_credits", "updated_at"])
            reservation.status = CreditReservation.Status.RELEASED
            reservation.finished_at = timezone.now()
            reservation.save(update_fields=["status", "finished_at"])
            return replay_charge(previous, user=user, amount=None)
        # With the hold returned, free credits include it: a cost above the hold draws on the rest.
        charged = min(actual_amount, max(0, payer.account.free_credits))
        charge_metadata = {
            **caller_metadata,
            "reservation_id": reservation.pk,
            "held_credits": reservation.amount,
            "requested_credits": actual_amount,
        }
        if charged != actual_amount:
            charge_metadata["uncharged_credits"] = actual_amount - charged
        if late:
            charge_metadata["late_settlement"] = True
        row = _record_charge(
            payer,
            org_id=reservation.org_id,
            user=user,
            amount=charged,
            request_id=reservation.request_id,
            charge=_Charge(service_type, service_name, input_tokens, output_tokens, charge_metadata),
        )
        reservation.status = CreditReservation.Status.SETTLED
        reservation.credits_charged = charged
        reservation.credits_requested = actual_amount
        reservation.attribution = row
        reservation.finished_at = timezone.now()
        reservation.save(
            update_fields=["status", "credits_charged", "credits_requested", "attribution", "finished_at"]
        )
    return DeductionResult(
        success=True, remaining_credits=row.balance_after, credits_charged=charged, attribution_id=row.pk
    )


def release_reservation(
    *, reservation_id: int, status: str = CreditReservation.Status.RELEASED
) -> CreditReservation:
    """Return a hold's credits (the call failed or was never made). Releasing twice is a no-op;
    releasing a settled hold raises ``ReservationNotHeld``."""
    reservation = _load_reservation(reservation_id)
    with transaction.atomic():
        payer = _lock_reservation_payer(reservation, with_pool=False)
        reservation = lock_reservation(reservation_id)
        if reservation.status in (CreditReservation.Status.RELEASED, CreditReservation.Status.EXPIRED):
            return reservation
        if reservation.status != CreditReservation.Status.HELD:
            raise ReservationNotHeld(details={"reservation_id": reservation_id, "status": reservation.status})
        payer.account.reserved_credits -= reservation.amount
        payer.account.save(update_fields=["reserved_credits", "updated_at"])
        reservation.status = status
        reservation.finished_at = timezone.now()
        reservation.save(update_fields=["status", "finished_at"])
    return reservation


def expire_reservations(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Release holds past their ``expires_at`` (a crashed caller never settled them)."""
    cutoff = now or timezone.now()
    ids = list(
        CreditReservation.objects.filter(status=CreditReservation.Status.HELD, expires_at__lt=cutoff)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:limit]
    )
    for reservation_id in ids:
        release_reservation(reservation_id=reservation_id, status=CreditReservation.Status.EXPIRED)
    return len(ids)


def add_individual_credits(
    *, user: User, amount: int, actor: User | None = None, actor_label: str = ""
) -> IndividualCreditBalance:
    """Add ``amount`` millicredits to a user's own balance (the no-organization fallback)."""
    amount = validate_millicredits(amount)
    with transaction.atomic():
        balance = lock_individual_balance(user.pk)
        balance.total_credits += amount
        balance.save(update_fields=["total_credits", "updated_at"])
        record_audit_event(
            action="individual.credits_added",
            actor=actor,
            actor_label=actor_label,
            target_type="individual_balance",
            target_id=user.username,
            metadata={"credits": amount, "total_after": balance.total_credits},
        )
    return balance


__all__ = [
    "DeductionResult",
    "ReservationResult",
    "add_individual_credits",
    "expire_reservations",
    "release_reservation",
    "reserve_credits",
    "settle_reservation",
]
