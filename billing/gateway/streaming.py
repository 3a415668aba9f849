"""Relaying a streamed completion (SSE) while metering it.

A pump task reads the upstream's events and queues them for the client as they arrive; the
response's generator only relays the queue. The pump owns the money: when the upstream ends (or
fails) it closes the upstream and settles, from the upstream's usage chunk when it came, else from
``StreamMeter.usage_or_estimate`` (the counted text, or a reasoning model's output bound), and
releases the rest of the hold. A stream that produced nothing is released. When the client goes
away (Django cancels the response) the pump stops relaying but keeps reading the upstream, for at
most ``LLM_DISCONNECT_DRAIN_SECONDS`` and never past the call's own limit, so the call is settled
with the upstream's usage (hidden reasoning tokens included) rather than an estimate. Because the
pump is not the request's task, a disconnect cannot skip the settlement. The client gets, after
the last chunk, an SSE comment with the cost, then ``[DONE]``. A settlement the database refused
is charged by the background retry (``billing.gateway.settlement``); the comment then says
``settlement=pending``. While it reads, the pump rewrites the call's open record
(``billing.services.gateway_calls.open_calls``) with the output counted so far, at most every
``LLM_SPOOL_PROGRESS_SECONDS``, so a process killed mid-stream is charged close to what it
streamed.

On the lean route (``billing.gateway.lean``) there is no queue and no response generator: the
pump writes each event straight to the client through a ``RelaySink`` (one task step per chunk)
and ends the response itself. The pump is still not the request's task, so what is said above of
a disconnect holds: the lean route stops the relay when ``receive`` says the client left, and a
write that fails stops it too; the pump then drains and settles as here. A client that stops
reading without leaving holds the pump's writes (the server's flow control) until it reads again
or the call's own limit ends the call, which is then charged what was streamed.
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

from billing.errors import UpstreamError, UpstreamTimeout
from billing.gateway.db import finish, run_db, spawn
from billing.gateway.metering import StreamMeter, estimate_output_tokens, sse_events
from billing.gateway.responses import credits_text
from billing.gateway.settlement import Charge, Pending, settle
from billing.gateway.upstream import UpstreamStream
from billing.services import DeductionResult
from billing.services.gateway_calls import open_calls
from billing.services.gateway_calls.config import max_call_seconds, setting
from billing.services.gateway_calls.holds import Admission
from orgbilling.errors import ApplicationError

logger = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
MID_STREAM_FAILURE = "The model provider broke off the stream; the text streamed so far is charged."
CALL_TOO_LONG = "The call ran longer than the gateway allows; the text streamed so far is charged."
MALFORMED_STREAM = "The model provider sent a malformed stream; only the text it streamed is charged."


@dataclass(frozen=True)
class StreamOutcome:
    charged: int | None  # None: the hold was released (nothing was generated) or settling failed
    remaining: int | None  # None too while the charge is pending
    pending: bool = False  # the database refused: ``charged`` is charged by the background retry


class RelaySink(Protocol):
    """Where the lean route's pump writes the response body (``billing.gateway.lean``)."""

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


def error_event(error: ApplicationError) -> bytes:
    return f"data: {json.dumps(error.as_dict())}\n\n".encode()


