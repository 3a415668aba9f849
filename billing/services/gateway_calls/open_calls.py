"""Calls in flight, recorded on local disk so that a process dying mid-call does not make them free.

Once its hold is taken, each call has an *open record*, ``<reservation_id>.open`` in
``LLM_SETTLEMENT_SPOOL_DIR``: who pays and at what price, the input estimate, the output bound,
whether the model reasons, and (a stream) the output counted so far, rewritten at most every
``LLM_SPOOL_PROGRESS_SECONDS``. It is removed once the call is settled or released; when the
database refuses the settlement, the fsync'ed entry of ``gateway_calls.spool`` takes its place.

Never fsync'ed: the page cache outlives a killed process (SIGKILL, the OOM killer, a container
restarted on a live host); only a host crash loses it. The hot path pays a small write and an
unlink, not a disk flush. A record still there once its process would have settled it (calls
are capped at ``max_call_seconds()``, counted from ``limit_from``; ``SETTLE_GRACE_SECONDS`` more
for the settlement itself) belongs to a process that died: ``settle_lost_calls`` charges it with
its estimate, ``usage_source: "process_lost"``, exactly once (settling is idempotent by
reservation). docs/decisions.md, "A call whose process died is charged from its open record".
"""

import json
import logging
import os
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from billing.call_usage import DETAIL_FIELDS, Usage, consistent_usage, fallback_usage
from billing.errors import RequestIdConflict, ReservationNotHeld
from billing.models import CreditReservation
from billing.pricing import PriceSnapshot
from billing.services import DeductionResult, settle_reservation
from billing.services.gateway_calls.config import max_call_seconds, setting
from billing.services.gateway_calls.holds import Admission, call_terms, release_call, terms_for_call
from orgbilling.errors import ApplicationError, DatabaseUnavailable

logger = logging.getLogger(__name__)

SUFFIX = ".open"
FORMAT_VERSION = 1
# After its time limit, how long a live process may still take to settle a call (a settlement
# the database is slow to take). Kept below the hold's last minute (max_call_seconds() is the
# hold's lifetime minus 60 s by default), so a lost call is settled from its hold, not late.
SETTLE_GRACE_SECONDS = 30.0
# What a lost call is settled from: its hold (still held) or, past its expiry, the payer's free
# credits (a late settlement, as for the spool). Settled or released: owed nothing more.
OWED = (CreditReservation.Status.HELD, CreditReservation.Status.EXPIRED)


def _directory() -> Path:
    return Path(setting("LLM_SETTLEMENT_SPOOL_DIR"))


def record_path(reservation_id: int) -> Path:
    return _directory() / f"{int(reservation_id)}{SUFFIX}"


@dataclass(frozen=True)
class Progress:
    """What a stream produced so far, as far as its relay has counted."""

    output_tokens: int = 0  # estimated from the text relayed (estimate_output_tokens)
    reported: Usage | None = None  # a usage the upstream already sent (per-chunk usage)
    reasoning: bool = False  # the stream showed reasoning


def _record(admission: Admission, *, images: int | None, limit_from: float, progress: Progress) -> bytes:
    reported = progress.reported
    return json.dumps(
        {
            "version": FORMAT_VERSION,
            "call": call_terms(admission),
            "started_at": admission.admitted_at,
            "limit_from": limit_from,
            "estimated_input_tokens": admission.estimated_input_tokens,
            "output_bound": admission.output_bound,
            "reasoning": admission.reasoning_model or progress.reasoning,
            "images": images,
            "output_tokens": progress.output_tokens,
            # [input, output, then the breakdown in DETAIL_FIELDS order]; older records: 2 items
            "reported": None
            if reported is None
            else [reported.input_tokens, reported.output_tokens, *reported.details().values()],
        },
        separators=(",", ":"),
    ).encode()


def open_call(admission: Admission, *, images: int | None = None) -> None:
    """Record the call as in flight (after its hold is taken, before it goes upstream). A disk
    that refuses is logged and the call goes on without the record (docs/decisions.md)."""
    data = _record(admission, images=images, limit_from=admission.admitted_at, progress=Progress())
    path = record_path(admission.reservation_id)
    try:
        try:
            path.write_bytes(data)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    except OSError:
        logger.exception(
            "gateway: could not write the open record of call %s to %s", admission.request_id, path
        )


def record_progress(admission: Admission, *, limit_from: float, progress: Progress) -> None:
    """Rewrite a stream's open record (replaced whole, never half-written): ``limit_from`` is
    when its time limit started (the relay's start), ``progress`` what it produced so far."""
    path = record_path(admission.reservation_id)
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_bytes(_record(admission, images=None, limit_from=limit_from, progress=progress))
        os.replace(temporary, path)
    except OSError:
        logger.exception("gateway: could not refresh the open record of call %s", admission.request_id)


def close_call(reservation_id: int) -> None:
    """The call is settled, released, or its refused settlement spooled: its record goes."""
    try:
        record_path(reservation_id).unlink(missing_ok=True)
    except OSError:
        logger.exception("gateway: could not remove the open record of reservation %s", reservation_id)


def settle_open_call(terms: dict[str, Any]) -> DeductionResult:
    """Settle a call (``settle_reservation``'s ``terms``); once charged its record goes: nothing
    is left for the task to guess."""
    result = settle_reservation(**terms)
    close_call(terms["reservation_id"])
    return result


