"""Charging a call the upstream answered, whatever the database does at that moment: the
event-loop side (the backlog of refused settlements); the database units are
``billing.services.gateway_calls``.

The hold taken before the call went upstream already guarantees the payer can pay; settling
only needs the database. When it cannot be reached (PostgreSQL restarting, no pooled connection
in time, a statement timeout), the completion is still handed back and the call is not given
away: its settlement joins the process's backlog, which one task retries in order, with backoff
(``FIRST_RETRY_SECONDS`` doubling up to ``MAX_RETRY_SECONDS``), until it goes through or
``LLM_SETTLEMENT_RETRY_SECONDS`` have passed. One task rather than one per call: during an
outage a single attempt probes the database, and the backlog drains as soon as it is back.

A retry is safe whatever the failed attempt did: settling a settled reservation at the same cost
replays the first result, and a hold that expired meanwhile is settled late from the payer's free
credits (``settle_reservation``). A refused settlement is also written to the spool
(``billing.services.gateway_calls.spool``, fsync'ed) before the client is answered, and removed
once charged: what is still pending when the process dies, or past its retry window, is charged
from there by the ``settle_spooled_calls`` task. A settled call's open record
(``gateway_calls.open_calls``) is removed; a refused one's is replaced by its spool entry.
docs/decisions.md, "A call answered while the database is down" and "A refused settlement is
spooled to disk until it is charged".
"""

import asyncio
import atexit
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from billing.call_usage import Usage
from billing.gateway import on_loop
from billing.gateway.db import run_db, spawn
from billing.pricing import PriceSnapshot
from billing.services import DeductionResult
from billing.services.gateway_calls import open_calls, spool
from billing.services.gateway_calls.config import setting
from billing.services.gateway_calls.holds import Admission, chargeable_cost, settlement_terms
from orgbilling.errors import DatabaseUnavailable

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class Charge:
    """What a finished call costs (millicredits) and the facts its ledger row keeps."""

    cost: int
    input_tokens: int = 0
    output_tokens: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    token_details: dict[str, int] = field(default_factory=dict)  # the totals' breakdown (Usage.details)

    @classmethod
    def of_usage(cls, price: PriceSnapshot, usage: Usage, metadata: dict[str, Any]) -> "Charge":
        """A completion's charge: each part of its usage at its price (``PriceSnapshot.usage_cost``)."""
        return cls(
            cost=price.usage_cost(usage),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            metadata=metadata,
            token_details=usage.details(),
        )


@dataclass(frozen=True)
class Pending:
    """The database refused the settlement: the call will be charged ``cost`` once it is back."""

    cost: int


@dataclass
class _Entry:
    admission: Admission
    terms: dict[str, Any]  # settle_reservation's arguments
    give_up_at: float
    spooled: Path | None  # where the settlement waits on disk (None: the disk refused too)
    attempts: int = 1


def _describe(entry: _Entry) -> str:
    admission, terms = entry.admission, entry.terms
    return (
        f"request_id={admission.request_id} user_id={admission.user.username} "
        f"org_id={admission.org_id or '-'} model={admission.model} reservation={admission.reservation_id} "
        f"input_tokens={terms['input_tokens']} output_tokens={terms['output_tokens']} "
        f"millicredits={terms['actual_amount']} spooled={entry.spooled or 'no'}"
    )


class SettlementBacklog:
    """Settlements the database refused, retried in order by one task on the event loop."""

    def __init__(self) -> None:
        self._entries: deque[_Entry] = deque()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, admission: Admission, terms: dict[str, Any], *, spooled: Path | None) -> None:
        window: float = setting("LLM_SETTLEMENT_RETRY_SECONDS")
        self._entries.append(_Entry(admission, terms, give_up_at=time.monotonic() + window, spooled=spooled))
        if self._task is None or self._task.done() or self._task.get_loop().is_closed():
            self._task = spawn(self._drain())

    async def _drain(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while self._entries:
            entry = self._entries[0]
            if time.monotonic() > entry.give_up_at:
                self._entries.popleft()
                # Still owed: the settle_spooled_calls task charges it from the spool.
                logger.error("gateway: gave up settling a call after %d attempts: %s", entry.attempts,
                             _describe(entry))  # fmt: skip
                continue
            # Jittered, so the web processes of a deployment do not all knock at once.
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            entry.attempts += 1
            try:
                result = await _settle_now(entry.terms)
            except DatabaseUnavailable as refusal:
                delay = min(delay * 2, MAX_RETRY_SECONDS)
                logger.warning("gateway: settling call %s refused again (%s, attempt %d); next in ~%.1f s",
                               entry.admission.request_id, refusal.code, entry.attempts, delay)  # fmt: skip
                continue
            except Exception:
                self._entries.popleft()
                logger.exception("gateway: settling call failed and cannot be retried: %s", _describe(entry))
                continue
            self._entries.popleft()
            if entry.spooled is not None:
                spool.remove_entry(entry.admission.reservation_id)
            delay = FIRST_RETRY_SECONDS
            logger.info("gateway: call %s settled after %d attempts, charged %d millicredits",
                        entry.admission.request_id, entry.attempts, result.credits_charged)  # fmt: skip

    def log_abandoned(self) -> None:
        """At exit: every call whose charge is still owed, with what to charge."""
        for entry in self._entries:
            logger.error("gateway: process exiting with a call not yet charged: %s", _describe(entry))


backlog = SettlementBacklog()
atexit.register(backlog.log_abandoned)


async def _settle_now(terms: dict[str, Any]) -> DeductionResult:
    """On the loop (one round trip), else on the database threads; charged, its open record goes."""
    settled = await on_loop.settle(terms)
    if settled is None:
        return await run_db(open_calls.settle_open_call, terms)
    open_calls.close_call(terms["reservation_id"])
    return settled


async def settle(admission: Admission, charge: Charge) -> DeductionResult | Pending | None:
    """Charge the call now. ``Pending`` when the database refused (spooled to disk, and the
    backlog will charge it); None when the settlement failed for a reason a retry cannot cure
    (logged: a bug)."""
    terms = settlement_terms(
        admission,
        cost=charge.cost,
        input_tokens=charge.input_tokens,
        output_tokens=charge.output_tokens,
        metadata=charge.metadata,
        token_details=charge.token_details,
    )
    try:
        return await _settle_now(terms)
    except DatabaseUnavailable as refusal:
        logger.warning("gateway: settling call %s refused by the database (%s); spooling it, retrying in "
                       "the background", admission.request_id, refusal.code)  # fmt: skip
        # Before the client is answered ("pending" only once the charge is durable), off the
        # loop: only a refused settlement pays for the fsync.
        spooled = await asyncio.to_thread(spool.spool_refused, terms)
        backlog.add(admission, terms, spooled=spooled)
        return Pending(cost=chargeable_cost(admission, charge.cost))
    except Exception:
        logger.exception("gateway: settling call %s failed", admission.request_id)
        return None
