"""Holds: reserve credits before a metered call, then settle (charge) or release them.

Each service first tries its SQL fast path (``billing.ledger.holds``); when that changes
nothing it rolls back and the ORM path below replays, refuses with the typed error of
``billing.ledger.eligibility``, or handles the unusual case. Locks follow ``billing.ledger.locks``.
"""

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from billing.errors import RequestIdConflict, ReservationNotFound, ReservationNotHeld
from billing.ledger import holds
from billing.ledger.charges import (
    Charge,
    DeductionResult,
    Payer,
    ReservationResult,
    count_in_day,
    day_fields,
    find_charge,
    record_charge,
    replay_charge,
    token_detail_params,
    uncount_hold,
    validate_charge_fields,
)
from billing.ledger.eligibility import (
    daily_cap_refusal,
    expiry_refusal,
    funds_refusal,
    require_active_org,
)
from billing.ledger.locks import (
    lock_active_allocation,
    lock_individual_balance,
    lock_pool,
    lock_reservation,
)
from billing.ledger.sql import NotApplied, ledger_cursor
from billing.models import (
    CreditReservation,
    CreditUsageAttribution,
    IndividualCreditBalance,
    ServiceType,
    UserCreditAllocation,
)
from billing.money import validate_millicredits
from organizations.models import User
from orgbilling.observability.charges import charges_counted, refusals_reported

Account = UserCreditAllocation | IndividualCreditBalance


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
    cache_generation: int | None = None,
) -> ReservationResult:
    """Hold ``amount`` millicredits for a call about to run. Idempotent on ``request_id`` while
    the hold lasts; a request id that was already charged, settled or released is refused.
    A hold of 0 (a free model, a caller's own provider key) still checks that the payer may
    spend: an active member with a usable allocation, or the user's own balance.
    ``cache_generation``: the gateway cache generation the caller's reads came from; when it is
    no longer current nothing is held and ``holds.GenerationMoved`` is raised."""
    amount = validate_millicredits(amount, allow_zero=True)
    validate_charge_fields(request_id=request_id)
    ttl = ttl_seconds if ttl_seconds is not None else settings.CREDIT_RESERVATION_TTL_SECONDS
    held = _hold_fast(
        user=user,
        org_id=org_id,
        amount=amount,
        request_id=request_id,
        ttl=ttl,
        cache_generation=cache_generation,
    )
    if held is not None:
        return held
    if org_id is not None:
        require_active_org(org_id)
    try:
        return _hold_locked(user=user, org_id=org_id, amount=amount, request_id=request_id, ttl=ttl)
    except IntegrityError:
        # Another hold under this request id committed between our check and our insert.
        previous = _find_reservation(org_id, user, request_id)
        if previous is None:
            raise
        holder: Account = (
            previous.allocation
            if previous.allocation is not None
            else IndividualCreditBalance.objects.get(user=user)
        )
        return _reservation_replay(previous, user=user, amount=amount, remaining=holder.free_credits)


def hold_params(
    *, user_id: int, org_id: str | None, amount: int, request_id: str, ttl: int
) -> dict[str, Any]:
    """The fast hold's parameters (``holds.hold_params``), its amount and request id validated."""
    validate_charge_fields(request_id=request_id)
    now = timezone.now()
    return {
        "org_id": org_id,
        "user_id": user_id,
        "amount": validate_millicredits(amount, allow_zero=True),
        "request_id": request_id,
        "now": now,
        "expires_at": now + timedelta(seconds=ttl),
    }


def _hold_fast(
    *, user: User, org_id: str | None, amount: int, request_id: str, ttl: int, cache_generation: int | None
) -> ReservationResult | None:
    """The common hold as one SQL function call; None when it does not apply (nothing changed)."""
    params = hold_params(user_id=user.pk, org_id=org_id, amount=amount, request_id=request_id, ttl=ttl)
    try:
        with ledger_cursor() as cursor:
            reservation_id, free = holds.hold(cursor, params, generation=cache_generation)
    except NotApplied:
        return None  # the ORM path replays, refuses with a typed error, or holds
    return ReservationResult(reservation_id=reservation_id, amount=amount, remaining_credits=free)


def _lock_hold_account(user: User, org_id: str | None) -> Account:
    """Holds change only the allocation (level 2), so the pool lock is not needed."""
    if org_id is None:
        return lock_individual_balance(user.pk)
    allocation = lock_active_allocation(org_id, user.pk)
    refusal = expiry_refusal(allocation)
    if refusal is not None:
        raise refusal
    return allocation