def release_open_call(admission: Admission) -> None:
    """Release the call's hold (``release_call``); its record goes even when the database
    refused: a hold it did not release expires, and is owed nothing."""
    try:
        release_call(admission)
    finally:
        close_call(admission.reservation_id)


def _price(call: dict[str, Any]) -> PriceSnapshot:
    return PriceSnapshot.from_metadata(call["price"])


def _reported(reported: list[int] | None) -> Usage | None:
    if reported is None:
        return None
    counts = [int(count) for count in reported]
    details = dict(zip(DETAIL_FIELDS, counts[2:], strict=False))
    return consistent_usage(input_tokens=counts[0], output_tokens=counts[1], source="upstream", **details)


def lost_call_terms(record: dict[str, Any]) -> dict[str, Any]:
    """What a call whose process died is charged: its images as requested, or its input
    estimate plus the output counted so far (a reasoning call: its output bound), the upstream's
    partial usage as a floor (``fallback_usage``)."""
    call, price = record["call"], _price(record["call"])
    metadata: dict[str, Any] = {"usage_source": "process_lost", "call_started_at": record["started_at"]}
    if record["images"] is not None:
        count = int(record["images"])
        return terms_for_call(
            call, cost=price.image_cost(count=count), metadata={**metadata, "images": count}
        )
    usage = fallback_usage(
        reported=_reported(record["reported"]),
        estimated_input_tokens=int(record["estimated_input_tokens"]),
        text_output_tokens=int(record["output_tokens"]),
        output_bound=int(record["output_bound"]),
        reasoning=bool(record["reasoning"]),
    )
    return terms_for_call(
        call,
        cost=price.usage_cost(usage),
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        metadata={**metadata, "estimate": usage.source},
        token_details=usage.details(),
    )


def _read(path: Path) -> dict[str, Any]:
    record = json.loads(path.read_bytes())
    if not isinstance(record, dict) or record.get("version") != FORMAT_VERSION:
        raise ValueError(f"unknown open record format in {path}")
    if not isinstance(record.get("call"), dict) or not isinstance(record["call"].get("reservation_id"), int):
        raise ValueError(f"no reservation in {path}")
    return record


@dataclass
class LostCalls:
    settled: list[int] = field(default_factory=list)  # reservation ids charged from their record
    closed: list[int] = field(default_factory=list)  # owed nothing more: record deleted
    failed: list[str] = field(default_factory=list)  # records set aside (``.failed``) for an operator


def _set_aside(path: Path, outcome: LostCalls) -> None:
    logger.exception("settle_lost_calls: cannot settle %s; set aside as %s.failed", path, path.name)
    with suppress(FileNotFoundError):
        path.rename(path.with_name(path.name + ".failed"))
    outcome.failed.append(path.name)


def _settle_one(path: Path, record: dict[str, Any], outcome: LostCalls) -> None:
    call = record["call"]
    reservation_id = call["reservation_id"]
    refused = path.with_name(f"{reservation_id}.json")
    if refused.exists() or refused.with_name(refused.name + ".failed").exists():
        # The refused settlement's fsync'ed entry, with the upstream's usage, takes over.
        path.unlink(missing_ok=True)
        outcome.closed.append(reservation_id)
        return
    status = (
        CreditReservation.objects.filter(pk=reservation_id, request_id=call["request_id"])
        .values_list("status", flat=True)
        .first()
    )
    if status is None:
        raise ValueError(f"{path} names no reservation of this database")
    if status in OWED:
        try:
            result = settle_reservation(**lost_call_terms(record))
        except (RequestIdConflict, ReservationNotHeld):
            pass  # settled or released meanwhile by its own process, which was alive after all
        else:
            outcome.settled.append(reservation_id)
            logger.warning("settle_lost_calls: the process of call %s (reservation %s) died; charged "
                           "%d millicredits from its open record%s", call["request_id"], reservation_id,
                           result.credits_charged, " (replayed)" if result.replayed else "")  # fmt: skip
            path.unlink(missing_ok=True)
            return
    path.unlink(missing_ok=True)
    outcome.closed.append(reservation_id)


def settle_lost_calls() -> LostCalls:
    """Settle every open record older than its call could have lasted (``max_call_seconds()`` +
    ``SETTLE_GRACE_SECONDS`` from ``limit_from``); delete those whose reservation is settled or
    released. Younger records are left alone: their call may be running. Unreadable records, or
    ones naming no reservation of this database, are set aside as ``*.open.failed``. A database
    failure propagates (the caller retries)."""
    outcome = LostCalls()
    directory = _directory()
    if not directory.is_dir():
        return outcome
    oldest_alive = time.time() - (max_call_seconds() + SETTLE_GRACE_SECONDS)
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        try:
            record = _read(path)
            if float(record["limit_from"]) > oldest_alive:
                continue
            _settle_one(path, record, outcome)
        except FileNotFoundError:
            continue  # settled or released meanwhile
        except DatabaseUnavailable:
            raise
        except (ApplicationError, ValueError, KeyError, TypeError, IndexError):
            _set_aside(path, outcome)
    for leftover in directory.glob(f"*{SUFFIX}.tmp"):  # a refresh its process died in
        with suppress(OSError):
            if leftover.stat().st_mtime < oldest_alive:
                leftover.unlink()
    return outcome