class StreamRelay:
    def __init__(
        self,
        *,
        admission: Admission,
        response: UpstreamStream,
        strip_usage: bool,
        sink: RelaySink | None = None,
    ) -> None:
        self.admission = admission
        self._sink = sink  # the lean route: written to from the pump, no queue
        self._unwritten: list[bytes] = []  # with a sink: the events of the upstream's last read
        self._response = response
        self._meter = StreamMeter(strip_usage=strip_usage)
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._client_gone = False
        self._drain_cut = False  # the client left and the upstream had not finished within the drain
        self._deadline: asyncio.Timeout | None = None  # set while the pump reads the upstream
        self._error: ApplicationError | None = None
        self._limit_from = 0.0  # when the call's time limit started (epoch seconds)
        self._next_progress = 0.0  # loop time after which the open record is rewritten
        self._task = spawn(self._pump())

    async def events(self) -> AsyncIterator[bytes]:
        """The response body: whatever the pump queued, as soon as it is queued (events that
        queued up while the client was being written to leave together)."""
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    return
                parts = [item]
                while not self._queue.empty():
                    more = self._queue.get_nowait()
                    if more is None:
                        yield b"".join(parts)
                        return
                    parts.append(more)
                yield b"".join(parts)
        finally:
            self.stop()

    @property
    def pump(self) -> "asyncio.Task[None]":
        """The task that relays, settles and (with a sink) ends the response."""
        return self._task

    def stop(self) -> None:
        """The client went away: stop relaying, keep reading the upstream until its usage
        comes (at most ``LLM_DISCONNECT_DRAIN_SECONDS`` more), then settle."""
        if self._task.done() or self._client_gone:
            return
        self._client_gone = True  # the pump relays nothing more
        self._shorten_deadline()

    def _shorten_deadline(self) -> None:
        if self._deadline is None or self._deadline.expired():
            # Not reading yet (the pump shortens it when it starts), already settling, or the
            # call's own limit is ending it.
            return
        drain = max(0.0, float(setting("LLM_DISCONNECT_DRAIN_SECONDS")))
        until = asyncio.get_running_loop().time() + drain
        current = self._deadline.when()
        if current is None or until < current:
            self._deadline.reschedule(until)

    async def wait(self) -> None:
        """Until the call is settled (tests and benchmarks)."""
        with suppress(asyncio.CancelledError):
            await asyncio.shield(self._task)

    def _record_progress(self) -> None:
        """Rewrite the call's open record with what the stream produced so far (at most every
        ``LLM_SPOOL_PROGRESS_SECONDS``): a process killed now is charged close to it."""
        meter = self._meter
        progress = open_calls.Progress(
            output_tokens=estimate_output_tokens(characters=meter.characters, pieces=meter.pieces),
            reported=meter.usage,
            reasoning=meter.reasoning,
        )
        open_calls.record_progress(self.admission, limit_from=self._limit_from, progress=progress)
        interval = float(setting("LLM_SPOOL_PROGRESS_SECONDS"))
        self._next_progress = asyncio.get_running_loop().time() + interval

    async def _pump(self) -> None:
        try:
            async with asyncio.timeout(max_call_seconds()) as deadline:
                self._deadline = deadline
                if self._client_gone:
                    self._shorten_deadline()
                # The call's time limit starts now, not at admission: the record says so.
                self._limit_from = time.time()
                self._record_progress()
                loop = asyncio.get_running_loop()
                reads = self._response.chunks() if self._sink is None else self._written_per_read()
                async for event in sse_events(reads):
                    relayed = self._meter.feed(event)
                    if relayed is not None and not self._client_gone:
                        if self._sink is None:
                            self._queue.put_nowait(relayed)
                        else:
                            self._unwritten.append(relayed)
                    if loop.time() >= self._next_progress:
                        self._record_progress()
            if malformed := self._meter.malformed:
                self._error = UpstreamError(MALFORMED_STREAM, details={"malformed_events": malformed})
        except (UpstreamError, UpstreamTimeout) as cause:  # the upstream broke off (``chunks()``)
            self._error = type(cause)(MID_STREAM_FAILURE, details=cause.details)
        except TimeoutError:
            if self._client_gone:
                self._drain_cut = True  # nobody to tell; settled from what was read
            else:
                # Past the longest call we hold credits for: end it while the hold still lives.
                self._error = UpstreamTimeout(CALL_TOO_LONG, details={"max_call_seconds": max_call_seconds()})
        finally:
            self._deadline = None
            # Also on cancellation (the server shutting down): the settlement runs in its own task.
            outcome = await finish(self._settle())
        tail = [
            *self._unwritten,
            *([error_event(self._error)] if self._error is not None else []),
            *([self._trailer(outcome)] if outcome.charged is not None else []),
            *([DONE] if self._meter.saw_done else []),
        ]
        if self._sink is None:
            for item in tail:
                self._queue.put_nowait(item)
            self._queue.put_nowait(None)
            return
        if tail and not self._client_gone:
            await self._write(b"".join(tail))
        if not self._client_gone:
            with suppress(Exception):
                await self._sink.close()

    async def _written_per_read(self) -> AsyncIterator[bytes]:
        """The upstream's reads; the events of each are written in one go when the next read
        is asked for (as the queue's reader joined the events that queued up meanwhile)."""
        async for chunk in self._response.chunks():
            yield chunk
            if self._unwritten:
                data = b"".join(self._unwritten)
                self._unwritten.clear()
                if not self._client_gone:
                    await self._write(data)

    async def _write(self, data: bytes) -> None:
        """Write to the lean route's client from the pump. A write that fails means the client
        went away: relay nothing more, drain and settle as after a disconnect."""
        assert self._sink is not None
        try:
            await self._sink.write(data)
        except Exception:
            logger.debug(
                "gateway: writing to the client of %s failed", self.admission.request_id, exc_info=True
            )
            self.stop()

    def _trailer(self, outcome: StreamOutcome) -> bytes:
        assert outcome.charged is not None
        if outcome.pending:
            balance = "settlement=pending"
        else:
            assert outcome.remaining is not None
            balance = f"credits_remaining={credits_text(outcome.remaining)}"
        return (
            f": orgbilling request_id={self.admission.request_id} "
            f"cost_incurred={credits_text(outcome.charged)} {balance}\n\n"
        ).encode()

    async def _settle(self) -> StreamOutcome:
        with suppress(Exception):
            await self._response.aclose()
        meter, admission = self._meter, self.admission
        cut_short = self._error is not None or self._drain_cut
        # A reasoning model the client left while it was still thinking has spent tokens we saw
        # none of: charged (its output bound) rather than released.
        thinking = self._drain_cut and (admission.reasoning_model or meter.reasoning)
        if meter.usage is None and not meter.produced_output and not thinking:
            try:
                await run_db(open_calls.release_open_call, admission)
            except Exception:
                # Nothing was generated: the hold is released when it expires, nothing charged.
                logger.exception("gateway: releasing streamed call %s failed", admission.request_id)
            return StreamOutcome(charged=None, remaining=None)
        usage = meter.usage_or_estimate(
            estimated_input_tokens=admission.estimated_input_tokens,
            output_bound=admission.output_bound,
            reasoning_model=admission.reasoning_model,
            complete=not cut_short,
        )
        settled = await settle(
            admission,
            Charge.of_usage(
                admission.price,
                usage,
                {
                    "stream": True,
                    "usage_source": usage.source,
                    "client_disconnected": self._client_gone,
                    **({"disconnect_drain": "cut"} if self._drain_cut else {}),
                    **({"upstream_failure": self._error.code} if self._error is not None else {}),
                },
            ),
        )
        if isinstance(settled, DeductionResult):
            return StreamOutcome(charged=settled.credits_charged, remaining=settled.remaining_credits)
        if isinstance(settled, Pending):
            return StreamOutcome(charged=settled.cost, remaining=None, pending=True)
        return StreamOutcome(charged=None, remaining=None)