def _hold_locked(
    *, user: User, org_id: str | None, amount: int, request_id: str, ttl: int
) -> ReservationResult:
    """The ORM hold: lock the account, replay or refuse, then hold."""
    with transaction.atomic():
        account = _lock_hold_account(user, org_id)
        previous = _find_reservation(org_id, user, request_id)
        if previous is not None:
            return _reservation_replay(previous, user=user, amount=amount, remaining=account.free_credits)
        if find_charge(org_id, user, request_id) is not None:
            raise RequestIdConflict(
                "This request id was already charged.", details={"request_id": request_id}
            )
        refusal = funds_refusal(account.free_credits, amount)
        if refusal is None and isinstance(account, UserCreditAllocation):
            refusal = daily_cap_refusal(account, amount)
        if refusal is not None:
            raise refusal
        account.reserved_credits += amount
        count_in_day(account, amount)
        account.save(update_fields=["reserved_credits", *day_fields(account), "updated_at"])
        reservation = CreditReservation.objects.create(
            org_id=org_id,
            user=user,
            allocation=account if isinstance(account, UserCreditAllocation) else None,
            request_id=request_id,
            amount=amount,
            expires_at=timezone.now() + timedelta(seconds=ttl),
        )
    return ReservationResult(
        reservation_id=reservation.pk, amount=amount, remaining_credits=account.free_credits
    )


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


def _lock_reservation_payer(reservation: CreditReservation, *, with_pool: bool) -> Payer:
    if reservation.org_id is None:
        return Payer(pool=None, account=lock_individual_balance(reservation.user_id))
    pool = lock_pool(reservation.org_id) if with_pool else None
    # An org reservation always names its allocation (CHECK reservation_allocation_matches_org).
    allocation = UserCreditAllocation.objects.select_for_update(of=("self",)).get(
        pk=reservation.allocation_id or 0
    )
    return Payer(pool=pool, account=allocation)


def _settle_fast(reservation_id: int, amount: int, params: dict[str, Any]) -> DeductionResult | None:
    """The common settlement (a held reservation, a cost the payer can pay) as one SQL function
    call; None when it does not apply (nothing changed: ``settle_reservation``'s ORM path handles
    the rest, an allocation crossing its exhaustion threshold included, whose audit event it
    writes in the charge's transaction)."""
    try:
        with ledger_cursor() as cursor:
            _, done = holds.settle(cursor, reservation_id, params)
    except NotApplied:
        return None
    return settled_result(done, amount)


def settled_result(done: holds.Settled, amount: int) -> DeductionResult:
    return DeductionResult(
        success=True, remaining_credits=done.free, credits_charged=amount, attribution_id=done.attribution_id
    )


def settlement_params(
    *, reservation_id: int, actual_amount: int, caller_metadata: dict[str, Any], **charge: Any
) -> dict[str, Any]:
    """The fast settlement's parameters (``holds.settle_params``): the validated charge
    columns, now, and the row's metadata."""
    metadata = {**caller_metadata, "reservation_id": reservation_id, "requested_credits": actual_amount}
    return {"amount": actual_amount, **charge, "now": timezone.now(), "metadata": Jsonb(metadata)}


def validated_settlement(
    *,
    actual_amount: int,
    service_type: str,
    service_name: str,
    input_tokens: int,
    output_tokens: int,
    metadata: dict[str, Any] | None,
    token_details: dict[str, int] | None,
) -> tuple[int, dict[str, Any], dict[str, int]]:
    """``settle_reservation``'s checks: (amount, the caller's metadata, the breakdown columns)."""
    actual_amount = validate_millicredits(actual_amount, allow_zero=True)
    caller_metadata = validate_charge_fields(
        request_id="settle",
        service_type=service_type,
        service_name=service_name,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        metadata=metadata,
        token_details=token_details,
    )
    return actual_amount, caller_metadata, token_detail_params(token_details)


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
    token_details: dict[str, int] | None = None,
) -> DeductionResult:
    """Turn a hold into a charge of ``actual_amount`` millicredits (zero allowed) and free the
    rest. A cost above the hold is charged as far as the payer's free credits reach; the part
    that could not be charged is recorded in the row's metadata. Settling twice with the same
    amount returns the first result. A hold that expired before the call finished is settled
    late, from whatever the payer has free, rather than leaving the call unpaid.
    ``token_details``: the totals' breakdown (``billing.ledger.charges.TOKEN_DETAILS``)."""
    actual_amount, caller_metadata, details = validated_settlement(
        actual_amount=actual_amount,
        service_type=service_type,
        service_name=service_name,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        metadata=metadata,
        token_details=token_details,
    )
    params = settlement_params(
        reservation_id=reservation_id,
        actual_amount=actual_amount,
        caller_metadata=caller_metadata,
        service_type=service_type,
        service_name=service_name,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        **details,
    )
    settled = _settle_fast(reservation_id, actual_amount, params)
    if settled is not None:
        return settled
    charge = Charge(service_type, service_name, input_tokens, output_tokens, caller_metadata, details)
    return _settle_locked(reservation_id, actual_amount, charge)


def _settle_locked(reservation_id: int, actual_amount: int, charge: Charge) -> DeductionResult:
    """The ORM settlement: a replay, a hold already paid by a direct charge, a late or a partial
    settlement."""
    reservation = _load_reservation(reservation_id)
    user = reservation.user
    with transaction.atomic():
        payer = _lock_reservation_payer(reservation, with_pool=True)
        reservation = lock_reservation(reservation_id)
        if reservation.status == CreditReservation.Status.SETTLED and reservation.attribution is not None:
            return _settlement_replay(reservation, actual_amount)
        if reservation.status not in (CreditReservation.Status.HELD, CreditReservation.Status.EXPIRED):
            raise ReservationNotHeld(details={"reservation_id": reservation_id, "status": reservation.status})
        late = reservation.status == CreditReservation.Status.EXPIRED
        if not late:
            payer.account.reserved_credits -= reservation.amount
            uncount_hold(payer.account, reservation)
        previous = find_charge(reservation.org_id, user, reservation.request_id)
        if previous is not None:
            _drop_hold_paid_elsewhere(reservation, payer)
            return replay_charge(previous, user=user, amount=None)
        row = _charge_reservation(reservation, payer, user=user, actual_amount=actual_amount, charge=charge)
    return DeductionResult(
        success=True,
        remaining_credits=row.balance_after,
        credits_charged=row.credits_used,
        attribution_id=row.pk,
    )


def _settlement_replay(reservation: CreditReservation, actual_amount: int) -> DeductionResult:
    row = reservation.attribution
    assert row is not None
    if reservation.credits_requested != actual_amount:
        raise RequestIdConflict(
            details={"request_id": reservation.request_id, "settled_at": reservation.credits_requested}
        )
    return DeductionResult(
        success=True,
        remaining_credits=row.balance_after,
        credits_charged=row.credits_used,
        attribution_id=row.pk,
        replayed=True,
    )


def _drop_hold_paid_elsewhere(reservation: CreditReservation, payer: Payer) -> None:
    """Charged directly under the same request id while the hold was open: the call is paid
    once, by that charge; the hold just goes away."""
    payer.account.save(update_fields=["reserved_credits", *day_fields(payer.account), "updated_at"])
    reservation.status = CreditReservation.Status.RELEASED
    reservation.finished_at = timezone.now()
    reservation.save(update_fields=["status", "finished_at"])


def _charge_reservation(
    reservation: CreditReservation, payer: Payer, *, user: User, actual_amount: int, charge: Charge
) -> CreditUsageAttribution:
    """Charge what the payer can pay of ``actual_amount`` (the hold already returned to its free
    credits) and mark the reservation settled; return the attribution row."""
    charged = min(actual_amount, max(0, payer.account.free_credits))
    charge_metadata = {
        **charge.metadata,
        "reservation_id": reservation.pk,
        "held_credits": reservation.amount,
        "requested_credits": actual_amount,
    }
    if charged != actual_amount:
        charge_metadata["uncharged_credits"] = actual_amount - charged
    if reservation.status == CreditReservation.Status.EXPIRED:
        charge_metadata["late_settlement"] = True
    row = record_charge(
        payer,
        org_id=reservation.org_id,
        user=user,
        amount=charged,
        request_id=reservation.request_id,
        charge=replace(charge, metadata=charge_metadata),
    )
    reservation.status = CreditReservation.Status.SETTLED
    reservation.credits_charged = charged
    reservation.credits_requested = actual_amount
    reservation.attribution = row
    reservation.finished_at = timezone.now()
    reservation.save(
        update_fields=["status", "credits_charged", "credits_requested", "attribution", "finished_at"]
    )
    return row


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
        uncount_hold(payer.account, reservation)
        payer.account.save(update_fields=["reserved_credits", *day_fields(payer.account), "updated_at"])
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


__all__ = [
    "expire_reservations",
    "release_reservation",
    "reserve_credits",
    "settle_reservation",
]
